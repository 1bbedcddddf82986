"""Each process's part of every global batch."""

from __future__ import annotations

from typing import Any

import keras
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

    With a `seed`, arrays (such as an image folder read by
    `kerasft.finetune.load_image_folder`) come back as a
    `keras.utils.PyDataset` of this process's batches: each epoch, all
    rows are permuted with `seed` and the epoch number (the same
    permutation in every process), cut into global batches and each
    process takes its part. Call `fit` without `batch_size`. Its last
    global batch may be partial: it is cut to a multiple of the process
    count (a distribution's device count under
    `keras.distribution.DataParallel`), so fewer than that many rows,
    different ones each epoch, sit out an epoch; `drop_remainder=True`
    drops the partial batch.

    A `tf.data.Dataset` of single samples is shuffled (with `seed`, the
    same order in every process, a new one each epoch), batched by
    `batch_size` and cut; it comes back batched by `batch_size // n`. Its
    partial last global batch is dropped (its size is not known in
    advance).
    Without a multi-host job (one process), the data comes back whole
    (arrays without a `seed`), or in batches of `batch_size`.

    Example:

    ```python
    kerasft.distributed.initialize()
    local_x, local_y = kerasft.distributed.shard((x, y), batch_size=64)
    n = jax.process_count()
    model.fit(local_x, local_y, batch_size=64 // n, shuffle=False)
    # Or reshuffled each epoch, the same way in every process:
    batches = kerasft.distributed.shard((x, y), batch_size=64, seed=1)
    model.fit(batches, shuffle=False)
    ```

    Args:
        data: numpy arrays (or a dict, list or tuple of them, all with the
            same number of rows), or a `tf.data.Dataset` of unbatched
            samples.
        batch_size: int. The global batch size, a multiple of the number
            of processes.
        seed: int or None. Shuffle the data with this seed each epoch;
            `None` keeps its order. Defaults to `None`.
        drop_remainder: bool. Drop the last global batch when it is
            partial (with arrays and no `seed`, a partial batch that
            cannot be split evenly is refused otherwise). Defaults to
            `False`.

    Returns:
        The same structure with this process's rows (arrays, no `seed`),
        a `keras.utils.PyDataset` of this process's batches (arrays and a
        `seed`), or a batched dataset.

    Raises:
        ValueError: for a `batch_size` that the process count does not
            divide, arrays with different row counts, or a partial last
            batch of arrays without `seed` or `drop_remainder=True`, or
            arrays with a `seed` that hold less than one global batch the
            devices can share.
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
    total = _row_count(data)
    if seed is not None:
        return ShardedBatches(
            data, batch_size, seed=seed, drop_remainder=drop_remainder
        )
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


def _row_count(data):
    rows = {len(np.asarray(x)) for x in _leaves(data)}
    if len(rows) != 1:
        raise ValueError(
            "All arrays of `data` must have the same number of rows. "
            f"Received: data with row counts {sorted(rows)}"
        )
    return rows.pop()


def _unit():
    """Rows of a global batch must come in multiples of this: the devices
    of the current distribution, else the processes."""
    distribution = None
    if keras.backend.backend() == "jax":
        distribution = keras.distribution.distribution()
    mesh = getattr(distribution, "device_mesh", None)
    if mesh is not None:
        return int(np.asarray(mesh.devices).size)
    return process_count()


class ShardedBatches(keras.utils.PyDataset):
    """This process's part of every global batch, reshuffled each epoch.

    Built by `kerasft.distributed.shard` for arrays and a `seed`. Epoch
    `e` permutes the rows with `numpy.random.default_rng([seed, e])` (no
    permutation with `seed=None`), in every process alike, then cuts
    global batches of `batch_size` rows; the last one, if partial, is cut
    to a multiple of the job's device count (or dropped). Process `i` of
    `n` gets the `i`-th `n`-th of each.
    """

    def __init__(self, data, batch_size, *, seed=None, drop_remainder=False):
        super().__init__()
        self.data = data
        self.batch_size = batch_size
        self.seed = seed
        self.drop_remainder = drop_remainder
        self.epoch = 0
        self._cached = (None, None)
        self.rows = _row_count(data)
        self.unit = _unit()
        if batch_size % self.unit:
            raise ValueError(
                "`batch_size` (the global batch) must be a multiple of the "
                f"number of devices ({self.unit}). "
                f"Received: batch_size={batch_size}"
            )
        last = self.rows % batch_size
        self.last = 0 if drop_remainder else last - last % self.unit
        if self.rows // batch_size == 0 and not self.last:
            raise ValueError(
                f"`data` has {self.rows} rows, fewer than one global batch "
                f"that {self.unit} devices can share. Received: "
                f"batch_size={batch_size}, drop_remainder={drop_remainder}"
            )

    @property
    def num_batches(self):
        return self.rows // self.batch_size + (1 if self.last else 0)

    def __len__(self):
        return self.num_batches

    @property
    def rows_per_epoch(self):
        """Rows that an epoch uses (the same count every epoch)."""
        return self.rows // self.batch_size * self.batch_size + self.last

    def _order(self):
        if self.seed is None:
            return np.arange(self.rows)
        if self._cached[0] != self.epoch:
            rng = np.random.default_rng([self.seed, self.epoch])
            self._cached = (self.epoch, rng.permutation(self.rows))
        return self._cached[1]

    def __getitem__(self, index):
        if not 0 <= index < self.num_batches:
            raise IndexError(f"batch {index} of {self.num_batches}")
        start = index * self.batch_size
        size = min(self.batch_size, self.rows_per_epoch - start)
        part = size // process_count()
        first = start + process_index() * part
        rows = self._order()[first : first + part]
        batch = _map(lambda x: np.asarray(x)[rows], self.data)
        return tuple(batch) if isinstance(batch, list) else batch

    def on_epoch_end(self):
        self.epoch += 1


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
