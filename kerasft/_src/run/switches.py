"""What the switches of a fine-tuning run change in its training.

One place turns the options of `FinetuneConfig` into what `compile` and
`fit` receive: the data of every phase (`fit_inputs`: the targets, the
loss that fits them, the class weights), the callbacks the switches add
to each phase (`phase_callbacks`) and the dtype policy of the run
(`dtype_policy`). A new switch that maps the data or adds a callback
belongs here, so the phase loop stays the same.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os

import keras
import numpy as np

from kerasft._src.run.report import TENSORBOARD_DIR

# What early stopping watches: the held-out loss, which is smoother than
# the held-out accuracy of a small held-out set (and has no ties).
MONITOR = "val_loss"


@dataclasses.dataclass(frozen=True)
class FitInputs:
    """The data of each phase, with the loss and class weights it needs.

    Attributes:
        train: tuple. `(x, y)`, as `fit` takes them.
        heldout: tuple. `(x, y)`, `fit`'s `validation_data`.
        loss: str or keras.losses.Loss. For `compile`.
        class_weight: dict or None. `{class index: weight}` for `fit`.
    """

    train: tuple
    heldout: tuple
    loss: str | keras.losses.Loss
    class_weight: dict | None


def fit_inputs(config, dataset) -> FitInputs:
    """The targets, loss and class weights of a validated config."""
    num_classes = len(dataset.class_names)
    train, heldout = dataset.train, dataset.heldout
    loss = "sparse_categorical_crossentropy"
    if config.label_smoothing:
        # SparseCategoricalCrossentropy has no `label_smoothing` (Keras
        # 3.15): the targets become one-hot for CategoricalCrossentropy.
        # "accuracy" then resolves to categorical accuracy, same values.
        train = (train[0], _one_hot(train[1], num_classes))
        heldout = (heldout[0], _one_hot(heldout[1], num_classes))
        loss = keras.losses.CategoricalCrossentropy(
            label_smoothing=config.label_smoothing
        )
    class_weight = None
    if config.class_weight == "auto":
        class_weight = balanced_class_weights(dataset.train[1], num_classes)
    return FitInputs(train, heldout, loss, class_weight)


def _one_hot(labels, num_classes):
    return np.eye(num_classes, dtype="float32")[labels]


def balanced_class_weights(labels, num_classes: int) -> dict:
    """`{class: n_samples / (n_classes * count)}` over integer labels.

    scikit-learn's "balanced" weights: each class contributes the same
    total weight to the loss. Classes without a sample get no entry
    (`fit` weighs them 1.0).
    """
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=num_classes)
    return {
        int(c): float(len(labels) / (num_classes * counts[c]))
        for c in range(num_classes)
        if counts[c]
    }


def phase_callbacks(config, phase_key: str) -> list:
    """The callbacks the switches add to the phase named `phase_key`."""
    callbacks = []
    if config.patience is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=MONITOR,
                patience=config.patience,
                restore_best_weights=True,
            )
        )
    if config.tensorboard:
        # One folder per phase: each phase's `fit` counts epochs from 0.
        log_dir = os.path.join(config.out, TENSORBOARD_DIR, phase_key)
        callbacks.append(keras.callbacks.TensorBoard(log_dir=log_dir))
    return callbacks


def early_stopping(callbacks) -> keras.callbacks.EarlyStopping | None:
    """The phase's `EarlyStopping` callback, if `patience` added one."""
    return next(
        (c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping)),
        None,
    )


@contextlib.contextmanager
def dtype_policy(name: str):
    """Sets Keras's global dtype policy to `name`, and back afterwards.

    `"none"` leaves the current policy alone. Layers take the global
    policy when they are made, so the model is built inside; `compile`
    then wraps the optimizer in a `keras.optimizers.LossScaleOptimizer`
    for a `mixed_float16` model (`auto_scale_loss=True`), which is the
    loss scaling float16 gradients need.
    """
    if name == "none":
        yield
        return
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


def describe(config, inputs: FitInputs, class_names) -> list:
    """The lines that tell what the switches do, for the run's log."""
    lines = []
    if config.mixed_precision != "none":
        scaling = (
            ", dynamic loss scaling"
            if config.mixed_precision == "mixed_float16"
            else ""
        )
        lines.append(
            f"Mixed precision: {config.mixed_precision} (float32 "
            f"variables and output layer{scaling})"
        )
    if inputs.class_weight is not None:
        weights = ", ".join(
            f"{class_names[c]} {w:.3g}" for c, w in inputs.class_weight.items()
        )
        lines.append(f"Class weights (balanced): {weights}")
    return lines
