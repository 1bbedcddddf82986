"""The processes of a multi-host job, and JAX's distributed runtime.

`initialize` reads the coordinator address, the process count and this
process's index from its arguments or from the environment, in this order:
kerasft's `--distribute` flags (arguments), JAX's variables
(`JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`), Keras's
(`KERAS_DISTRIBUTION_JOB_ADDRESSES`, `KERAS_DISTRIBUTION_NUM_PROCESSES`,
`KERAS_DISTRIBUTION_PROCESS_ID`), SLURM's (`SLURM_PROCID`, `SLURM_NTASKS`,
the first host of `SLURM_JOB_NODELIST`) and an indexed Kubernetes Job's
(`JOB_COMPLETION_INDEX`; its count and coordinator come from the JAX
variables set in the Job's spec).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import keras

from kerasft._src import keras_internals
from kerasft._src.logs import get_logger
from kerasft._src.validation import check_int
from kerasft._src.validation import check_type

# Seconds without a heartbeat after which JAX's coordination service
# declares a process dead and stops the others (JAX's own default is 100).
DEFAULT_HEARTBEAT_TIMEOUT = 60
DEFAULT_INITIALIZATION_TIMEOUT = 300
# The coordinator's port when only its host is known (SLURM).
DEFAULT_PORT = 12321

_SOURCES = (
    # (coordinator, count, index) variable names, first match wins.
    ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"),
    (
        "KERAS_DISTRIBUTION_JOB_ADDRESSES",
        "KERAS_DISTRIBUTION_NUM_PROCESSES",
        "KERAS_DISTRIBUTION_PROCESS_ID",
    ),
)


def first_slurm_host(nodelist: str) -> str:
    """The first host of a SLURM node list (`node[03-05,9],gpu1` -> node03)."""
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not match:
        raise ValueError(
            "Cannot read the first host of SLURM_JOB_NODELIST. "
            f"Received: SLURM_JOB_NODELIST={nodelist!r}"
        )
    prefix, ranges = match.groups()
    if ranges is None:
        return prefix
    return prefix + ranges.split(",")[0].split("-")[0]


def _int_from(environ, name):
    value = environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(
            f"The environment variable {name} must be an integer. "
            f"Received: {name}={value!r}"
        ) from None


def cluster_from_environment(
    environ: Mapping[str, str] | None = None, port: int = DEFAULT_PORT
) -> dict[str, Any]:
    """Coordinator, count and index found in the environment (or None)."""
    env = os.environ if environ is None else environ
    found = {"coordinator_address": None, "num_processes": None}
    found["process_id"] = None
    for address, count, index in _SOURCES:
        coordinator = env.get(address)
        if coordinator and found["coordinator_address"] is None:
            found["coordinator_address"] = coordinator.split(",")[0]
        for key, name in (("num_processes", count), ("process_id", index)):
            if found[key] is None:
                found[key] = _int_from(env, name)
    if "SLURM_PROCID" in env:
        if found["process_id"] is None:
            found["process_id"] = _int_from(env, "SLURM_PROCID")
        if found["num_processes"] is None:
            found["num_processes"] = _int_from(env, "SLURM_NTASKS")
        nodelist = env.get("SLURM_JOB_NODELIST")
        if found["coordinator_address"] is None and nodelist:
            host = first_slurm_host(nodelist)
            found["coordinator_address"] = f"{host}:{port}"
    if found["process_id"] is None and "JOB_COMPLETION_INDEX" in env:
        found["process_id"] = _int_from(env, "JOB_COMPLETION_INDEX")
    return found


def resolve_cluster(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Arguments first, then the environment; checks the result."""
    check_type(
        "coordinator_address",
        coordinator_address,
        str,
        "a str",
        allow_none=True,
    )
    check_int("num_processes", num_processes, minimum=1, allow_none=True)
    check_int("process_id", process_id, minimum=0, allow_none=True)
    found = cluster_from_environment(environ)
    given = {
        "coordinator_address": coordinator_address,
        "num_processes": num_processes,
        "process_id": process_id,
    }
    cluster = {k: v if v is not None else found[k] for k, v in given.items()}
    if cluster["num_processes"] is None:
        cluster["num_processes"] = 1
    if cluster["num_processes"] == 1:
        cluster["process_id"] = cluster["process_id"] or 0
    missing = [k for k, v in cluster.items() if v is None]
    if cluster["num_processes"] > 1 and missing:
        raise ValueError(
            f"A job of {cluster['num_processes']} processes needs "
            f"{' and '.join(missing)}: pass them, or set JAX_COORDINATOR_"
            "ADDRESS / JAX_PROCESS_ID (or run under SLURM or an indexed "
            f"Kubernetes Job). Received: {cluster}"
        )
    if cluster["process_id"] >= cluster["num_processes"]:
        raise ValueError(
            "`process_id` must be smaller than `num_processes`. "
            f"Received: process_id={cluster['process_id']}, "
            f"num_processes={cluster['num_processes']}"
        )
    return cluster


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    heartbeat_timeout: int = DEFAULT_HEARTBEAT_TIMEOUT,
    initialization_timeout: int = DEFAULT_INITIALIZATION_TIMEOUT,
) -> dict[str, Any]:
    """Joins this process to a multi-host JAX job, with bounded timeouts.

    Call it first thing in every process, before any JAX computation, then
    set a `keras.distribution` over `keras.distribution.list_devices()`
    (all processes' devices). It calls `jax.distributed.initialize` with
    the coordination service's heartbeat timeout set: when a process dies,
    the others stop with an error after about `heartbeat_timeout` seconds
    instead of waiting in a collective. Every process then uses the same
    random seed (the one set with `keras.utils.set_random_seed`, or one
    agreed on by all processes), so they create the same initial weights.
    With one process it does nothing.

    Example:

    ```python
    # On every host; the count, index and coordinator come from the
    # environment under SLURM or with JAX_COORDINATOR_ADDRESS etc.
    kerasft.distributed.initialize()
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(auto_shard_dataset=False)
    )
    ```

    Args:
        coordinator_address: str or None. `host:port` of process 0.
            Defaults to `None` (from the environment).
        num_processes: int or None. Number of processes. Defaults to
            `None` (from the environment; 1 if none is set).
        process_id: int or None. This process's index. Defaults to `None`
            (from the environment).
        heartbeat_timeout: int. Seconds after which a silent process is
            declared dead and the job stops. Defaults to `60`.
        initialization_timeout: int. Seconds to wait for all processes to
            join. Defaults to `300`.

    Returns:
        A dict with `coordinator_address`, `num_processes` and
        `process_id`.

    Raises:
        ValueError: on a backend other than JAX for more than one process,
            for missing or inconsistent values.
        TypeError: for arguments of the wrong type.
    """
    check_int("heartbeat_timeout", heartbeat_timeout, minimum=1)
    check_int("initialization_timeout", initialization_timeout, minimum=1)
    cluster = resolve_cluster(coordinator_address, num_processes, process_id)
    if cluster["num_processes"] == 1:
        return cluster
    backend = keras.backend.backend()
    if backend != "jax":
        raise ValueError(
            "kerasft.distributed.initialize starts JAX's multi-controller "
            "runtime; run with KERAS_BACKEND=jax. On TensorFlow, "
            "MultiWorkerMirroredStrategy fails in Keras 3's fit "
            "(keras-team/keras#20585); on torch, use torchrun and the DDP "
            f"recipe of docs/distributed.md. Received: backend={backend!r}"
        )
    import jax

    jax.distributed.initialize(
        coordinator_address=cluster["coordinator_address"],
        num_processes=cluster["num_processes"],
        process_id=cluster["process_id"],
        initialization_timeout=initialization_timeout,
        heartbeat_timeout_seconds=heartbeat_timeout,
    )
    keras_internals.agree_on_random_seed()
    get_logger("distributed").info(
        "Process %d of %d joined the job (coordinator %s).",
        cluster["process_id"],
        cluster["num_processes"],
        cluster["coordinator_address"],
    )
    return cluster


def process_index() -> int:
    """This process's index (0 without a multi-host JAX job)."""
    if keras.backend.backend() != "jax":
        return 0
    import jax

    return jax.process_index()


def process_count() -> int:
    """The number of processes (1 without a multi-host JAX job)."""
    if keras.backend.backend() != "jax":
        return 1
    import jax

    return jax.process_count()


def all_gather_ints(values: list[int], width: int) -> list[list[int]]:
    """Every process's list of ints (padded to `width` with -1).

    A collective: every process of the job must call it. Without a
    multi-host JAX job, returns `[values]`.
    """
    padded = (list(values) + [-1] * width)[:width]
    if process_count() == 1:
        return [padded]
    import numpy as np
    from jax.experimental import multihost_utils

    gathered = multihost_utils.process_allgather(np.asarray(padded, "int64"))
    return np.asarray(gathered).reshape(-1, width).tolist()
