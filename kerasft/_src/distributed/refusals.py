"""Distributed setups kerasft refuses, with the reason and a way out."""

from __future__ import annotations

from typing import Any

import keras

ISSUE = "https://github.com/keras-team/keras/issues/20585"


def model_strategy(model: keras.Model) -> Any:
    """The model's `tf.distribute` strategy on TensorFlow, else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    return getattr(model, "distribute_strategy", None)


def is_multi_worker(strategy: Any) -> bool:
    """Whether `strategy` is a `MultiWorkerMirroredStrategy`."""
    if strategy is None:
        return False
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def check_not_multi_worker(model: keras.Model, name: str) -> None:
    """Refuses TensorFlow's `MultiWorkerMirroredStrategy`.

    Keras 3's TensorFlow `fit` fails under it even without kerasft (a
    `PerReplica` value reaches the train step: keras-team/keras#20585,
    checked on Keras 3.15.1), so kerasft says so before the first step.
    `MirroredStrategy` (one machine) is supported.
    """
    strategy = model_strategy(model)
    if is_multi_worker(strategy):
        raise ValueError(
            f"{name} does not run under TensorFlow's "
            "MultiWorkerMirroredStrategy: Keras 3's `fit` fails under it "
            '("Attempt to convert a value (PerReplica:{...}) with an '
            f'unsupported type"), keras-team/keras#20585 ({ISSUE}). For '
            "several hosts, use the JAX backend: kerasft.distributed."
            "initialize() and keras.distribution.DataParallel (see "
            "docs/distributed.md). On one machine, tf.distribute."
            "MirroredStrategy works. Received: "
            f"strategy={type(strategy).__name__} (a "
            "tf.distribute.MultiWorkerMirroredStrategy)"
        )
