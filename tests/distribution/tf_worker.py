"""TensorFlow worker: kerasft callbacks under tf.distribute.MirroredStrategy.

Run by test_tf_distribution.py as `KERAS_BACKEND=tensorflow python
tf_worker.py`. Splits the CPU into two logical devices before TensorFlow
initializes, runs the scenario of `_scenario.py` without a strategy and
under `MirroredStrategy` over both devices (model and optimizer created in
`strategy.scope()`, `fit` outside it), and prints one `RESULT` JSON line.
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

(_CPU,) = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _CPU,
    [tf.config.LogicalDeviceConfiguration()] * 2,
)
# As the test session does (tests/_fast_compile.py).
tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})

import _scenario  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402


def replica_summary(model, strategy):
    """Variables that are not mirrored, and those whose replicas differ."""
    out = {"not_mirrored": [], "replica_problems": []}
    for v in list(model.weights) + list(model.optimizer.variables):
        copies = strategy.experimental_local_results(v.value)
        if len(copies) != strategy.num_replicas_in_sync:
            out["not_mirrored"].append(v.path)
            continue
        first = copies[0].numpy()
        if any(not np.array_equal(first, c.numpy()) for c in copies[1:]):
            out["replica_problems"].append(v.path)
    return out


class ReplicaCheck(keras.callbacks.Callback):
    """After every step, records variables that are not mirrored or agree."""

    def __init__(self, strategy):
        super().__init__()
        self.strategy = strategy
        self.problems = set()
        self.not_mirrored = set()
        self.checks = 0

    def on_train_batch_end(self, batch, logs=None):
        summary = replica_summary(self.model, self.strategy)
        self.problems.update(summary["replica_problems"])
        self.not_mirrored.update(summary["not_mirrored"])
        self.checks += 1


def run(init, strategy):
    keras.backend.clear_session()
    keras.utils.set_random_seed(1)
    with strategy.scope():
        model = _scenario.build_model()
        model.set_weights(init)
        l2sp = _scenario.regularize(model)
        _scenario.compile_model(model)
    schedule, freeze = _scenario.callbacks()
    check = ReplicaCheck(strategy)
    losses, frozen_ok = _scenario.fit(model, schedule, freeze, [check])
    result = {
        "losses": losses,
        "replicas": strategy.num_replicas_in_sync,
        "schedule_stages": _scenario.stage_names(schedule),
        "freeze_until_stages": _scenario.stage_names(freeze),
        "frozen_unchanged": frozen_ok,
        "replica_problems": sorted(check.problems),
        "not_mirrored": sorted(check.not_mirrored),
        "replica_checks": check.checks,
        "optimizer": type(model.optimizer).__name__,
        "penalty": l2sp.penalty(),
    }
    return result, _scenario.values(model)


def main():
    init = _scenario.initial_weights()
    single, reference = run(init, tf.distribute.get_strategy())
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    result = {"single": single}
    result["mirrored"], values = run(init, mirrored)
    result["mirrored"]["max_difference"] = _scenario.max_difference(
        reference, values
    )
    _scenario.report(result)


if __name__ == "__main__":
    sys.exit(main())
