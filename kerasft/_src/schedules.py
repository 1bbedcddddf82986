"""Learning-rate schedules for fine-tuning.

Every schedule here is a `keras.optimizers.schedules.LearningRateSchedule`:
pass it as an optimizer's `learning_rate`, and it saves and loads with the
model. `SlantedTriangular` is ULMFiT's schedule, `OneCycle` is fastai's
cosine one-cycle policy, `WarmUp` puts a linear warm-up in front of any
schedule, and `Scaled` multiplies a schedule by a constant (it is what
discriminative learning rates use for each stage).
"""

from __future__ import annotations

import math

import keras
from keras import ops

from kerasft._src.validation import check_int
from kerasft._src.validation import check_number

_Schedule = keras.optimizers.schedules.LearningRateSchedule


def _positive_number(name, value):
    return check_number(name, value, minimum=0, min_inclusive=False)


def _positive_int(name, value):
    return check_int(name, value, minimum=1)


def _open_fraction(name, value):
    return check_number(
        name,
        value,
        minimum=0,
        maximum=1,
        min_inclusive=False,
        max_inclusive=False,
    )


def _step(step):
    return ops.cast(step, "float32")


def _cosine(start, end, fraction):
    """Cosine interpolation from `start` (fraction 0) to `end` (1)."""
    return end + (start - end) / 2.0 * (1.0 + ops.cos(math.pi * fraction))


@keras.saving.register_keras_serializable(package="kerasft")
class SlantedTriangular(_Schedule):
    """ULMFiT's slanted triangular learning rate.

    The rate rises linearly from `max_learning_rate / ratio` to
    `max_learning_rate` over the first `cut_frac` of `total_steps`, then
    falls linearly back to `max_learning_rate / ratio` at `total_steps`
    (Howard & Ruder, 2018). With `cut = floor(total_steps * cut_frac)`:

    ```
    p = step / cut                                   if step < cut
    p = 1 - (step - cut) / (cut * (1 / cut_frac - 1)) otherwise
    lr = max_learning_rate * (1 + p * (ratio - 1)) / ratio
    ```

    After `total_steps` the rate stays at `max_learning_rate / ratio`.

    Example:

    ```python
    schedule = kerasft.schedules.SlantedTriangular(0.01, total_steps=1000)
    optimizer = keras.optimizers.Adam(learning_rate=schedule)
    ```

    Args:
        max_learning_rate: float. The peak rate. Must be > 0.
        total_steps: int. Number of optimizer steps of the schedule. Must be
            > 0 and large enough that `floor(total_steps * cut_frac) >= 1`.
        cut_frac: float. Fraction of the steps spent increasing the rate, in
            (0, 1). Defaults to `0.1`.
        ratio: float. How much smaller the lowest rate is than the peak.
            Must be >= 1. Defaults to `32.0`.
        name: str. Name of the schedule. Defaults to `"slanted_triangular"`.

    Raises:
        ValueError: for an argument out of the ranges above.
        TypeError: if `total_steps` is not an int.
    """

    def __init__(
        self,
        max_learning_rate: float,
        total_steps: int,
        cut_frac: float = 0.1,
        ratio: float = 32.0,
        name: str = "slanted_triangular",
    ):
        super().__init__()
        self.max_learning_rate = _positive_number(
            "max_learning_rate", max_learning_rate
        )
        self.total_steps = _positive_int("total_steps", total_steps)
        self.cut_frac = _open_fraction("cut_frac", cut_frac)
        self.ratio = _positive_number("ratio", ratio)
        if self.ratio < 1:
            raise ValueError(f"`ratio` must be >= 1. Received: ratio={ratio}")
        if math.floor(self.total_steps * self.cut_frac) < 1:
            raise ValueError(
                "`total_steps * cut_frac` must be >= 1 so that the rate has "
                "at least one step to rise. Received: "
                f"total_steps={total_steps}, cut_frac={cut_frac}"
            )
        self.name = name

    def __call__(self, step):
        step = ops.minimum(_step(step), float(self.total_steps))
        cut = float(math.floor(self.total_steps * self.cut_frac))
        rising = step / cut
        falling = 1.0 - (step - cut) / (cut * (1.0 / self.cut_frac - 1.0))
        p = ops.where(step < cut, rising, ops.maximum(falling, 0.0))
        return (
            self.max_learning_rate
            * (1.0 + p * (self.ratio - 1.0))
            / (self.ratio)
        )

    def get_config(self) -> dict:
        return {
            "max_learning_rate": self.max_learning_rate,
            "total_steps": self.total_steps,
            "cut_frac": self.cut_frac,
            "ratio": self.ratio,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="kerasft")
