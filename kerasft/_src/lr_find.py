"""The learning-rate range test (fastai's `lr_find`, Lightning's finder).

`lr_find(model, x, y)` trains a compiled model for up to `num_steps`
batches while the base learning rate grows exponentially from `start_lr`
to `end_lr`, records the smoothed loss of each batch, stops when the loss
diverges, and then puts every weight, every optimizer variable, the
learning rate and the compiled metrics' state back exactly as they were.

It sweeps whatever the optimizer calls its learning rate: for a
`kerasft.optimizers.DiscriminativeOptimizer` that is the base rate, and
each stage keeps its factor; frozen layers stay frozen. The result
suggests rates the way fastai does (`minimum`, `steep`, `valley`) and
plots the curve.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import keras
import numpy as np

from kerasft._src.logs import get_logger
from kerasft._src.plotting import _check_path
from kerasft._src.plotting import _figure
from kerasft._src.plotting import _save
from kerasft._src.validation import check_int
from kerasft._src.validation import check_model
from kerasft._src.validation import check_number

_Schedule = keras.optimizers.schedules.LearningRateSchedule


@dataclasses.dataclass(frozen=True)
class LRFindResult:
    """What `kerasft.lr_find` measured, with suggested learning rates.

    Attributes:
        learning_rates: list of float. The base rate of each batch.
        losses: list of float. The smoothed training loss of each batch.
        diverged_at: float or None. The rate at which the loss passed
            `diverge` times its best value (or became NaN) and the test
            stopped, or `None` if it ran all `num_steps`.
        minimum: float. The rate with the lowest loss, divided by 10.
        steep: float. The rate where the loss falls fastest (the most
            negative slope of the loss against `log(rate)`).
        valley: float. fastai's "valley": the rate a third of the way
            (plus half of that) into the longest stretch of falling loss.
    """

    learning_rates: list
    losses: list
    diverged_at: float | None
    minimum: float
    steep: float
    valley: float

    @property
    def suggestions(self) -> dict:
        """`{"minimum": ..., "steep": ..., "valley": ...}`."""
        return {
            "minimum": self.minimum,
            "steep": self.steep,
            "valley": self.valley,
        }

    def plot(self, path: str | os.PathLike, *, title: str | None = None):
        """Draws loss against learning rate (log scale) as a PNG.

        Each suggestion is a labelled marker on the curve.

        Args:
            path: str or path. The PNG file to write; its folder is created.
            title: str or None. Figure title. Defaults to
                `"Learning-rate range test"`.

        Returns:
            The path of the PNG file, as a str.

        Raises:
            ImportError: if matplotlib is not installed.
        """
        return _plot(self, path, title)


def lr_find(
    model: keras.Model,
    x: Any,
    y: Any = None,
    *,
    batch_size: int = 32,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    beta: float = 0.98,
    diverge: float = 4.0,
    seed: int | None = None,
) -> LRFindResult:
    """Runs the learning-rate range test and leaves the model as it was.

    The base learning rate of step `i` is
    `start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))`. Each batch
    is one `model.train_on_batch`; its loss is smoothed with an
    exponential moving average (`beta`, bias-corrected, as in fastai). The
    test stops early when the smoothed loss exceeds `diverge` times the
    best one so far, or is not finite.

    The test really trains, so it first copies every variable of the model
    (trainable or not), of its optimizer (slots, step counter, learning
    rate) and of its compiled metrics, and copies them back afterwards,
    also when it fails: after `lr_find` the model predicts, and goes on
    training, exactly as before. An optimizer that was never built is
    built first (as `fit` would), so it ends built with its initial state,
    and so do compiled metrics that had not been built yet.

    Frozen layers stay frozen, and a `DiscriminativeOptimizer` keeps its
    per-stage factors: the test sweeps the base rate, so the suggestion is
    a base rate too. The optimizer's learning rate must be a float, not a
    `LearningRateSchedule`: run the test with a constant rate, then build
    the schedule around the suggestion.

    Example:

    ```python
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    result = kerasft.lr_find(model, x_train, y_train, batch_size=32)
    result.plot("lr_find.png")
    model.optimizer.learning_rate = result.valley
    ```

    Args:
        model: keras.Model. A built model compiled with an optimizer and a
            loss.
        x: The inputs: a NumPy array (or a list or dict of them, as `fit`
            takes), or batches of `(x, y)` or `(x, y, sample_weight)`: a
            `tf.data.Dataset`, a `keras.utils.PyDataset` or another
            iterable such as a `torch.utils.data.DataLoader`. Batches are
            reused from the start when the data runs out before
            `num_steps` (a one-shot generator ends the test instead).
        y: The targets when `x` holds arrays; `None` for a dataset.
            Defaults to `None`.
        batch_size: int. Batch size for arrays. Defaults to `32`.
        start_lr: float. First rate, > 0. Defaults to `1e-7`.
        end_lr: float. Last rate, > `start_lr`. Defaults to `10.0`.
        num_steps: int. Most batches to run, >= 2. Defaults to `100`.
        beta: float. Smoothing of the loss, in [0, 1). Defaults to `0.98`.
        diverge: float. Stop when the smoothed loss exceeds this many times
            the best one, > 1. Defaults to `4.0`.
        seed: int or None. Shuffles arrays with this seed; `None` keeps
            their order. Defaults to `None`.

    Returns:
        An `LRFindResult` with `learning_rates`, `losses`, `diverged_at`
        and the suggestions `minimum`, `steep` and `valley`.

    Raises:
        TypeError: for an argument of the wrong type.
        ValueError: for a model that is not built or not compiled, an
            optimizer whose rate is a schedule, a value out of range, `y`
            missing or given where it cannot be used, or no batch to train
            on.
    """
    check_model(model, weights=True, compiled=True, purpose="lr_find")
    batch_size = check_int("batch_size", batch_size, minimum=1)
    start_lr = check_number(
        "start_lr", start_lr, minimum=0, min_inclusive=False
    )
    end_lr = check_number("end_lr", end_lr, minimum=0, min_inclusive=False)
    if end_lr <= start_lr:
        raise ValueError(
            "`end_lr` must be greater than `start_lr`. "
            f"Received: start_lr={start_lr}, end_lr={end_lr}"
        )
    num_steps = check_int("num_steps", num_steps, minimum=2)
    beta = check_number("beta", beta, minimum=0, maximum=1, max_inclusive=False)
    diverge = check_number("diverge", diverge, minimum=1, min_inclusive=False)
    seed = check_int("seed", seed, minimum=0, allow_none=True)
    _check_rate_is_float(model.optimizer)
    batches = _batches(x, y, batch_size, seed)

    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    saved = _snapshot(model)
    try:
        rates, losses, diverged_at = _sweep(
            model, batches, start_lr, end_lr, num_steps, beta, diverge
        )
    finally:
        # Metrics built by the first step start from their initial state;
        # those that existed before get their values back.
        model.reset_metrics()
        _restore(saved)
    if len(losses) < 2:
        raise ValueError(
            "The range test needs at least 2 batches; the data gave "
            f"{len(losses)}. Received: x of type {type(x).__name__}"
        )
    result = LRFindResult(
        learning_rates=rates,
        losses=losses,
        diverged_at=diverged_at,
        **suggest(rates, losses),
    )
    get_logger().info(
        "lr_find: %d steps%s; suggestions: minimum=%.3g, steep=%.3g, "
        "valley=%.3g",
        len(rates),
        f", diverged at {diverged_at:.3g}" if diverged_at else "",
        result.minimum,
        result.steep,
        result.valley,
    )
    return result


def suggest(learning_rates, losses) -> dict:
    """fastai's suggestions from a range test's rates and smoothed losses.

    The first tenth of the points and, for a long enough test, the last
    five are left out (the loss there says little), as in fastai.

    Returns:
        A dict with `minimum`, `steep` and `valley`, as floats.

    Raises:
        ValueError: if fewer than two losses are finite.
    """
    rates = np.asarray(learning_rates, dtype="float64")
    values = np.asarray(losses, dtype="float64")
    n = len(rates)
    start = n // 10
    end = n - 5 if n - 5 - start >= 5 else n
    keep = np.zeros(n, dtype=bool)
    keep[start:end] = True
    keep &= np.isfinite(values)
    if keep.sum() < 3:  # a short test: look at every finite point
        keep = np.isfinite(values)
    if keep.sum() < 2:
        raise ValueError(
            "The loss was finite for fewer than 2 steps of the range test, "
            "so there is no curve to read a rate from. Lower `start_lr`. "
            f"Received: losses={list(losses)}"
        )
    rates, values = rates[keep], values[keep]
    slopes = np.gradient(values, np.log(rates))
    return {
        "minimum": float(rates[int(np.argmin(values))] / 10),
        "steep": float(rates[int(np.argmin(slopes))]),
        "valley": float(rates[_valley_index(values)]),
    }


def _valley_index(losses) -> int:
    """fastai's valley: the longest decreasing run, 1/2 of a third in."""
    n = len(losses)
    longest = [1] * n
    max_start, max_end = 0, 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
            if longest[max_end] < longest[i]:
                max_end = i
                max_start = max_end - longest[max_end]
    sections = (max_end - max_start) / 3
    return max_start + int(sections) + int(sections / 2)


