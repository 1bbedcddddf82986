"""Discriminative (per-stage) learning rates.

`discriminative(optimizer, model, factors)` returns a
`DiscriminativeOptimizer`: a `keras.optimizers.MultiOptimizer` with one copy
of `optimizer` per distinct factor, whose learning rate is the base rate (or
base schedule) times the factor. This is a true learning-rate multiplier, also
for adaptive optimizers such as Adam, where scaling gradients is not.

Variables are assigned to groups by resolving stages to their variables, not
by path prefixes, and every variable of a stage is mapped (trainable or not),
so a stage that is unfrozen later keeps its own rate after
`kerasft.optimizers.rebuild_optimizer`.
"""

from __future__ import annotations

import re

import keras

from kerasft._src import keras_internals
from kerasft._src.schedules import Scaled
from kerasft._src.stages import resolve_stages
from kerasft._src.stages import stages as list_stages
from kerasft._src.validation import check_number

_Schedule = keras.optimizers.schedules.LearningRateSchedule


def _check_factor(name, value):
    return check_number(
        f"the learning-rate factor for {name!r}",
        value,
        minimum=0,
        min_inclusive=False,
    )


def layerwise_decay(model: keras.Model, decay: float = 0.8) -> dict:
    """Per-stage factors that decay geometrically from the top stage.

    The stage nearest the output gets `1.0` and each stage below it gets
    `decay` times the factor of the stage above: `factor = decay ** depth`
    with `depth` counted from the top (as in ELECTRA, BEiT and MAE, which use
    0.65 to 0.9).

    Example:

    ```python
    factors = kerasft.optimizers.layerwise_decay(model, 0.8)
    optimizer = kerasft.optimizers.discriminative(
        keras.optimizers.AdamW(1e-3), model, factors)
    ```

    Args:
        model: keras.Model. A built model.
        decay: float. The decay per stage, in (0, 1]. Defaults to `0.8`.

    Returns:
        A dict `{stage_name: factor}` in model order.

    Raises:
        ValueError: if `decay` is outside (0, 1], NaN or infinite.
        TypeError: if `decay` is not a number.
    """
    check_number("decay", decay, minimum=0, maximum=1, min_inclusive=False)
    names = [s.name for s in list_stages(model)]
    top = len(names) - 1
    return {name: float(decay) ** (top - i) for i, name in enumerate(names)}


def lr_range(model: keras.Model, low: float, high: float) -> dict:
    """fastai-style geometric range of per-stage factors.

    Use it with a base learning rate of `high`: the bottom stage then trains
    at `low`, the top stage at `high`, and the stages in between at rates
    spaced geometrically (fastai's `slice(low, high)`).

    Example:

    ```python
    factors = kerasft.optimizers.lr_range(model, 1e-5, 1e-3)
    optimizer = kerasft.optimizers.discriminative(
        keras.optimizers.Adam(1e-3), model, factors)
    ```

    Args:
        model: keras.Model. A built model.
        low: float. The rate of the bottom stage. Must be > 0.
        high: float. The rate of the top stage. Must be >= `low`.

    Returns:
        A dict `{stage_name: factor}` with factors `rate / high`.

    Raises:
        ValueError: if `low` or `high` is not a finite number > 0, or
            `low > high`.
        TypeError: if `low` or `high` is not a number.
    """
    low = check_number("low", low, minimum=0, min_inclusive=False)
    high = check_number("high", high, minimum=0, min_inclusive=False)
    if low > high:
        raise ValueError(
            f"`low` must be <= `high`. Received: low={low}, high={high}"
        )
    names = [s.name for s in list_stages(model)]
    n = len(names)
    if n == 1:
        return {names[0]: 1.0}
    return {
        name: (low / high) ** ((n - 1 - i) / (n - 1))
        for i, name in enumerate(names)
    }


def _scaled_rate(learning_rate, factor):
    if isinstance(learning_rate, _Schedule):
        return learning_rate if factor == 1.0 else Scaled(learning_rate, factor)
    return float(learning_rate) * factor