class OneCycle(_Schedule):
    """fastai's one-cycle policy with cosine annealing.

    The rate rises from `max_learning_rate / div` to `max_learning_rate`
    over the first `pct_start` of `total_steps` along a half cosine, then
    falls along a half cosine to `max_learning_rate / div_final` at
    `total_steps`, where it stays.

    Example:

    ```python
    schedule = kerasft.schedules.OneCycle(1e-3, total_steps=500)
    optimizer = keras.optimizers.AdamW(learning_rate=schedule)
    ```

    Args:
        max_learning_rate: float. The peak rate. Must be > 0.
        total_steps: int. Number of optimizer steps of the cycle. Must be
            > 0 and large enough that `floor(total_steps * pct_start) >= 1`.
        pct_start: float. Fraction of the steps spent increasing the rate,
            in (0, 1). Defaults to `0.25`.
        div: float. The starting rate is `max_learning_rate / div`. Must be
            >= 1. Defaults to `25.0`.
        div_final: float. The final rate is `max_learning_rate / div_final`.
            Must be >= 1. Defaults to `1e5`.
        name: str. Name of the schedule. Defaults to `"one_cycle"`.

    Raises:
        ValueError: for an argument out of the ranges above.
        TypeError: if `total_steps` is not an int.
    """

    def __init__(
        self,
        max_learning_rate: float,
        total_steps: int,
        pct_start: float = 0.25,
        div: float = 25.0,
        div_final: float = 1e5,
        name: str = "one_cycle",
    ):
        super().__init__()
        self.max_learning_rate = _positive_number(
            "max_learning_rate", max_learning_rate
        )
        self.total_steps = _positive_int("total_steps", total_steps)
        self.pct_start = _open_fraction("pct_start", pct_start)
        self.div = _positive_number("div", div)
        self.div_final = _positive_number("div_final", div_final)
        for arg, value in (("div", self.div), ("div_final", self.div_final)):
            if value < 1:
                raise ValueError(
                    f"`{arg}` must be >= 1. Received: {arg}={value}"
                )
        if math.floor(self.total_steps * self.pct_start) < 1:
            raise ValueError(
                "`total_steps * pct_start` must be >= 1 so that the rate has "
                "at least one step to rise. Received: "
                f"total_steps={total_steps}, pct_start={pct_start}"
            )
        self.name = name

    def __call__(self, step):
        step = ops.minimum(_step(step), float(self.total_steps))
        up = float(math.floor(self.total_steps * self.pct_start))
        down = float(self.total_steps) - up
        top = self.max_learning_rate
        rising = _cosine(top / self.div, top, step / up)
        falling = _cosine(
            top, top / self.div_final, ops.maximum(step - up, 0.0) / down
        )
        return ops.where(step < up, rising, falling)

    def get_config(self) -> dict:
        return {
            "max_learning_rate": self.max_learning_rate,
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "div": self.div,
            "div_final": self.div_final,
            "name": self.name,
        }


def _schedule_or_rate(name, value):
    if isinstance(value, _Schedule):
        return value
    return _positive_number(name, value)


def _evaluate(schedule, step):
    if isinstance(schedule, _Schedule):
        return ops.cast(schedule(step), "float32")
    return ops.cast(schedule, "float32")