def _check_rate_is_float(optimizer):
    if _has_schedule(optimizer.get_config()):
        raise ValueError(
            "lr_find sweeps the optimizer's learning rate, so the rate must "
            "be a float, not a LearningRateSchedule. Compile with a constant "
            "rate for the range test, then build the schedule around the "
            f"suggested rate. Received: optimizer={optimizer.name!r}"
        )


def _has_schedule(config) -> bool:
    """Whether a serialized optimizer has a schedule as a learning rate.

    Searches nested configs too (a `DiscriminativeOptimizer` or
    `LossScaleOptimizer` holds its inner optimizer's config).
    """
    if isinstance(config, dict):
        if isinstance(config.get("learning_rate"), dict):
            return True
        return any(_has_schedule(value) for value in config.values())
    if isinstance(config, (list, tuple)):
        return any(_has_schedule(value) for value in config)
    return False


# --------------------------------------------------------------------------
# Data.


def _batches(x, y, batch_size, seed):
    """A function returning a fresh iterator of `(x, y, sample_weight)`."""
    dataset = isinstance(x, keras.utils.PyDataset) or hasattr(
        x, "as_numpy_iterator"
    )
    if dataset and y is not None:
        raise ValueError(
            "`y` must be None when `x` is a dataset; the targets come from "
            f"its batches. Received: x of type {type(x).__name__}, y of "
            f"type {type(y).__name__}"
        )
    if y is not None or _is_array(x):
        if y is None:
            raise ValueError(
                "`y` is required when `x` is an array. Received: y=None"
            )
        leaves = keras.tree.flatten(x)
        if not leaves or not all(_is_array(leaf) for leaf in leaves):
            raise TypeError(
                "With `y`, `x` must be an array or a list or dict of arrays. "
                f"Received: x of type {type(x).__name__}"
            )
        return _array_batches(x, y, batch_size, seed)
    if isinstance(x, keras.utils.PyDataset):

        def py_dataset():
            for i in range(len(x)):
                yield keras.utils.unpack_x_y_sample_weight(x[i])

        return py_dataset
    if hasattr(x, "as_numpy_iterator"):  # tf.data.Dataset

        def dataset():
            for batch in x.as_numpy_iterator():
                yield keras.utils.unpack_x_y_sample_weight(batch)

        return dataset
    if hasattr(x, "__iter__") and not isinstance(x, (str, bytes)):

        def iterable():
            for batch in x:
                yield keras.utils.unpack_x_y_sample_weight(tuple(batch))

        return iterable
    raise TypeError(
        "`x` must be arrays (with `y`), a tf.data.Dataset, a "
        "keras.utils.PyDataset or an iterable of (x, y) batches. "
        f"Received: x of type {type(x).__name__}"
    )


