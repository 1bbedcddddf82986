"""`text_dataset`: raw strings and labels as a reshuffled `tf.data` pipeline.

keras-hub's text classifiers turn Python lists or NumPy arrays of strings
into a `tf.data.Dataset` inside `fit`, and then ignore `shuffle=True` (with
a warning): every epoch sees the samples in the same order. This builds the
dataset with a shuffle that draws a new order each epoch, which `fit` on
any backend accepts.
"""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from kerasft._src.validation import check_bool
from kerasft._src.validation import check_int


def _strings(texts: Any) -> list:
    if isinstance(texts, (str, bytes)) or not isinstance(
        texts, (Sequence, np.ndarray)
    ):
        raise TypeError(
            "`texts` must be a list or 1-D array of strings. Received: "
            f"texts={reprlib.repr(texts)} of type {type(texts).__name__}"
        )
    array = np.asarray(texts, dtype=object)
    if array.ndim != 1 or not len(array):
        raise ValueError(
            "`texts` must be a non-empty list or 1-D array of strings. "
            f"Received: texts with shape {array.shape}"
        )
    bad = next((t for t in array if not isinstance(t, (str, bytes))), None)
    if bad is not None:
        raise TypeError(
            "`texts` must hold only strings. Received: an item "
            f"{bad!r} of type {type(bad).__name__}"
        )
    # tf.string takes str (encoded as UTF-8) and bytes as they are.
    return list(array)


def _labels(labels: Any, count: int) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim == 0 or len(array) != count:
        raise ValueError(
            f"`labels` must have one entry per text ({count}). Received: "
            f"labels with shape {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.number):
        raise TypeError(
            "`labels` must be numbers (class indices or one-hot rows). "
            f"Received: labels of dtype {array.dtype}"
        )
    return array


def text_dataset(
    texts: Sequence[str] | np.ndarray,
    labels: Any,
    batch_size: int = 32,
    *,
    shuffle: bool = True,
    seed: int | None = None,
):
    """Batches of `(strings, labels)` for `fit`, reshuffled every epoch.

    Use it to train a keras-hub text classifier (for example one from
    `kerasft.backbones.load_hub_text_classifier`) on lists of strings:
    given the lists directly, `fit` ignores `shuffle=True` for them and
    shows the samples in one order every epoch.

    Example:

    ```python
    (x, y), _ = kerasft.text_data.load_rotten_tomatoes()
    train = kerasft.text_data.text_dataset(x, y, batch_size=32, seed=0)
    model.fit(train, epochs=3)
    ```

    Args:
        texts: list or 1-D array of str (or UTF-8 bytes). The raw texts.
        labels: array-like of numbers, one entry (or one-hot row) per text.
        batch_size: int >= 1. Defaults to `32`.
        shuffle: bool. Whether the order is reshuffled each epoch.
            Defaults to `True`.
        seed: int >= 0 or None. Seed of the shuffle, for a reproducible
            sequence of orders. Defaults to `None`.

    Returns:
        A `tf.data.Dataset` of `(texts, labels)` batches.

    Raises:
        TypeError: `texts` is not a list of strings, `labels` are not
            numbers, or an argument has the wrong type.
        ValueError: `texts` is empty, the lengths differ, or a number is
            out of range.
        ImportError: TensorFlow (which keras-hub needs) is not installed.
    """
    strings = _strings(texts)
    targets = _labels(labels, len(strings))
    check_int("batch_size", batch_size, minimum=1)
    check_bool("shuffle", shuffle)
    check_int("seed", seed, minimum=0, allow_none=True)
    try:
        import tensorflow as tf
    except ImportError as error:
        raise ImportError(
            "`text_dataset` builds a tf.data pipeline and needs TensorFlow "
            "(which keras-hub needs too): pip install tensorflow"
        ) from error
    data = tf.data.Dataset.from_tensor_slices(
        (tf.constant(strings, dtype=tf.string), targets)
    )
    if shuffle:
        data = data.shuffle(
            len(strings), seed=seed, reshuffle_each_iteration=True
        )
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)
