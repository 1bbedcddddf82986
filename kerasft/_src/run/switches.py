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

from kerasft._src.callbacks.ema import EMA
from kerasft._src.mixing import Mixer
from kerasft._src.mixing import MixOff
from kerasft._src.mixing import mix
from kerasft._src.run.report import TENSORBOARD_DIR

# What early stopping watches: the held-out loss, which is smoother than
# the held-out accuracy of a small held-out set (and has no ties).
MONITOR = "val_loss"


@dataclasses.dataclass(frozen=True)
class FitInputs:
    """The data of each phase, with the loss and class weights it needs.

    Attributes:
        train: tuple. `(x, y)`, or `(dataset,)` when the batches are mixed,
            as `fit` takes them.
        heldout: tuple. `(x, y)`, `fit`'s `validation_data`.
        loss: str or keras.losses.Loss. For `compile`.
        class_weight: dict or None. `{class index: weight}` for `fit`.
        batch_size: int or None. `fit`'s `batch_size`: `None` for a
            dataset, which is batched already.
        mixer: Mixer or None. The MixUp/CutMix function the training
            dataset maps (`kerasft.augment.mix`).
    """

    train: tuple
    heldout: tuple
    loss: str | keras.losses.Loss
    class_weight: dict | None
    batch_size: int | None
    mixer: Mixer | None = None

    @property
    def fit_options(self) -> dict:
        """`fit`'s `batch_size` and `shuffle`: a dataset is both already."""
        arrays = self.batch_size is not None
        return {"batch_size": self.batch_size, "shuffle": arrays}


def fit_inputs(config, dataset) -> FitInputs:
    """The targets, loss and class weights of a validated config."""
    num_classes = len(dataset.class_names)
    train, heldout = dataset.train, dataset.heldout
    loss = "sparse_categorical_crossentropy"
    mixing = config.mixup or config.cutmix
    if config.label_smoothing or mixing:
        # SparseCategoricalCrossentropy has no `label_smoothing` (Keras
        # 3.15), and mixed labels are soft rows: the targets become one-hot
        # for CategoricalCrossentropy. "accuracy" then resolves to
        # categorical accuracy, same values.
        train = (train[0], _one_hot(train[1], num_classes))
        heldout = (heldout[0], _one_hot(heldout[1], num_classes))
        loss = keras.losses.CategoricalCrossentropy(
            label_smoothing=config.label_smoothing
        )
    class_weight = None
    if config.class_weight == "auto":
        class_weight = balanced_class_weights(dataset.train[1], num_classes)
    if config.modality == "text":
        return FitInputs(
            (_text_batches(train, config.batch_size, config.seed),),
            heldout,
            loss,
            class_weight,
            None,
        )
    if not mixing:
        return FitInputs(train, heldout, loss, class_weight, config.batch_size)
    mixer = mix(_mix_kind(config), num_classes=num_classes, seed=config.seed)
    mixed = _mixed_batches(train, mixer, config.batch_size, config.seed)
    return FitInputs((mixed,), heldout, loss, class_weight, None, mixer)


def _text_batches(train, batch_size, seed):
    """Batches of raw strings in a new order each epoch.

    A keras-hub model given lists of strings makes a `tf.data.Dataset` of
    them and ignores `shuffle=True`: every epoch would see one order.
    """
    from kerasft._src.text_dataset import text_dataset

    return text_dataset(*train, batch_size, seed=seed)


def _mix_kind(config) -> str:
    if config.mixup and config.cutmix:
        return "both"
    return "mixup" if config.mixup else "cutmix"


def _mixed_batches(train, mixer, batch_size, seed):
    """Shuffled batches (a new order each epoch), mixed by `mixer`.

    The map runs one batch at a time: the mixer's per-batch draws then
    come in batch order, so a seeded run mixes the same way again.
    """
    import tensorflow as tf

    x, y = train
    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .map(mixer)
        .prefetch(tf.data.AUTOTUNE)
    )


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


def phase_callbacks(config, inputs: FitInputs, phase_key, epochs) -> list:
    """The callbacks the switches add to a phase of `epochs` epochs.

    `EMA` comes last: it writes the average into the model when the
    phase ends, after the other callbacks.
    """
    callbacks = []
    if inputs.mixer is not None and config.mix_off_epochs:
        off_epoch = max(epochs - config.mix_off_epochs, 0)
        callbacks.append(MixOff(inputs.mixer, off_epoch))
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
    if config.ema is not None:
        # warmup: a phase is short, the average must leave its start.
        callbacks.append(EMA(config.ema, warmup=True))
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
    if inputs.mixer is not None:
        kind = {"mixup": "MixUp", "cutmix": "CutMix"}
        name = kind.get(inputs.mixer.kind, "MixUp or CutMix (one per batch)")
        off = (
            f", unmixed for the last {config.mix_off_epochs} epoch(s) of "
            "each phase"
            if config.mix_off_epochs
            else ""
        )
        lines.append(f"Mixing: {name} of the training batches{off}")
    if config.ema is not None:
        lines.append(
            f"Weight averaging: EMA with decay {config.ema:g} in each phase "
            "(held-out evaluation and the saved model use the average)"
        )
    return lines