def _is_array(x):
    return isinstance(x, np.ndarray) or keras.ops.is_tensor(x)


def _array_batches(x, y, batch_size, seed):
    count = keras.tree.flatten(x)[0].shape[0]
    if count == 0:
        raise ValueError("`x` must hold at least one sample. Received: 0")
    order = np.arange(count)
    if seed is not None:
        np.random.default_rng(seed).shuffle(order)

    def take(index):
        return keras.tree.map_structure(
            lambda a: keras.ops.convert_to_numpy(a)[index], (x, y)
        )

    def arrays():
        for begin in range(0, count, batch_size):
            xb, yb = take(order[begin : begin + batch_size])
            yield xb, yb, None

    return arrays


# --------------------------------------------------------------------------
# The sweep.


def _sweep(model, batches, start_lr, end_lr, num_steps, beta, diverge):
    rates, losses = [], []
    average, best = 0.0, math.inf
    ratio = end_lr / start_lr
    for step, (xb, yb, wb) in zip(range(num_steps), _cycle(batches)):
        rate = start_lr * ratio ** (step / (num_steps - 1))
        model.optimizer.learning_rate = rate
        logs = model.train_on_batch(xb, yb, sample_weight=wb, return_dict=True)
        average = beta * average + (1 - beta) * float(logs["loss"])
        smoothed = average / (1 - beta ** (step + 1))
        rates.append(rate)
        losses.append(smoothed)
        if not math.isfinite(smoothed) or smoothed > diverge * best:
            return rates, losses, rate
        best = min(best, smoothed)
    return rates, losses, None