@keras.saving.register_keras_serializable(package="kerasft")
class DiscriminativeOptimizer(keras.optimizers.MultiOptimizer):
    """A `MultiOptimizer` that gives groups of variables scaled learning rates.

    Each group (a factor and the paths of its variables) gets its own copy of
    `optimizer` whose learning rate is `factor` times the base rate, or a
    `kerasft.schedules.Scaled` copy of the base schedule. Variables in no
    group train at the base rate. All groups share the global step, so a
    schedule stays in phase for a stage that starts training late.

    `learning_rate` reads and sets the *base* rate (factor 1), so
    `keras.callbacks.LearningRateScheduler` and `ReduceLROnPlateau` work as
    with a plain optimizer; setting it re-scales every group.

    Build one with `discriminative(optimizer, model, factors)`, which turns
    stage names into variable paths.

    Args:
        optimizer: keras.optimizers.Optimizer. The base optimizer (its config
            is copied; it is not used itself).
        groups: list of `[factor, [variable paths]]`.
        stage_factors: dict `{stage_name: factor}`, kept for logging
            (`stage_learning_rates`). Defaults to `None`.
        loss_scale_factor: float or None. Passed to `MultiOptimizer`.
        name: str or None. Name of the optimizer.

    Raises:
        ValueError: for a factor <= 0 or a path in two groups.
        TypeError: if `optimizer` is not a Keras optimizer.
    """

    def __init__(
        self,
        optimizer: keras.optimizers.Optimizer,
        groups: list,
        stage_factors: dict | None = None,
        loss_scale_factor: float | None = None,
        name: str | None = None,
    ):
        if isinstance(optimizer, dict):
            optimizer = keras.optimizers.deserialize(optimizer)
        if not isinstance(optimizer, keras.optimizers.Optimizer) or isinstance(
            optimizer,
            (
                keras.optimizers.MultiOptimizer,
                keras.optimizers.LossScaleOptimizer,
            ),
        ):
            raise TypeError(
                "`optimizer` must be a plain Keras optimizer (not a "
                "MultiOptimizer or LossScaleOptimizer). "
                f"Received: optimizer={optimizer!r}"
            )
        base_config = keras.optimizers.serialize(optimizer)
        base_rate = base_config["config"]["learning_rate"]
        if isinstance(base_rate, dict):
            base_rate = keras.saving.deserialize_keras_object(base_rate)
        own_groups = []
        seen = {}
        factors = {1.0: None}
        for factor, paths in groups:
            factor = _check_factor("group", factor)
            for path in paths:
                if path in seen and seen[path] != factor:
                    raise ValueError(
                        f"Variable path {path!r} is in two groups with "
                        f"different factors. Received: factors="
                        f"{seen[path]} and {factor}"
                    )
                seen[path] = factor
            own_groups.append([factor, list(paths)])
            factors[factor] = None

        def clone(factor):
            config = dict(base_config)
            config["config"] = dict(base_config["config"])
            rate = _scaled_rate(base_rate, factor)
            if isinstance(rate, _Schedule):
                rate = keras.saving.serialize_keras_object(rate)
            config["config"]["learning_rate"] = rate
            config["config"]["name"] = f"{optimizer.name}_x{factor:g}"
            return keras.optimizers.deserialize(config)

        factor_optimizers = {f: clone(f) for f in factors}
        optimizer_map = keras.optimizers.OptimizerMap(factor_optimizers[1.0])
        for path, factor in seen.items():
            if factor != 1.0:
                optimizer_map[re.escape(path)] = factor_optimizers[factor]
        super().__init__(
            optimizer_map, loss_scale_factor=loss_scale_factor, name=name
        )
        self._base_config = base_config
        self._groups = own_groups
        self._factor_optimizers = factor_optimizers
        self.stage_factors = dict(stage_factors or {})

    @property
    def base_optimizer(self) -> keras.optimizers.Optimizer:
        """The sub-optimizer with factor 1 (the base rate)."""
        return self._factor_optimizers[1.0]

    # Keras's LR callbacks would set every sub-optimizer to one rate and
    # erase the factors; without `optimizers` they set `learning_rate`.
    optimizers = keras_internals.hidden_from_lr_callbacks(
        "`DiscriminativeOptimizer` exposes its per-factor optimizers as "
        "`sub_optimizers`; set `learning_rate` to change the base rate."
    )

    @property
    def sub_optimizers(self) -> list:
        """The per-factor sub-optimizers."""
        return keras_internals.sub_optimizers(self)

    @property
    def learning_rate(self):
        return self.base_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        for factor, opt in self._factor_optimizers.items():
            if isinstance(value, _Schedule) or factor == 1.0:
                opt.learning_rate = _scaled_rate(value, factor)
            else:
                opt.learning_rate = value * factor

    def stage_learning_rates(self) -> dict:
        """The current effective learning rate of each stage, as floats."""
        base = float(keras.ops.convert_to_numpy(self.learning_rate))
        return {name: base * f for name, f in self.stage_factors.items()}

    def apply(self, grads, trainable_variables=None):
        # Every group follows the global step, so a group that was frozen
        # (and therefore not stepped) stays in phase with the schedule.
        for opt in self.sub_optimizers:
            if opt.built:
                opt.iterations.assign(self.iterations)
        return super().apply(grads, trainable_variables)

    def get_config(self) -> dict:
        return {
            "optimizer": self._base_config,
            "groups": [[f, list(p)] for f, p in self._groups],
            "stage_factors": dict(self.stage_factors),
            "loss_scale_factor": self.loss_scale_factor,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["optimizer"] = keras.optimizers.deserialize(
            config["optimizer"], custom_objects=custom_objects
        )
        return cls(**config)


def discriminative(
    optimizer: keras.optimizers.Optimizer | str,
    model: keras.Model,
    factors: dict,
    *,
    name: str | None = None,
) -> DiscriminativeOptimizer:
    """Wraps an optimizer so each stage trains at its own learning rate.

    The rate of a stage is `factor * base`, where `base` is the optimizer's
    learning rate or schedule (the factor applies on top of any
    `LearningRateSchedule`). Stages not in `factors` use factor `1.0`. All
    variables of a stage are mapped, frozen or not, so a stage unfrozen later
    gets its rate once the optimizer is rebuilt.

    Example:

    ```python
    optimizer = kerasft.optimizers.discriminative(
        keras.optimizers.Adam(1e-3),
        model,
        {"block5": 0.1, "head": 1.0},
    )
    model.compile(optimizer=optimizer, loss="categorical_crossentropy")
    ```

    Args:
        optimizer: keras.optimizers.Optimizer or str. The base optimizer.
        model: keras.Model. A built model.
        factors: dict `{target: factor}`. `target` is anything
            `kerasft.resolve_stages` accepts (a stage name, layer name,
            regex, index, Layer); `factor` must be > 0. `layerwise_decay` and
            `lr_range` return such dicts.
        name: str or None. Name of the optimizer. Defaults to `None`.

    Returns:
        A `DiscriminativeOptimizer`.

    Raises:
        ValueError: for a factor <= 0, an unknown stage, or a stage given two
            different factors.
        TypeError: if `factors` is not a dict.
    """
    if not isinstance(factors, dict):
        raise TypeError(
            "`factors` must be a dict mapping stages to factors. "
            f"Received: factors={factors!r}"
        )
    if isinstance(optimizer, str):
        optimizer = keras.optimizers.get(optimizer)
    stage_factors = {s.name: 1.0 for s in list_stages(model)}
    assigned = {}
    for target, factor in factors.items():
        factor = check_number(
            f"factors[{target!r}]", factor, minimum=0, min_inclusive=False
        )
        try:
            targeted = resolve_stages(model, target)
        except (TypeError, ValueError) as error:
            raise type(error)(f"Bad stage in `factors`: {error}") from error
        for stage in targeted:
            if stage.name in assigned and assigned[stage.name] != factor:
                raise ValueError(
                    f"Stage {stage.name!r} was given two different factors. "
                    f"Received: {assigned[stage.name]} and {factor}"
                )
            assigned[stage.name] = factor
            stage_factors[stage.name] = factor
    paths = {}
    for stage in list_stages(model):
        factor = stage_factors[stage.name]
        for v in stage.variables:
            paths.setdefault(factor, []).append(v.path)
    groups = [[f, p] for f, p in paths.items() if f != 1.0]
    return DiscriminativeOptimizer(
        optimizer, groups, stage_factors=stage_factors, name=name
    )


class StageLearningRateLogger(keras.callbacks.Callback):
    """Writes the effective learning rate of each stage into the logs.

    At the end of each epoch it adds `lr/<stage>` entries (floats) to `logs`
    for a model compiled with a `DiscriminativeOptimizer`, so they show up in
    `History`, `CSVLogger` and TensorBoard.

    Example:

    ```python
    model.fit(x, y, callbacks=[
        kerasft.optimizers.StageLearningRateLogger()])
    ```
    """

    def on_epoch_end(self, epoch, logs=None):
        optimizer = self.model.optimizer
        if logs is None or not isinstance(optimizer, DiscriminativeOptimizer):
            return
        for stage, rate in optimizer.stage_learning_rates().items():
            logs[f"lr/{stage}"] = rate
