"""Each process's part of every global batch."""

from __future__ import annotations

from typing import Any

import numpy as np

from kerasft._src.distributed.cluster import process_count
from kerasft._src.distributed.cluster import process_index
from kerasft._src.validation import check_bool
from kerasft._src.validation import check_int


def _leaves(data):
    if isinstance(data, dict):
        return [x for v in data.values() for x in _leaves(v)]
    if isinstance(data, (list, tuple)):
        return [x for v in data for x in _leaves(v)]
    return [data]


def _map(fn, data):
    if isinstance(data, dict):
        return {k: _map(fn, v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(_map(fn, v) for v in data)
    return fn(data)


def _is_dataset(data):
    module = type(data).__module__
    return module.startswith("tensorflow") and hasattr(data, "element_spec")


def shard(
    data: Any,
    batch_size: int,
    *,
    seed: int | None = None,
    drop_remainder: bool = False,
) -> Any:
    """This process's part of every global batch, for a multi-host job.

    Under `keras.distribution.DataParallel(auto_shard_dataset=False)` in a
    multi-host JAX job, each process feeds `fit` its own rows of each
    global batch; Keras puts the processes' rows together in process
    order. `shard` cuts the data that way, so that the job trains on the
    same global batches as one process would: global batch `b` holds rows
    `b * batch_size` to `(b + 1) * batch_size - 1`, and process `i` of `n`
    gets the `i`-th `batch_size // n` of them. Call `fit` with
    `batch_size=batch_size // n` (arrays) and `shuffle=False`; validation
    data sharded the same way gives global validation metrics.

    A `tf.data.Dataset` of single samples is shuffled (with `seed`, the
    same order in every process, a new one each epoch), batched by
    `batch_size` and cut; it comes back batched by `batch_size // n`. Its
    partial last global batch is dropped (its size is not known in
    advance).
    Without a multi-host job (one process), the data comes back whole.

    Example:

    ```python
    kerasft.distributed.initialize()
    local_x, local_y = kerasft.distributed.shard((x, y), batch_size=64)
    n = jax.process_count()
    model.fit(local_x, local_y, batch_size=64 // n, shuffle=False)
    ```

    Args:
        data: numpy arrays (or a dict, list or tuple of them, all with the
            same number of rows), or a `tf.data.Dataset` of unbatched
            samples.
        batch_size: int. The global batch size, a multiple of the number
            of processes.
        seed: int or None. Shuffle a dataset with this seed each epoch;
            `None` keeps its order. Arrays are never shuffled here.
            Defaults to `None`.
        drop_remainder: bool. Drop the last global batch when it is
            partial (with arrays, a partial batch cannot be split evenly
            and is refused otherwise). Defaults to `False`.

    Returns:
        The same structure with this process's rows, or a batched dataset.

    Raises:
        ValueError: for a `batch_size` that the process count does not
            divide, arrays with different row counts, or a partial last
            batch of arrays without `drop_remainder=True`.
        TypeError: for arguments of the wrong type.
    """
    check_int("batch_size", batch_size, minimum=1)
    check_int("seed", seed, allow_none=True)
    check_bool("drop_remainder", drop_remainder)
    n, i = process_count(), process_index()
    if batch_size % n:
        raise ValueError(
            f"`batch_size` (the global batch) must be a multiple of the "
            f"number of processes ({n}). Received: batch_size={batch_size}"
        )
    if _is_dataset(data):
        return _shard_dataset(data, batch_size, n, i, seed)
    leaves = [np.asarray(x) for x in _leaves(data)]
    rows = {len(x) for x in leaves}
    if len(rows) != 1:
        raise ValueError(
            "All arrays of `data` must have the same number of rows. "
            f"Received: data with row counts {sorted(rows)}"
        )
    (total,) = rows
    if total % batch_size and not drop_remainder:
        raise ValueError(
            f"The last global batch holds {total % batch_size} of "
            f"{batch_size} rows, which cannot be split evenly across {n} "
            "processes. Pass drop_remainder=True, or use a row count that "
            f"is a multiple of batch_size. Received: {total} rows, "
            f"batch_size={batch_size}"
        )
    part = batch_size // n
    full = total // batch_size
    index = (
        np.arange(full)[:, None] * batch_size + i * part + np.arange(part)
    ).reshape(-1)
    return _map(lambda x: np.asarray(x)[index], data)


def _shard_dataset(dataset, batch_size, n, i, seed):
    part = batch_size // n
    if seed is not None:
        dataset = dataset.shuffle(
            dataset.cardinality() if dataset.cardinality() > 0 else 10_000,
            seed=seed,
            reshuffle_each_iteration=True,
        )
    # The size of a partial last batch is unknown in advance, and it could
    # not be split evenly: it is dropped.
    batched = dataset.batch(batch_size, drop_remainder=True)

    def take(*batch):
        def cut(x):
            return x[i * part : (i + 1) * part]

        out = _map(cut, batch)
        return out[0] if len(out) == 1 else out

    return batched.map(take)
