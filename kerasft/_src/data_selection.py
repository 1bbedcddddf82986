"""Data selection: find the training samples a model finds hardest to fit.

Labels in real fine-tuning sets are noisy, and a pretrained model (or a
linear probe trained on its frozen features) gives the mislabeled samples
a high loss. `per_sample_loss` computes the loss of every sample;
`select_by_loss` drops the highest-loss fraction (`mode="drop"`, returning
the indices to keep) or down-weights it (`mode="weight"`, returning
`sample_weight` for `fit`). Dropping by loss is the "small-loss" trick of
Co-teaching (Han et al., 2018) and of loss-based data pruning; use a model
that has not memorized the training set (a probe trained for an epoch or
two, or a model trained on another split), since a model that fits every
label gives every sample a low loss.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from kerasft._src.validation import check_bool
from kerasft._src.validation import check_int
from kerasft._src.validation import check_number

MODES = ("drop", "weight")


def _resolve_loss(model, loss):
    """Returns a callable `(y_true, y_pred) -> per-sample losses`."""
    if loss is None:
        loss = getattr(model, "loss", None)
        if loss is None:
            raise ValueError(
                f"Model '{model.name}' is not compiled with a loss, so "
                "`loss` must be given (a loss name such as "
                "'sparse_categorical_crossentropy', a keras.losses.Loss or a "
                "function). Received: loss=None"
            )
        if isinstance(loss, (dict, list, tuple)):
            raise ValueError(
                "`per_sample_loss` supports models with one output and one "
                f"loss. Model '{model.name}' was compiled with "
                f"loss={loss!r}; pass `loss=` for the output to score."
            )
    if isinstance(loss, str):
        try:
            loss = keras.losses.get(loss)
        except ValueError as error:
            raise ValueError(
                "`loss` must be a Keras loss name, a keras.losses.Loss or a "
                f"function. Received: loss={loss!r}"
            ) from error
    if isinstance(loss, keras.losses.Loss):
        # Same loss with the reduction switched off: one value per sample.
        config = dict(loss.get_config(), reduction=None)
        return type(loss).from_config(config)
    if callable(loss):
        return loss
    raise TypeError(
        "`loss` must be a Keras loss name, a keras.losses.Loss or a function "
        f"(y_true, y_pred) -> losses. Received: loss={loss!r} of type "
        f"{type(loss).__name__}"
    )


def _num_samples(x) -> int:
    leaves = keras.tree.flatten(x)
    if not leaves:
        raise ValueError(f"`x` holds no arrays. Received: x={x!r}")
    sizes = {len(leaf) for leaf in leaves}
    if len(sizes) != 1:
        raise ValueError(
            "All inputs in `x` must have the same number of samples. "
            f"Received: sizes {sorted(sizes)}"
        )
    return sizes.pop()


def per_sample_loss(
    model: keras.Model,
    x: Any,
    y: Any,
    *,
    loss: Any = None,
    batch_size: int = 256,
) -> np.ndarray:
    """Computes the loss of every sample under a model, in inference mode.

    Example:

    ```python
    losses = kerasft.data_selection.per_sample_loss(
        model, x_train, y_train, loss="sparse_categorical_crossentropy"
    )
    worst = losses.argsort()[::-1][:20]  # the 20 most suspicious labels
    ```

    Args:
        model: keras.Model. A model with one output (a classifier trained
            or probed on the task).
        x: Inputs, as `model.predict` takes them (array, list or dict of
            arrays; not a dataset, so that samples keep their indices).
        y: array. Targets, one per sample, as the loss takes them.
        loss: The loss: a Keras loss name, a `keras.losses.Loss` (its
            reduction is switched off) or a function `(y_true, y_pred)`
            returning one loss per sample. Defaults to `None`: the loss the
            model was compiled with.
        batch_size: int. Batch size for prediction. Defaults to `256`.

    Returns:
        A float64 numpy array of shape `(num_samples,)`.

    Raises:
        ValueError: if the model has no compiled loss and `loss` is None,
            has several outputs, or `x` and `y` differ in length.
        TypeError: for a `model`, `loss` or `batch_size` of the wrong type.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a keras.Model. "
            f"Received: model={model!r} of type {type(model).__name__}"
        )
    check_int("batch_size", batch_size, minimum=1)
    loss_fn = _resolve_loss(model, loss)
    n = _num_samples(x)
    y = np.asarray(y)
    if len(y) != n:
        raise ValueError(
            "`x` and `y` must have the same number of samples. "
            f"Received: {n} inputs and {len(y)} targets"
        )
    predictions = model.predict(x, batch_size=batch_size, verbose=0)
    if isinstance(predictions, (list, tuple, dict)):
        raise ValueError(
            "`per_sample_loss` supports models with one output. "
            f"Model '{model.name}' returns "
            f"{len(keras.tree.flatten(predictions))} outputs."
        )
    losses = []
    for start in range(0, n, batch_size):
        stop = start + batch_size
        value = loss_fn(
            keras.ops.convert_to_tensor(y[start:stop]),
            keras.ops.convert_to_tensor(predictions[start:stop]),
        )
        value = np.asarray(keras.ops.convert_to_numpy(value), "float64")
        if value.ndim == 0:
            raise ValueError(
                "`loss` returned one value for a whole batch; it must "
                "return one loss per sample (pass a loss name, a "
                "keras.losses.Loss, or a function without reduction). "
                f"Received: loss={loss!r}"
            )
        losses.append(value.reshape(len(value), -1).mean(axis=1))
    return np.concatenate(losses)