def _serialize(schedule):
    if isinstance(schedule, _Schedule):
        return keras.saving.serialize_keras_object(schedule)
    return schedule


def _deserialize(config):
    if isinstance(config, dict):
        return keras.saving.deserialize_keras_object(config)
    return config


@keras.saving.register_keras_serializable(package="kerasft")
class WarmUp(_Schedule):
    """Linear warm-up in front of a constant rate or any schedule.

    For `step < warmup_steps` the rate grows linearly from
    `initial_learning_rate` to the rate the wrapped schedule has at its own
    step 0. From `warmup_steps` on, the wrapped schedule runs, shifted so
    that it starts at its own step 0: `schedule(step - warmup_steps)`.

    Example:

    ```python
    decay = keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=900)
    schedule = kerasft.schedules.WarmUp(decay, warmup_steps=100)
    optimizer = keras.optimizers.Adam(learning_rate=schedule)
    ```

    Args:
        schedule: float or `keras.optimizers.schedules.LearningRateSchedule`.
            The rate (or schedule) to warm up to. A float must be > 0.
        warmup_steps: int. Length of the warm-up in optimizer steps. > 0.
        initial_learning_rate: float. Rate at step 0. Must be >= 0.
            Defaults to `0.0`.
        name: str. Name of the schedule. Defaults to `"warm_up"`.

    Raises:
        ValueError: for a non-positive rate or step count, or a negative
            `initial_learning_rate`.
        TypeError: if `warmup_steps` is not an int, or a rate is not a
            number.
    """

    def __init__(
        self,
        schedule: float | _Schedule,
        warmup_steps: int,
        initial_learning_rate: float = 0.0,
        name: str = "warm_up",
    ):
        super().__init__()
        self.schedule = _schedule_or_rate("schedule", schedule)
        self.warmup_steps = _positive_int("warmup_steps", warmup_steps)
        self.initial_learning_rate = check_number(
            "initial_learning_rate", initial_learning_rate, minimum=0
        )
        self.name = name

    def __call__(self, step):
        step = _step(step)
        warm = float(self.warmup_steps)
        target = _evaluate(self.schedule, 0)
        warming = self.initial_learning_rate + (
            target - self.initial_learning_rate
        ) * (step / warm)
        after = _evaluate(self.schedule, ops.maximum(step - warm, 0.0))
        return ops.where(step < warm, warming, after)

    def get_config(self) -> dict:
        return {
            "schedule": _serialize(self.schedule),
            "warmup_steps": self.warmup_steps,
            "initial_learning_rate": self.initial_learning_rate,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = _deserialize(config["schedule"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="kerasft")
class Scaled(_Schedule):
    """A constant rate or a schedule multiplied by a constant factor.

    `Scaled(schedule, factor)(step) == factor * schedule(step)`. Discriminative
    learning rates give each stage's optimizer a `Scaled` copy of the base
    schedule, so the stage factor applies on top of any schedule.

    Example:

    ```python
    base = kerasft.schedules.OneCycle(1e-3, total_steps=500)
    backbone_rate = kerasft.schedules.Scaled(base, 0.1)
    ```

    Args:
        schedule: float or `keras.optimizers.schedules.LearningRateSchedule`.
            The rate or schedule to scale. A float must be > 0.
        factor: float. The multiplier. Must be > 0.
        name: str. Name of the schedule. Defaults to `"scaled"`.

    Raises:
        ValueError: if `factor` (or a float `schedule`) is not > 0.
    """

    def __init__(
        self,
        schedule: float | _Schedule,
        factor: float,
        name: str = "scaled",
    ):
        super().__init__()
        self.schedule = _schedule_or_rate("schedule", schedule)
        self.factor = _positive_number("factor", factor)
        self.name = name

    def __call__(self, step):
        return self.factor * _evaluate(self.schedule, step)

    def get_config(self) -> dict:
        return {
            "schedule": _serialize(self.schedule),
            "factor": self.factor,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = _deserialize(config["schedule"])
        return cls(**config)
