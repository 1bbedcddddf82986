"""JAX worker: kerasft callbacks under keras.distribution on CPU devices.

Run by test_jax_distribution.py as
`XLA_FLAGS=--xla_force_host_platform_device_count=4 KERAS_BACKEND=jax
python jax_worker.py`: the device count must be set before jax is imported.
Runs the scenario of `_scenario.py` on one device, under `DataParallel`
over all devices and under `ModelParallel` on a 2x2 (batch, model) mesh
with a `LayoutMap` that shards the BERT kernels, and prints one `RESULT`
JSON line.
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import _scenario  # noqa: E402
import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

SHARDED = {
    r"token_embedding/embeddings": (None, "model"),
    r"transformer_layer_\d+/feedforward_intermediate_dense/kernel": (
        None,
        "model",
    ),
    r"transformer_layer_\d+/feedforward_output_dense/kernel": ("model", None),
    r"transformer_layer_\d+/self_attention_layer/(query|key|value)/kernel": (
        None,
        "model",
        None,
    ),
}


def distributions():
    devices = keras.distribution.list_devices()
    data_parallel = keras.distribution.DataParallel(devices=devices)
    mesh = keras.distribution.DeviceMesh(
        (len(devices) // 2, 2), ["batch", "model"], devices
    )
    layout_map = keras.distribution.LayoutMap(mesh)
    for pattern, axes in SHARDED.items():
        layout_map[pattern] = axes
    model_parallel = keras.distribution.ModelParallel(
        layout_map=layout_map, batch_dim_name="batch"
    )
    return {"data_parallel": data_parallel, "model_parallel": model_parallel}


def _key(index):
    return tuple((s.start, s.stop, s.step) for s in index)


def replica_problems(variables):
    """Paths of variables whose copies of one slice differ across devices."""
    bad = []
    for v in variables:
        groups = {}
        for shard in v.value.addressable_shards:
            groups.setdefault(_key(shard.index), []).append(
                np.asarray(shard.data)
            )
        if any(
            not np.array_equal(copies[0], c)
            for copies in groups.values()
            for c in copies[1:]
        ):
            bad.append(v.path)
    return bad


def layout_summary(model):
    """Devices and sharding of every model and optimizer variable."""
    n = len(jax.devices())
    out = {"not_on_all_devices": [], "sharded": []}
    for v in list(model.weights) + list(model.optimizer.variables):
        sharding = v.value.sharding
        if len(sharding.device_set) != n:
            out["not_on_all_devices"].append(v.path)
        if not sharding.is_fully_replicated:
            out["sharded"].append(v.path)
    return out


class ReplicaCheck(keras.callbacks.Callback):
    """After every step, checks that all replicas of each variable agree."""

    def __init__(self):
        super().__init__()
        self.problems = set()
        self.checks = 0

    def on_train_batch_end(self, batch, logs=None):
        self.model.jax_state_sync()
        variables = list(self.model.weights) + list(
            self.model.optimizer.variables
        )
        self.problems.update(replica_problems(variables))
        self.checks += 1


def run(init, distribution=None):
    keras.backend.clear_session()
    keras.utils.set_random_seed(1)
    if distribution is not None:
        keras.distribution.set_distribution(distribution)
    try:
        model = _scenario.build_model()
        model.set_weights(init)
        l2sp = _scenario.regularize(model)
        _scenario.compile_model(model)
        schedule, freeze = _scenario.callbacks()
        check = ReplicaCheck()
        losses, frozen_ok = _scenario.fit(model, schedule, freeze, [check])
        result = {
            "losses": losses,
            "trainable_sharded": [
                v.path
                for v in model.trainable_variables
                if not v.value.sharding.is_fully_replicated
            ],
            "schedule_stages": _scenario.stage_names(schedule),
            "freeze_until_stages": _scenario.stage_names(freeze),
            "frozen_unchanged": frozen_ok,
            "replica_problems": sorted(check.problems),
            "replica_checks": check.checks,
            "optimizer": type(model.optimizer).__name__,
            "penalty": l2sp.penalty(),
            **({} if distribution is None else layout_summary(model)),
        }
        return result, _scenario.values(model)
    finally:
        keras.distribution.set_distribution(None)


def main():
    init = _scenario.initial_weights()
    result = {"devices": len(jax.devices())}
    single, reference = run(init)
    result["single"] = single
    for name, distribution in distributions().items():
        result[name], values = run(init, distribution)
        result[name]["max_difference"] = _scenario.max_difference(
            reference, values
        )
    _scenario.report(result)


if __name__ == "__main__":
    sys.exit(main())
