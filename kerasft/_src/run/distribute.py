"""A fine-tuning run as one process of a JAX multi-controller job.

With `distribute="jax"` (`kerasft finetune --distribute jax`), every
process runs the same command: `join` starts JAX's distributed runtime
(`kerasft.distributed.initialize`, which reads the cluster from the
options or the environment) and returns the `Job`, whose
`keras.distribution.DataParallel` spans every process's devices. Each
process feeds its part of every global batch (`shard_inputs`), and only
process 0 writes the run folder, the history and the export; the others
log only. Errors before training are agreed on (`Job.together`), so a run
that one process refuses ends in every process at once, instead of
leaving the others waiting in a collective.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib

import keras
import numpy as np

from kerasft._src.distributed.cluster import all_gather_ints
from kerasft._src.distributed.cluster import initialize
from kerasft._src.distributed.shard import ShardedBatches
from kerasft._src.run.config import FinetuneError


@dataclasses.dataclass(frozen=True)
class Job:
    """This process's place in the run.

    Attributes:
        process_id: int. This process's index (0 for one process).
        num_processes: int. The number of processes.
        distribution: keras.distribution.Distribution or None. The
            `DataParallel` of a distributed run.
    """

    process_id: int = 0
    num_processes: int = 1
    distribution: keras.distribution.Distribution | None = None

    @property
    def writer(self) -> bool:
        """Whether this process writes the run folder (process 0)."""
        return self.process_id == 0

    def scope(self):
        """The distribution's scope, or a no-op for one process."""
        if self.distribution is None:
            return contextlib.nullcontext()
        return self.distribution.scope()

    def local_config(self, config):
        """`config` as this process runs it: only the writer writes."""
        if self.writer:
            return config
        return dataclasses.replace(config, export=False, tensorboard=False)

    @contextlib.contextmanager
    def together(self):
        """Runs a block in every process; if one fails, all stop.

        A collective (every process must enter it): each process says
        whether its block failed. A failing process raises its error, the
        others a `FinetuneError` that names it.
        """
        error = None
        try:
            yield
        except Exception as e:  # re-raised below, after the agreement
            error = e
        if self.num_processes > 1:
            failed = [
                row[0] for row in all_gather_ints([int(error is not None)], 1)
            ]
        else:
            failed = [int(error is not None)]
        if error is not None:
            raise error
        if any(failed):
            raise FinetuneError(
                f"process {failed.index(1)} of the job refused the run "
                "(its log says why); every process stops"
            )

    def describe(self, config) -> str:
        devices = np.asarray(self.distribution.device_mesh.devices).size
        batch = config.batch_size
        return (
            f"Distributed: process {self.process_id} of "
            f"{self.num_processes}, DataParallel over {devices} device(s); "
            f"global batch {batch} ({batch // self.num_processes} per "
            f"process); process 0 writes {config.out}"
        )


def join(config) -> Job:
    """Joins the job of a validated config (`distribute="jax"`)."""
    if config.distribute == "none":
        return Job()
    try:
        cluster = initialize(
            config.coordinator, config.num_processes, config.process_id
        )
    except ValueError as error:
        raise FinetuneError(str(error)) from None
    devices = keras.distribution.list_devices()
    if config.batch_size % len(devices):
        raise FinetuneError(
            "`batch_size` (the global batch) must be a multiple of the "
            f"job's {len(devices)} devices. "
            f"Received: batch_size={config.batch_size}"
        )
    distribution = keras.distribution.DataParallel(
        devices=devices, auto_shard_dataset=False
    )
    return Job(cluster["process_id"], cluster["num_processes"], distribution)


def shard_inputs(config, inputs, log):
    """`inputs` with this process's batches, the global batch kept.

    The training batches are reshuffled each epoch from `seed`, alike in
    every process; the held-out ones keep their order. Call inside the
    job's scope: a last, partial global batch is cut to a multiple of its
    devices.
    """
    batches = ShardedBatches(inputs.train, config.batch_size, seed=config.seed)
    held = ShardedBatches(inputs.heldout, config.batch_size)
    for name, part in (("training", batches), ("held-out", held)):
        left = part.rows - part.rows_per_epoch
        if left:
            log(
                f"{left} of {part.rows} {name} images sit out each epoch, "
                "so that every device gets an equal part of the last batch"
                + (" (different ones each epoch)" if name == "training" else "")
            )
    return dataclasses.replace(
        inputs, train=(batches,), heldout=held, batch_size=None
    )


def fingerprint(model) -> str:
    """A short SHA-256 of the model's weights, to compare processes."""
    digest = hashlib.sha256()
    for value in model.get_weights():
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()[:16]
