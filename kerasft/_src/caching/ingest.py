"""Reading a data source once: arrays, `tf.data.Dataset` or `PyDataset`.

Batches come out as numpy `(x, y, sample_weight)`; `data_key` identifies a
source so a cache can tell whether it saw it before.
"""

from __future__ import annotations

import hashlib

import keras
import numpy as np


def is_source(x) -> bool:
    """Whether `x` is a dataset (yielding batches) rather than arrays."""
    return isinstance(x, keras.utils.PyDataset) or is_tf_dataset(x)


def is_tf_dataset(x) -> bool:
    return type(x).__module__.startswith("tensorflow") and hasattr(
        x, "element_spec"
    )


def unpack(batch):
    if isinstance(batch, (tuple, list)) and not isinstance(batch, np.ndarray):
        batch = tuple(batch)
        if len(batch) == 1:
            return batch[0], None, None
        if len(batch) == 2:
            return batch[0], batch[1], None
        if len(batch) == 3:
            return batch
    return batch, None, None


def to_numpy(value):
    if value is None:
        return None
    return keras.tree.map_structure(
        lambda t: np.asarray(keras.ops.convert_to_numpy(t)), value
    )


def _array_digest(a) -> str:
    flat = np.ascontiguousarray(a).reshape(-1)
    step = max(1, flat.size // 4096)
    h = hashlib.blake2b(digest_size=16)
    h.update(str((a.shape, a.dtype)).encode())
    h.update(np.ascontiguousarray(flat[::step]).tobytes())
    return h.hexdigest()


def data_key(x):
    """Identifies a data source: arrays by id, shape and a sampled hash."""
    if is_source(x):
        return ("source", id(x))
    leaves = keras.tree.flatten(x)
    return tuple(("array", id(a), _array_digest(np.asarray(a))) for a in leaves)


def batches(x, y, sample_weight, batch_size):
    """Yields (x, y, sw, batch_size) batches of a data source, as numpy."""
    if isinstance(x, keras.utils.PyDataset):
        for i in range(len(x)):
            bx, by, bw = unpack(x[i])
            yield bx, by, bw
        return
    if is_tf_dataset(x):
        for batch in x:
            bx, by, bw = unpack(batch)
            yield bx, by, bw
        return
    n = len(keras.tree.flatten(x)[0])
    for start in range(0, n, batch_size):
        sl = slice(start, start + batch_size)
        yield (
            take(x, sl),
            None if y is None else take(y, sl),
            None if sample_weight is None else sample_weight[sl],
        )


def take(structure, index):
    return keras.tree.map_structure(lambda a: a[index], structure)


def concat(parts):
    if not parts or parts[0] is None:
        return None
    return keras.tree.map_structure(
        lambda *xs: np.concatenate([np.asarray(v) for v in xs]), *parts
    )