def _cycle(batches):
    """The batches, from the start again when they run out.

    Stops when a pass yields nothing (no data, or a one-shot generator).
    """
    while True:
        empty = True
        for batch in batches():
            empty = False
            yield batch
        if empty:
            return


def _state_variables(model):
    optimizer = model.optimizer
    groups = [model.variables, optimizer.variables, model.metrics_variables]
    for sub in getattr(optimizer, "sub_optimizers", None) or []:
        groups.append(sub.variables)
    seen, out = set(), []
    for variable in (v for group in groups for v in group):
        if id(variable) not in seen:
            seen.add(id(variable))
            out.append(variable)
    return out


def _snapshot(model):
    return [
        (v, np.array(keras.ops.convert_to_numpy(v), copy=True))
        for v in _state_variables(model)
    ]


def _restore(saved):
    for variable, value in saved:
        variable.assign(value)


# --------------------------------------------------------------------------
# Plot.

_MARKERS = {"minimum": "#2ca02c", "steep": "#d62728", "valley": "#9467bd"}


def _plot(result, path, title):
    path = _check_path(path)
    figure, canvas = _figure(figsize=(8, 4.5))
    axes = figure.add_subplot(1, 1, 1)
    rates = np.asarray(result.learning_rates)
    losses = np.asarray(result.losses)
    axes.plot(rates, losses, color="#1f77b4")
    for name, color in _MARKERS.items():
        rate = getattr(result, name)
        loss = np.interp(np.log(rate), np.log(rates), losses)
        axes.plot([rate], [loss], "o", color=color, label=f"{name}: {rate:.2g}")
    finite = losses[np.isfinite(losses)]
    if result.diverged_at is not None and len(finite) > 2:
        # The diverging point would squash the curve: leave it off the top.
        low, high = finite[:-1].min(), finite[:-1].max()
        margin = 0.1 * (high - low) or 0.1 * abs(high) or 1.0
        axes.set_ylim(low - margin, high + margin)
    axes.set_xscale("log")
    axes.set_xlabel("learning rate (base)")
    axes.set_ylabel("loss (smoothed)")
    axes.set_title(title or "Learning-rate range test")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small", loc="best")
    figure.tight_layout()
    return _save(figure, canvas, path)