def _class_labels(y):
    y = np.asarray(y)
    if y.ndim >= 2 and y.shape[-1] > 1:
        return y.reshape(len(y), -1).argmax(axis=1)
    return y.reshape(len(y))


def select_by_loss(
    model: keras.Model,
    x: Any,
    y: Any,
    *,
    drop_fraction: float = 0.1,
    mode: str = "drop",
    down_weight: float = 0.0,
    per_class: bool = False,
    loss: Any = None,
    batch_size: int = 256,
) -> np.ndarray:
    """Drops or down-weights the training samples with the highest loss.

    The samples are ranked by their loss under `model` (see
    `per_sample_loss`); the `drop_fraction` with the highest loss are
    treated as likely mislabeled. NaN losses rank highest. With
    `per_class=True` the fraction is taken within each class, so a class
    that is hard as a whole is not removed wholesale.

    Example:

    ```python
    # 1. A quick linear probe on the frozen backbone scores every sample.
    kerasft.freeze_until(model, "head", inclusive=False)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=1)

    # 2a. Train on the 90% with the lowest loss ...
    keep = kerasft.data_selection.select_by_loss(
        model, x_train, y_train, drop_fraction=0.1
    )
    model.fit(x_train[keep], y_train[keep], epochs=3)

    # 2b. ... or keep every sample and down-weight the suspicious ones.
    weights = kerasft.data_selection.select_by_loss(
        model, x_train, y_train, drop_fraction=0.1, mode="weight",
        down_weight=0.2,
    )
    model.fit(x_train, y_train, sample_weight=weights, epochs=3)
    ```

    Args:
        model: keras.Model. A model with one output, already trained or
            probed on the task.
        x: Inputs, as `model.predict` takes them (arrays, not a dataset).
        y: array. Targets, one per sample.
        drop_fraction: float. Fraction of samples flagged, in [0, 1):
            `round(drop_fraction * n)` samples (per class with
            `per_class=True`). Defaults to `0.1`.
        mode: str. `"drop"` returns the indices of the samples to keep;
            `"weight"` returns one weight per sample. Defaults to `"drop"`.
        down_weight: float. In `"weight"` mode, the weight of flagged
            samples, in [0, 1); the others get `1.0`. Defaults to `0.0`.
        per_class: bool. Flag `drop_fraction` of each class (classes read
            from `y`: integer labels, or the argmax of one-hot rows)
            instead of the whole set. Defaults to `False`.
        loss: The loss, as in `per_sample_loss`. Defaults to `None` (the
            model's compiled loss).
        batch_size: int. Batch size for prediction. Defaults to `256`.

    Returns:
        For `mode="drop"`, an int64 array of the kept indices, ascending
        (index `x` and `y` with it). For `mode="weight"`, a float32 array
        of shape `(num_samples,)` for `fit(..., sample_weight=...)`.

    Raises:
        ValueError: for `drop_fraction` outside [0, 1), an unknown `mode`,
            `down_weight` outside [0, 1), and the errors of
            `per_sample_loss`.
        TypeError: for arguments of the wrong type.
    """
    check_number(
        "drop_fraction",
        drop_fraction,
        minimum=0,
        maximum=1,
        max_inclusive=False,
    )
    if mode not in MODES:
        raise ValueError(
            f"`mode` must be one of {list(MODES)}. Received: mode={mode!r}"
        )
    # Flagged samples weigh less than the others.
    check_number(
        "down_weight", down_weight, minimum=0, maximum=1, max_inclusive=False
    )
    check_bool("per_class", per_class)
    losses = per_sample_loss(model, x, y, loss=loss, batch_size=batch_size)
    ranked = np.where(np.isnan(losses), np.inf, losses)
    if per_class:
        labels = _class_labels(y)
        groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    else:
        groups = [np.arange(len(losses))]
    flagged = np.zeros(len(losses), dtype=bool)
    for group in groups:
        count = int(round(drop_fraction * len(group)))
        if count:
            # Stable sort: among equal losses, later samples are flagged.
            order = np.argsort(ranked[group], kind="stable")
            flagged[group[order[len(group) - count :]]] = True
    if mode == "drop":
        return np.flatnonzero(~flagged).astype("int64")
    return np.where(flagged, float(down_weight), 1.0).astype("float32")
