"""Plots of learning rates and training histories, written as PNG files.

`plot_learning_rates` draws what an optimizer or schedule will do over the
steps of a run (one line per stage for a `DiscriminativeOptimizer`) before
training; `plot_history` draws what a run did: loss, accuracy and each
stage's learning rate per epoch. Both mark unfreeze events (the `changes`
of `kerasft.callbacks.UnfreezeSchedule` or `FreezeUntil`) with labelled
vertical lines.

matplotlib is imported when a plot is drawn, never by importing kerasft.
Figures are rendered with the Agg canvas directly (no `pyplot`), so plotting
works without a display and never changes matplotlib's global backend.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from kerasft._src.validation import check_int
from kerasft._src.validation import check_number
from kerasft._src.validation import check_path
from kerasft._src.validation import check_type

PIP_COMMAND = "pip install matplotlib"

_Schedule = keras.optimizers.schedules.LearningRateSchedule
_COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


# --------------------------------------------------------------------------
# Public functions.


def plot_learning_rates(
    optimizer_or_schedules: Any,
    steps: int | Sequence[int],
    path: str | os.PathLike,
    *,
    events: Any = None,
    stage_factors: Mapping[str, float] | None = None,
    steps_per_epoch: int | None = None,
    title: str | None = None,
) -> str:
    """Draws the learning rate of each stage over training steps as a PNG.

    What is drawn depends on the first argument:

    - a `kerasft.optimizers.DiscriminativeOptimizer`: one line per distinct
      stage factor, `base(step) * factor`, labelled with its stages (the
      factors are the optimizer's `stage_factors` unless `stage_factors` is
      given);
    - a Keras optimizer, a `LearningRateSchedule` or a float: one line, or
      one line per distinct factor of `stage_factors`;
    - a dict `{label: schedule_or_optimizer_or_float}` or a list of them:
      one line per entry.

    Unfreeze events are vertical lines with their label.

    Example:

    ```python
    schedule = kerasft.schedules.OneCycle(1e-3, total_steps=200)
    optimizer = kerasft.optimizers.discriminative(
        keras.optimizers.Adam(schedule),
        model,
        kerasft.optimizers.lr_range(model, 1e-5, 1e-3),
    )
    kerasft.plotting.plot_learning_rates(
        optimizer, 200, "lr.png", events=[(50, "unfreeze block5")]
    )
    ```

    Args:
        optimizer_or_schedules: A `DiscriminativeOptimizer`, a Keras
            optimizer, a `keras.optimizers.schedules.LearningRateSchedule`,
            a float, or a dict or list of these.
        steps: int or sequence of ints. The number of steps (drawn at
            `0..steps-1`) or the steps themselves.
        path: str or path. The PNG file to write; its folder is created.
        events: Unfreeze events, or `None`. An `UnfreezeSchedule` or
            `FreezeUntil` callback (its `changes` after `fit`), a list of
            its change dicts (`step`, or `epoch` with `steps_per_epoch`;
            `label` or `target`), or a list of `(step, label)` pairs.
            Defaults to `None`.
        stage_factors: dict `{stage: factor}` or None. Per-stage multipliers
            of the rate. Defaults to `None`: the optimizer's own
            `stage_factors` for a `DiscriminativeOptimizer`, else one line.
        steps_per_epoch: int or None. Converts events given by epoch (such
            as the changes of an epoch-based `UnfreezeSchedule`) to steps.
            Defaults to `None`.
        title: str or None. Figure title. Defaults to `"Learning rate per
            stage"`.

    Returns:
        The path of the PNG file, as a str.

    Raises:
        TypeError: for an argument of an unsupported type.
        ValueError: for no steps, negative steps, factors that are not
            finite numbers > 0, `stage_factors` together with a dict or
            list of schedules, or an event given by epoch without
            `steps_per_epoch`.
        ImportError: if matplotlib is not installed.
    """
    xs = _check_steps(steps)
    check_type("title", title, str, "a str", allow_none=True)
    if stage_factors is not None:
        stage_factors = _check_stage_factors(stage_factors)
    lines = _rate_lines(optimizer_or_schedules, stage_factors)
    if steps_per_epoch is not None:
        check_int("steps_per_epoch", steps_per_epoch, minimum=1)
    marks = _events(events, unit="step", steps_per_epoch=steps_per_epoch)
    path = _check_path(path)

    figure, canvas = _figure(figsize=(8, 4.5))
    axes = figure.add_subplot(1, 1, 1)
    for i, (label, schedule, factor) in enumerate(lines):
        values = _evaluate(schedule, xs) * factor
        axes.plot(xs, values, label=label, color=_COLORS[i % len(_COLORS)])
    _mark_events(axes, marks)
    axes.set_xlabel("step")
    axes.set_ylabel("learning rate")
    _log_scale_if_positive(axes, [_evaluate(s, xs) * f for _, s, f in lines])
    axes.set_title(title or "Learning rate per stage")
    axes.grid(True, alpha=0.3)
    if len(lines) > 1 or lines[0][0]:
        axes.legend(fontsize="small", loc="best")
    figure.tight_layout()
    return _save(figure, canvas, path)


def plot_history(
    history: Any,
    path: str | os.PathLike,
    *,
    events: Any = None,
    title: str | None = None,
) -> str:
    """Draws loss, accuracy and per-stage learning rates per epoch as a PNG.

    Panels, drawn for the keys that `history` has:

    - loss: `loss` and `val_loss`;
    - accuracy: every metric whose name contains `acc` (`accuracy`,
      `val_accuracy`, `sparse_categorical_accuracy`, ...);
    - learning rate: each `lr/<stage>` key (written by
      `kerasft.optimizers.StageLearningRateLogger` or the `kerasft
      finetune` command), else `learning_rate` (written by Keras's
      learning-rate callbacks), on a log scale when all values are > 0.
      NaN values (a frozen stage) leave gaps.

    Epochs are numbered from 1. An unfreeze event that applies at the start
    of epoch index `e` (0-based, as in a callback's `changes`) is drawn at
    `e + 0.5`, between the last epoch before the change and the first after
    it.

    Example:

    ```python
    schedule = kerasft.callbacks.UnfreezeSchedule({0: "head", 2: "block5"})
    history = model.fit(
        x, y, validation_split=0.2, epochs=4, callbacks=[schedule]
    )
    kerasft.plotting.plot_history(history, "history.png", events=schedule)
    ```

    Args:
        history: A `keras.callbacks.History` (what `fit` returns) or its
            `history` dict, `{metric: [value per epoch]}`.
        path: str or path. The PNG file to write; its folder is created.
        events: Unfreeze events, or `None`. An `UnfreezeSchedule` or
            `FreezeUntil` callback, a list of its change dicts (`epoch`;
            `label` or `target`), or a list of `(epoch, label)` pairs with
            0-based epoch indices. Defaults to `None`.
        title: str or None. Figure title. Defaults to `None` (none).

    Returns:
        The path of the PNG file, as a str.

    Raises:
        TypeError: if `history` is not a History or a dict of sequences,
            or `title` is not a str or None.
        ValueError: if `history` is empty, has lists of different lengths,
            or has no loss, accuracy or learning-rate key.
        ImportError: if matplotlib is not installed.
    """
    data = _check_history(history)
    check_type("title", title, str, "a str", allow_none=True)
    marks = _events(events, unit="epoch")
    path = _check_path(path)
    keys = list(data)
    loss_keys = [k for k in ("loss", "val_loss") if k in data]
    acc_keys = [k for k in keys if "acc" in k and not k.startswith("lr/")]
    # Stages that never trained (all NaN) are left out of the rate panel.
    lr_keys = [
        k for k in keys if k.startswith("lr/") and not np.all(np.isnan(data[k]))
    ]
    if not lr_keys and "learning_rate" in data:
        lr_keys = ["learning_rate"]
    panels = [
        (name, panel_keys)
        for name, panel_keys in (
            ("loss", loss_keys),
            ("accuracy", acc_keys),
            ("learning rate", lr_keys),
        )
        if panel_keys
    ]
    if not panels:
        raise ValueError(
            "`history` has nothing to plot: it needs `loss`, an accuracy "
            "metric (a key containing 'acc'), `lr/<stage>` keys or "
            f"`learning_rate`. Received: keys={keys}"
        )
    epochs = np.arange(1, len(data[keys[0]]) + 1)
    figure, canvas = _figure(figsize=(8, 2.8 * len(panels) + 0.6))
    axes_list = figure.subplots(len(panels), 1, sharex=True, squeeze=False)
    for axes, (name, panel_keys) in zip(axes_list[:, 0], panels):
        count = len(panel_keys)
        for i, key in enumerate(panel_keys):
            values = data[key]
            style = "--" if key.startswith("val_") else "-"
            label = key[3:] if key.startswith("lr/") else key
            # Stages often share a rate: earlier lines are drawn wider, so
            # the ones drawn over them leave them visible.
            width = 1.5
            if name == "learning rate" and count > 1:
                width = 1.2 + 3.0 * (count - 1 - i) / (count - 1)
            axes.plot(
                epochs,
                values,
                style,
                marker="o",
                markersize=2 + width,
                linewidth=width,
                label=label,
                color=_COLORS[i % len(_COLORS)],
            )
        if name == "learning rate":
            _log_scale_if_positive(axes, [data[k] for k in panel_keys])
        _mark_events(axes, marks, offset=0.5)
        axes.set_ylabel(name)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="small", loc="best")
    axes_list[-1, 0].set_xlabel("epoch")
    if len(epochs) <= 30:
        axes_list[-1, 0].set_xticks(epochs)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return _save(figure, canvas, path)


# --------------------------------------------------------------------------
# Validation.


def _check_steps(steps):
    if isinstance(steps, numbers.Integral) and not isinstance(steps, bool):
        check_int("steps", steps, minimum=1)
        return np.arange(int(steps))
    if isinstance(steps, (str, bytes, bool)) or not isinstance(
        steps, (Sequence, np.ndarray)
    ):
        raise TypeError(
            "`steps` must be an int (the number of steps) or a sequence of "
            f"int steps. Received: steps={steps!r}"
        )
    values = list(steps)
    if not values:
        raise ValueError("`steps` must not be empty. Received: steps=[]")
    for i, value in enumerate(values):
        check_int(f"steps[{i}]", value, minimum=0)
    return np.asarray(values, dtype="int64")


def _check_stage_factors(stage_factors):
    if not isinstance(stage_factors, Mapping):
        raise TypeError(
            "`stage_factors` must be a dict {stage: factor} or None. "
            f"Received: stage_factors={stage_factors!r}"
        )
    if not stage_factors:
        raise ValueError(
            "`stage_factors` must not be empty; pass None for one line. "
            "Received: stage_factors={}"
        )
    return {
        str(name): check_number(
            f"stage_factors[{name!r}]", value, minimum=0, min_inclusive=False
        )
        for name, value in stage_factors.items()
    }


def _check_path(path):
    path = check_path("path", path)
    if os.path.isdir(path):
        raise ValueError(
            "`path` is a folder; pass the path of the PNG file to write. "
            f"Received: path={path!r}"
        )
    return path


def _check_history(history):
    data = getattr(history, "history", history)
    if not isinstance(data, Mapping):
        raise TypeError(
            "`history` must be a keras.callbacks.History or a dict "
            "{metric: [value per epoch]}. "
            f"Received: history={history!r} of type {type(history).__name__}"
        )
    if not data:
        raise ValueError(
            "`history` is empty: no metric was recorded. Received: history={}"
        )
    out = {}
    for key, values in data.items():
        if isinstance(values, (str, bytes)) or not isinstance(
            values, (Sequence, np.ndarray)
        ):
            raise TypeError(
                "Each `history` entry must be a list of numbers, one per "
                f"epoch. Received: {key!r}={values!r}"
            )
        try:
            out[str(key)] = np.asarray(values, dtype="float64").reshape(-1)
        except (TypeError, ValueError) as error:
            raise TypeError(
                "Each `history` entry must be a list of numbers, one per "
                f"epoch. Received: {key!r}={values!r}"
            ) from error
    lengths = {key: len(values) for key, values in out.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(
            "Every `history` entry must have one value per epoch (the same "
            f"length). Received: lengths {lengths}"
        )
    if not next(iter(lengths.values())):
        raise ValueError(
            "`history` has no epochs (its lists are empty). "
            f"Received: keys={list(out)}"
        )
    return out


# --------------------------------------------------------------------------
# Learning-rate lines.


def _as_rate(value, name):
    """A schedule or a float from an optimizer, schedule or number."""
    if isinstance(value, _Schedule):
        return value
    if isinstance(value, keras.optimizers.Optimizer):
        rate = value.get_config()["learning_rate"]
        if isinstance(rate, dict):
            return keras.saving.deserialize_keras_object(rate)
        return float(rate)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        # A learning rate.
        return check_number(name, value, minimum=0, min_inclusive=False)
    raise TypeError(
        "Expected a DiscriminativeOptimizer, a Keras optimizer, a "
        "keras.optimizers.schedules.LearningRateSchedule or a float (or a "
        f"dict or list of these). Received: {name}={value!r} of type "
        f"{type(value).__name__}"
    )


def _factor_lines(rate, stage_factors):
    """One line per distinct factor, labelled with its stages."""
    groups = {}
    for stage, factor in stage_factors.items():
        groups.setdefault(factor, []).append(stage)
    lines = []
    for factor, stages in sorted(groups.items(), key=lambda kv: -kv[0]):
        names = ", ".join(stages)
        if len(names) > 48:
            names = f"{stages[0]} ... {stages[-1]} ({len(stages)} stages)"
        lines.append((f"{names} (x{factor:g})", rate, factor))
    return lines


def _rate_lines(value, stage_factors):
    """A list of `(label, schedule_or_float, factor)`."""
    from kerasft._src.optimizers.discriminative import DiscriminativeOptimizer

    if isinstance(value, DiscriminativeOptimizer):
        factors = stage_factors or _check_stage_factors(
            value.stage_factors or {"all": 1.0}
        )
        return _factor_lines(_as_rate(value.base_optimizer, "base"), factors)
    if isinstance(value, Mapping) or (
        isinstance(value, (list, tuple)) and value
    ):
        if stage_factors is not None:
            raise ValueError(
                "`stage_factors` applies to one optimizer or schedule, not "
                "to a dict or list of them. Received: stage_factors="
                f"{stage_factors!r} with {type(value).__name__} of "
                f"{len(value)} entries"
            )
        if isinstance(value, Mapping):
            if not value:
                raise ValueError("The dict of schedules is empty. Received: {}")
            items = [(str(k), v) for k, v in value.items()]
        else:
            items = [
                (getattr(v, "name", None) or type(v).__name__, v) for v in value
            ]
            items = [(f"{i}: {label}", v) for i, (label, v) in enumerate(items)]
        return [(label, _as_rate(v, label), 1.0) for label, v in items]
    rate = _as_rate(value, "optimizer_or_schedules")
    if stage_factors:
        return _factor_lines(rate, stage_factors)
    return [("", rate, 1.0)]


def _evaluate(schedule, xs):
    if not isinstance(schedule, _Schedule):
        return np.full(len(xs), float(schedule))
    return np.asarray(
        [float(keras.ops.convert_to_numpy(schedule(int(step)))) for step in xs],
        dtype="float64",
    )


# --------------------------------------------------------------------------
# Events.


def _events(events, *, unit, steps_per_epoch=None):
    """Normalizes events to a list of `(x, label)`."""
    if events is None:
        return []
    changes = getattr(events, "changes", None)
    if changes is not None and not isinstance(events, (list, tuple)):
        events = changes
    if isinstance(events, (str, bytes, Mapping)) or not isinstance(
        events, (list, tuple)
    ):
        raise TypeError(
            "`events` must be an UnfreezeSchedule or FreezeUntil callback, "
            "a list of its change dicts, or a list of (position, label) "
            f"pairs. Received: events={events!r}"
        )
    out = []
    for event in events:
        if isinstance(event, Mapping):
            label = event.get("label") or event.get("target") or ""
            position = event.get(unit)
            if position is None and unit == "step":
                epoch = event.get("epoch")
                if epoch is None:
                    raise ValueError(
                        "An event dict needs a `step` or an `epoch`. "
                        f"Received: {dict(event)!r}"
                    )
                if steps_per_epoch is None:
                    raise ValueError(
                        "An event is given by epoch; pass `steps_per_epoch` "
                        "to place it on the step axis. Received: "
                        f"{dict(event)!r}"
                    )
                position = epoch * steps_per_epoch
            if position is None:
                raise ValueError(
                    f"An event dict needs an `{unit}`. "
                    f"Received: {dict(event)!r}"
                )
        elif isinstance(event, (list, tuple)) and len(event) == 2:
            position, label = event
        else:
            raise TypeError(
                "Each event must be a change dict or a (position, label) "
                f"pair. Received: {event!r}"
            )
        if isinstance(position, bool) or not isinstance(position, numbers.Real):
            raise TypeError(
                f"An event position must be a number. Received: {event!r}"
            )
        out.append((float(position), str(label)))
    return out


def _mark_events(axes, marks, offset=0.0):
    if not marks:
        return
    transform = axes.get_xaxis_transform()
    for x, label in marks:
        axes.axvline(x + offset, color="0.35", linestyle=":", linewidth=1.2)
        if label:
            axes.text(
                x + offset,
                0.98,
                f" {label}",
                transform=transform,
                rotation=90,
                va="top",
                ha="right",
                fontsize=7,
                color="0.25",
            )


# --------------------------------------------------------------------------
# Figures.


def _figure(figsize):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "kerasft.plotting needs matplotlib. Install it with "
            f"`{PIP_COMMAND}`."
        ) from error
    figure = Figure(figsize=figsize, dpi=100)
    return figure, FigureCanvasAgg(figure)


def _log_scale_if_positive(axes, series):
    values = np.concatenate([np.asarray(s, dtype="float64") for s in series])
    finite = values[np.isfinite(values)]
    if finite.size and np.all(finite > 0) and finite.max() > finite.min():
        axes.set_yscale("log")


def _save(figure, canvas, path):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "wb") as f:
        canvas.print_png(f)
    return path
