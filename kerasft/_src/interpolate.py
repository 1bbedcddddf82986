"""WiSE-FT: interpolate fine-tuned weights with reference weights.

Wortsman et al. (2022), "Robust fine-tuning of zero-shot models": the
weights `(1 - alpha) * reference + alpha * fine_tuned` often keep the
fine-tuned accuracy while recovering some of the reference model's
robustness. `interpolate` sets a model to such a mix in place;
`wise_ft_sweep` tries several `alpha` on validation data and keeps the best.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from kerasft._src.logs import get_logger
from kerasft._src.reference_weights import FORMS
from kerasft._src.reference_weights import checked_pair
from kerasft._src.reference_weights import reference_pairs
from kerasft._src.regularizers.penalty import StagePenalty
from kerasft._src.validation import check_bool
from kerasft._src.validation import check_choice
from kerasft._src.validation import check_int
from kerasft._src.validation import check_model
from kerasft._src.validation import check_number
from kerasft._src.validation import check_type


def interpolate(
    model: keras.Model, reference: Any, alpha: float
) -> keras.Model:
    """Sets each weight to `(1 - alpha) * reference + alpha * current`.

    WiSE-FT (Wortsman et al., 2022): mix the fine-tuned weights of `model`
    with the weights it started from. `alpha=1` keeps the model as it is,
    `alpha=0` gives the reference weights.

    Every floating-point weight is mixed, trainable or not, so the
    BatchNormalization moving mean and variance are interpolated too (as
    in the paper). Integer and boolean variables (counters, for instance)
    keep the model's values. The arithmetic is done in float64 and the
    result cast to each weight's dtype.

    The whole reference is checked before any weight changes: a bad
    reference raises and leaves the model as it was.

    Example:

    ```python
    pretrained = [w.copy() for w in model.get_weights()]
    model.fit(x_train, y_train, epochs=3)
    kerasft.interpolate(model, pretrained, alpha=0.5)
    ```

    Args:
        model: keras.Model. A built model, changed in place.
        reference: The weights to mix with, one per weight of `model`:
            another built `keras.Model` of the same architecture, a list
            of arrays in the order of `model.weights` (`get_weights()`),
            a dict `{variable.path: array}` with every weight's path, or
            an applied `kerasft.regularizers.L2SP` (its w0; weights without
            a w0, such as a new head, keep the model's values).
        alpha: float. The weight of the model's current values, in
            [0, 1].

    Returns:
        `model`.

    Raises:
        TypeError: for a `model`, `reference` or `alpha` of the wrong type.
        ValueError: for `alpha` outside [0, 1], or a reference that does
            not match (the message names the first weight that differs).
    """
    check_model(model, weights=True, purpose="interpolate")
    alpha = check_number("alpha", alpha, minimum=0, maximum=1)
    plan = _reference_arrays(model, reference)
    for variable, ref in plan:
        variable.assign(_mix(variable, ref, alpha))
    return model


def wise_ft_sweep(
    model: keras.Model,
    reference: Any,
    x: Any,
    y: Any = None,
    *,
    alphas: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    metric: str | Callable = "loss",
    mode: str = "auto",
    batch_size: int = 32,
    keep_best: bool = True,
) -> dict:
    """Evaluates WiSE-FT mixes for several `alpha` and keeps the best one.

    For each `alpha`, the model's fine-tuned weights are mixed with
    `reference` (see `kerasft.interpolate`) and evaluated on the
    validation data with `model.evaluate`, or with `metric` when it is a
    function. Afterwards the model holds the best mix (`keep_best=True`)
    or its fine-tuned weights, exactly as before (`keep_best=False`).

    Example:

    ```python
    found = kerasft.wise_ft_sweep(
        model, pretrained, x_val, y_val, metric="accuracy"
    )
    print(found["alpha"], found["scores"])
    ```

    Args:
        model: keras.Model. A built model holding the fine-tuned weights.
            It must be compiled unless `metric` is a function.
        reference: The weights to mix with, as for `kerasft.interpolate`.
        x: Validation inputs, as `model.evaluate` takes them (arrays, or a
            dataset with `y=None`).
        y: Validation targets, or `None` for a dataset. Defaults to `None`.
        alphas: sequence of float. The values to try, each in [0, 1].
            Defaults to `(0.0, 0.25, 0.5, 0.75, 1.0)`.
        metric: str or callable. The name of a compiled metric as
            `model.evaluate(..., return_dict=True)` reports it (`"loss"`,
            `"accuracy"`, ...), or a function `metric(model) -> float`.
            Defaults to `"loss"`.
        mode: str. `"min"`, `"max"`, or `"auto"`: `"min"` for a name that
            contains `loss` or `error`, else `"max"`; a function needs an
            explicit mode. Defaults to `"auto"`.
        batch_size: int. Batch size for `evaluate`. Defaults to `32`.
        keep_best: bool. Leave the model at the best `alpha` (True) or as
            it was (False). Defaults to `True`.

    Returns:
        A dict: `alpha` (the best one, the first in `alphas` on a tie),
        `score` (its score) and `scores` (`{alpha: score}` in the order of
        `alphas`).

    Raises:
        TypeError: for an argument of the wrong type.
        ValueError: for an `alpha` outside [0, 1], no `alphas`, an unknown
            metric name, `mode="auto"` with a function metric, or a
            reference that does not match.
    """
    check_model(model, weights=True, purpose="wise_ft_sweep")
    alphas = _check_alphas(alphas)
    mode = _check_mode(metric, mode)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    keep_best = check_bool("keep_best", keep_best)
    if not callable(metric) and not getattr(model, "compiled", False):
        raise ValueError(
            f"Model '{model.name}' must be compiled to evaluate "
            f"metric={metric!r}; compile it, or pass a function "
            "`metric(model) -> float`. Received: model not compiled"
        )
    plan = _reference_arrays(model, reference)
    fine_tuned = [(v, keras.ops.convert_to_numpy(v)) for v in model.weights]

    def restore():
        for variable, value in fine_tuned:
            variable.assign(value)

    scores = {}
    try:
        for alpha in alphas:
            restore()
            for variable, ref in plan:
                variable.assign(_mix(variable, ref, alpha))
            scores[alpha] = _score(model, metric, x, y, batch_size)
    finally:
        restore()
    best = alphas[0]
    for alpha in alphas[1:]:
        better = scores[alpha] < scores[best]
        if mode == "max":
            better = scores[alpha] > scores[best]
        best = alpha if better else best
    if keep_best:
        for variable, ref in plan:
            variable.assign(_mix(variable, ref, best))
    get_logger().info(
        "wise_ft_sweep: best alpha=%g (%s=%.4g)",
        best,
        _name(metric),
        scores[best],
    )
    return {"alpha": best, "score": scores[best], "scores": scores}


# --------------------------------------------------------------------------
# Helpers.


def _mix(variable, reference, alpha):
    current = np.asarray(keras.ops.convert_to_numpy(variable))
    if not np.issubdtype(current.dtype, np.floating):
        return current
    if alpha == 1.0:
        return current
    if alpha == 0.0:
        return reference.astype(current.dtype)
    mixed = (1.0 - alpha) * reference.astype(
        "float64"
    ) + alpha * current.astype("float64")
    return mixed.astype(current.dtype)


def _reference_arrays(model, reference):
    """Pairs `(variable, reference array)` after checking every shape."""
    if isinstance(reference, StagePenalty):
        return _penalty_arrays(model, reference)
    return reference_pairs(
        model,
        reference,
        forms=FORMS + " or an applied kerasft.regularizers.L2SP",
    )


def _penalty_arrays(model, penalty):
    """The w0 an applied L2-SP penalty keeps, for the variables it pulls."""
    if penalty.model is not model:
        applied = penalty.model.name if penalty.model is not None else None
        raise ValueError(
            "`reference` is a penalty applied to another model (or none); "
            "apply it to this model first. Received: penalty applied to "
            f"{applied!r}, model={model.name!r}"
        )
    pairs = penalty.references
    source = f"penalty {penalty.name!r}"
    if not pairs:
        raise ValueError(
            "`reference` is a penalty without pretrained weights (w0): "
            "only one that pulls weights towards w0, such as L2SP, can be "
            f"a reference. Received: reference={penalty!r}"
        )
    return [checked_pair(v, value, model, source) for v, value in pairs]


def _check_alphas(alphas):
    check_type("alphas", alphas, (list, tuple), "a list or tuple of floats")
    if not alphas:
        raise ValueError("`alphas` must not be empty. Received: alphas=()")
    return [
        check_number(f"alphas[{i}]", a, minimum=0, maximum=1)
        for i, a in enumerate(alphas)
    ]


def _check_mode(metric, mode):
    if not callable(metric):
        check_type("metric", metric, str, "a metric name or a callable")
    mode = check_choice("mode", mode, ("auto", "min", "max"))
    if mode != "auto":
        return mode
    if callable(metric):
        raise ValueError(
            "`mode` must be 'min' or 'max' when `metric` is a function; "
            f"'auto' cannot tell. Received: mode='auto', metric={metric!r}"
        )
    lower = metric.lower()
    return "min" if "loss" in lower or "error" in lower else "max"


def _score(model, metric, x, y, batch_size):
    if callable(metric):
        return float(metric(model))
    logs = model.evaluate(
        x, y, batch_size=batch_size, verbose=0, return_dict=True
    )
    if metric not in logs:
        raise ValueError(
            f"Unknown metric {metric!r}: `model.evaluate` reports "
            f"{sorted(logs)}. Received: metric={metric!r}"
        )
    return float(logs[metric])


def _name(metric):
    return getattr(metric, "__name__", str(metric))
