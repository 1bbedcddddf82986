"""The registry of named fine-tuning strategies.

A `Strategy` says what trains when and at which rates, in words (its
`phases`) and in code (its `build` function, which sets the model's
trainable state and returns the optimizer and callbacks to train with).
The `kerasft finetune` command, `kerasft.finetune.finetune`,
`examples/mobilenet_strategies.py` and the tables of the docs all read
this one registry, so each strategy has one name and one definition.
Schedules of what trains come from `kerasft.callbacks.UnfreezeSchedule`
(`gradual`, `chain_thaw`, `lp_ft`); rates from `kerasft.optimizers`.
"""

from __future__ import annotations

import dataclasses
import re
import types
from collections.abc import Callable
from collections.abc import Mapping

import keras

from kerasft._src import walk
from kerasft._src.callbacks.unfreeze_schedule import UnfreezeSchedule
from kerasft._src.freezing import freeze_until
from kerasft._src.freezing import unfreeze
from kerasft._src.optimizers.discriminative import discriminative
from kerasft._src.optimizers.discriminative import layerwise_decay
from kerasft._src.optimizers.discriminative import lr_range
from kerasft._src.schedules import WarmUp
from kerasft._src.stages import stages as model_stages
from kerasft._src.validation import check_int

_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")


@dataclasses.dataclass(frozen=True)
class Strategy:
    """A named fine-tuning strategy: what trains when, at which rates.

    `build(model, *, learning_rate, epochs, probed=False, factors=None,
    **options)` sets which stages of `model` train, and returns
    `(optimizer, callbacks)` for `model.compile` and `model.fit`. With
    `probed=True` the head was already trained alone (a linear probe), so
    a strategy that starts with the head alone skips that part. `factors`
    (a `{stage: factor}` dict) gives stages their own rates through
    `kerasft.optimizers.discriminative`.

    Example:

    ```python
    strategy = kerasft.finetune.STRATEGIES["gradual"]
    optimizer, callbacks = strategy.build(model, learning_rate=1e-3, epochs=4)
    model.compile(optimizer, "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=4, callbacks=callbacks)
    ```

    Attributes:
        name: str. Lower case words joined by `-`, e.g. `"lp-ft"`.
        description: str. One line, shown by `kerasft finetune --help`.
        phases: tuple of str. What trains in each phase, at which rate.
        build: callable. See above.
        from_probe: bool. Whether the strategy, run after a probe, starts
            from the probe's head; `False` resets the head to its initial
            weights first. Defaults to `True`.
    """

    name: str
    description: str
    phases: tuple[str, ...]
    build: Callable[..., tuple]
    from_probe: bool = True

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(
                "A strategy name is lower case words joined by '-', e.g. "
                f"'lp-ft'. Received: name={self.name!r}"
            )
        if not isinstance(self.phases, tuple) or not all(
            isinstance(p, str) for p in self.phases
        ):
            raise TypeError(
                "`phases` must be a tuple of str. Received: "
                f"phases={self.phases!r}"
            )
        if not callable(self.build):
            raise TypeError(
                f"`build` must be callable. Received: build={self.build!r}"
            )


_REGISTRY: dict[str, Strategy] = {}
STRATEGIES: Mapping[str, Strategy] = types.MappingProxyType(_REGISTRY)
_RENAMED = {"feature-extraction": "probe"}


def register_strategy(strategy: Strategy, *, overwrite: bool = False):
    """Adds a strategy to `STRATEGIES` (and to `kerasft finetune`).

    Example:

    ```python
    def top_two(model, *, learning_rate, epochs, probed=False, factors=None):
        kerasft.freeze_until(model, -2, inclusive=False)
        return keras.optimizers.SGD(learning_rate), []

    kerasft.finetune.register_strategy(
        kerasft.finetune.Strategy(
            "top-two", "the top stage and the head", ("top 2 stages",), top_two
        )
    )
    ```

    Args:
        strategy: Strategy. The entry.
        overwrite: bool. Whether to replace an entry of the same name.
            Defaults to `False`.

    Returns:
        The strategy.

    Raises:
        TypeError: if `strategy` is not a `Strategy`.
        ValueError: if the name is taken and `overwrite` is `False`.
    """
    if not isinstance(strategy, Strategy):
        raise TypeError(
            "`register_strategy` takes a `kerasft.finetune.Strategy`. "
            f"Received: strategy={strategy!r}"
        )
    if strategy.name in _REGISTRY and not overwrite:
        raise ValueError(
            f"A strategy named {strategy.name!r} is registered already; "
            "pass `overwrite=True` to replace it. Received: "
            f"name={strategy.name!r}"
        )
    _REGISTRY[strategy.name] = strategy
    return strategy


def get_strategy(name: str) -> Strategy:
    """The registered strategy called `name`; the error lists the names."""
    if not isinstance(name, str):
        raise TypeError(
            f"`strategy` must be a str, one of {list(_REGISTRY)}. Received: "
            f"`strategy={name!r}`"
        )
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in _RENAMED:
        raise ValueError(
            f"the strategy {name!r} is named {_RENAMED[name]!r}: use "
            f"`strategy={_RENAMED[name]!r}`. Received: `strategy={name!r}`"
        )
    raise ValueError(
        f"unknown `strategy`; choose one of {list(_REGISTRY)}. Received: "
        f"`strategy={name!r}`"
    )


def strategy_table() -> str:
    """The Markdown table of the registry (docs/strategies.md, docs/cli.md)."""
    rows = ["| strategy | what trains when, at which rates |", "| --- | --- |"]
    for strategy in _REGISTRY.values():
        rows.append(
            f"| `{strategy.name}` | {'; then '.join(strategy.phases)} |"
        )
    return "\n".join(rows)


# --------------------------------------------------------------------------
# The strategies.


def _adam(model, learning_rate, factors):
    optimizer = keras.optimizers.Adam(learning_rate)
    return (
        optimizer
        if factors is None
        else discriminative(optimizer, model, factors)
    )


def _probe(model, *, learning_rate, epochs, probed=False, factors=None):
    freeze_until(model, -1, inclusive=False)
    return _adam(model, learning_rate, factors), []


def _partial(
    model, *, learning_rate, epochs, probed=False, factors=None, stages=2
):
    freeze_until(model, -stages, inclusive=False)
    return _adam(model, learning_rate, factors), []


def _full(model, *, learning_rate, epochs, probed=False, factors=None):
    unfreeze(model)
    return _adam(model, learning_rate, factors), []


def _gradual(
    model, *, learning_rate, epochs, probed=False, factors=None, stages=None
):
    n = len(model_stages(model))
    stages = min(epochs + probed if stages is None else stages, n)
    freeze_until(model, -1, inclusive=False)
    if probed:
        # The probe was the first step of gradual unfreezing (the head
        # alone): the next stage joins at once, then one more per epoch.
        schedule = UnfreezeSchedule({i: -(i + 2) for i in range(stages - 1)})
    else:
        schedule = UnfreezeSchedule.gradual(stages=stages)
    return _adam(model, learning_rate, factors), [schedule]


def _chain_thaw(model, *, learning_rate, epochs, probed=False, factors=None):
    freeze_until(model, -1, inclusive=False)
    schedule = UnfreezeSchedule.chain_thaw()
    return _adam(model, learning_rate, factors), [schedule]


def _lp_ft(
    model,
    *,
    learning_rate,
    epochs,
    probed=False,
    factors=None,
    head_epochs=None,
):
    if probed:
        unfreeze(model)
        return _adam(model, learning_rate, factors), []
    freeze_until(model, -1, inclusive=False)
    head_epochs = max(1, epochs // 2) if head_epochs is None else head_epochs
    schedule = UnfreezeSchedule.lp_ft(head_epochs)
    return _adam(model, learning_rate, factors), [schedule]


def _discriminative(
    model, *, learning_rate, epochs, probed=False, factors=None
):
    unfreeze(model)
    if factors is None:
        factors = lr_range(model, learning_rate / 100, learning_rate)
    return _adam(model, learning_rate, factors), []


# --------------------------------------------------------------------------
# `auto`: the recipe chosen from the model family and the step budget.

# Model families, told apart by their layers (`model_family`).
TRANSFORMER = "transformer"
BATCHNORM = "convolutional"
OTHER = "other"
# Per family: the layer-wise decay per stage, the share of the steps that
# warms the rate up (0: none), and what follows. Transformers: plain full
# fine-tuning, AdamW at a constant rate. On the validation splits of
# benchmarks/transfer.py's text tasks (500 texts, 3 epochs, 48 steps, 3
# seeds, JAX) nothing measured beat it by more than the seeds' spread:
# layer-wise decay 0.9 with a 10% warm-up (0.939 on BBC News against 0.945
# for the plain recipe, 0.744 against 0.741 on Rotten Tomatoes), the same
# without layer-wise decay (0.938, 0.716), without the warm-up (0.936),
# the new head at 10x (0.932); averages of the weights along the run
# (EMA, tail means) were mixed, within 2 of the 300 texts. A rate that
# decays to 0 did much worse (0.593 against 0.753 on Rotten Tomatoes,
# TensorFlow, seed 0): it halves the mean rate of a short run. CNNs:
# Adam, cosine decay.
_RECIPES = {
    TRANSFORMER: {"decay": 1.0, "warmup": 0.0, "shape": "constant"},
    BATCHNORM: {"decay": 0.8, "warmup": 0.05, "shape": "cosine"},
    OTHER: {"decay": 1.0, "warmup": 0.05, "shape": "cosine"},
}
# A CNN's new head trains at this multiple of the backbone's rate when no
# probe trained it first (new layers at 10x: Girshick et al. 2014).
_NEW_HEAD_FACTOR = 10.0
# Without a probe the head trains alone for this share of the steps; the
# backbone stages then join one by one until this share of the steps.
_HEAD_ALONE = 0.1
_ALL_TRAIN = 0.5


_BN = keras.layers.BatchNormalization


def model_family(model: keras.Model) -> str:
    """`"transformer"`, `"convolutional"` (with BatchNorm) or `"other"`."""
    names = {
        cls.__name__
        for layer in walk.nested_layers(model)
        for cls in type(layer).__mro__
    }
    if any("Attention" in n or "Transformer" in n for n in names):
        return TRANSFORMER
    if "BatchNormalization" in names:
        return BATCHNORM
    return OTHER


@dataclasses.dataclass(frozen=True)
class AutoChoice:
    """What `strategy="auto"` chose for one model and budget, and why.

    Attributes:
        family: str. `"transformer"`, `"convolutional"` or `"other"`.
        chose: str. The recipe, in words.
        because: str. Why, in words.
        total_steps: int. Optimizer steps of the phase.
        warmup_steps: int. Steps of linear warm-up.
        decay: float. Layer-wise rate decay per stage (1.0: none).
        head_factor: float. The head's rate over the top stage's.
        unfreeze_steps: dict. `{step: stage}`: when each stage starts to
            train (empty: every stage trains from the start).
    """

    family: str
    chose: str
    because: str
    total_steps: int
    warmup_steps: int
    decay: float
    head_factor: float
    unfreeze_steps: dict

    def record(self) -> dict:
        """The dict `summary.json` keeps under `"auto"`."""
        return {
            "strategy": "auto",
            "family": self.family,
            "chose": self.chose,
            "because": self.because,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "layerwise_decay": self.decay,
            "head_factor": self.head_factor,
            "unfreeze_steps": {
                str(k): v for k, v in self.unfreeze_steps.items()
            },
        }


def auto_choice(
    model: keras.Model, *, epochs: int, steps_per_epoch: int, probed=False
) -> AutoChoice:
    """The recipe of `strategy="auto"` for `model` and the step budget."""
    check_int("epochs", epochs, minimum=1)
    check_int("steps_per_epoch", steps_per_epoch, minimum=1)
    family = model_family(model)
    stages = model_stages(model)
    names = [s.name for s in stages]
    total = epochs * steps_per_epoch
    recipe = _RECIPES[family]
    warmup = max(1, round(total * recipe["warmup"])) if recipe["warmup"] else 0
    budget = f"{epochs} epoch(s) x {steps_per_epoch} steps = {total} steps"
    rates = (
        f"Adam{'W' if family == TRANSFORMER else ''}, "
        + (f"warm-up over {warmup} steps then " if warmup else "")
        + (
            "a constant rate"
            if recipe["shape"] == "constant"
            else f"{recipe['shape']} decay to 0"
        )
        + (
            f", layer-wise decay {recipe['decay']:g} per stage"
            if recipe["decay"] < 1
            else ""
        )
    )
    unfreeze, head_factor = {}, 1.0
    if family == TRANSFORMER:
        chose = f"plain full fine-tuning: every stage from the start; {rates}"
        because = (
            f"a Transformer with {len(names)} stages and {budget}: gradual "
            "unfreezing would leave most of the encoder frozen for most of "
            "a short run, and in the text benchmark no warm-up, decaying "
            "rate, layer-wise rate or faster head beat plain full "
            "fine-tuning by more than the seeds' spread"
        )
    elif family == BATCHNORM:
        head_factor = 1.0 if probed else _NEW_HEAD_FACTOR
        # Only stages with weights that train (BatchNorm stays frozen) get
        # a step of their own.
        learning = [
            s.name
            for s in stages[:-1]
            if any(
                layer.weights and not isinstance(layer, _BN)
                for layer in s.layers
            )
        ]
        unfreeze = _step_schedule(learning + [names[-1]], total, probed)
        how = (
            f"gradual unfreezing in steps, every stage training by step "
            f"{max(unfreeze)}"
            if unfreeze
            else "every stage from the start"
        )
        chose = f"BatchNorm frozen; {how}; {rates}" + (
            "" if probed else f"; the new head at {head_factor:g}x the rate"
        )
        because = (
            f"a convolutional network with BatchNorm ({len(names)} stages) "
            f"and {budget}: frozen BatchNorm statistics and a pretrained "
            "bottom that joins late and slowly keep the features a small "
            "data set cannot re-learn"
            + ("" if unfreeze else "; too few steps to unfreeze gradually")
        )
    else:
        chose = f"every stage from the start; {rates}"
        because = f"no BatchNorm or attention layers; {budget}"
    return AutoChoice(
        family,
        chose,
        because,
        total,
        warmup,
        recipe["decay"],
        head_factor,
        unfreeze,
    )


def _step_schedule(names, total, probed) -> dict:
    """`{step: stage}`: the head (and the top stage after a probe) first,
    then one more stage at evenly spaced steps until `_ALL_TRAIN` of the
    budget; `{}` if the budget has fewer steps than stages to add."""
    first = 2 if probed else 1
    start = 0 if probed else max(1, round(total * _HEAD_ALONE))
    end = max(start, round(total * _ALL_TRAIN))
    joining = names[: len(names) - first][::-1]
    if not joining or end - start + 1 < len(joining):
        return {}
    schedule = {0: names[-first]}
    for i, name in enumerate(joining):
        step = start + round((end - start) * (i + 1) / len(joining))
        schedule[max(step, max(schedule) + 1)] = name
    return schedule


def _auto(
    model,
    *,
    learning_rate,
    epochs,
    probed=False,
    factors=None,
    steps_per_epoch=None,
):
    if steps_per_epoch is None:
        raise ValueError(
            "`strategy='auto'` reads the step budget: pass `steps_per_epoch`"
            f" to `build`. Received: steps_per_epoch={steps_per_epoch!r}"
        )
    choice = auto_choice(
        model, epochs=epochs, steps_per_epoch=steps_per_epoch, probed=probed
    )
    rate = _decaying_rate(learning_rate, choice)
    if choice.family == TRANSFORMER:
        optimizer = keras.optimizers.AdamW(rate, weight_decay=0.01)
    else:
        optimizer = keras.optimizers.Adam(rate)
    if factors is None and (choice.decay < 1 or choice.head_factor != 1):
        # `layerwise_decay` gives the head 1.0: the top backbone stage gets
        # the base rate instead, the head `head_factor` times it.
        factors = layerwise_decay(model, choice.decay)
        factors = {k: v / choice.decay for k, v in factors.items()}
        factors[model_stages(model)[-1].name] = choice.head_factor
    if factors is not None:
        optimizer = discriminative(optimizer, model, factors)
    if not choice.unfreeze_steps:
        unfreeze(model)
        return optimizer, []
    freeze_until(model, choice.unfreeze_steps[0], inclusive=False)
    schedule = UnfreezeSchedule(
        {k: v for k, v in choice.unfreeze_steps.items() if k}, unit="step"
    )
    return optimizer, [schedule]


def _decaying_rate(learning_rate, choice):
    """Warm-up (if any), then a constant rate or cosine decay to 0."""
    if _RECIPES[choice.family]["shape"] == "constant":
        if not choice.warmup_steps:
            return learning_rate
        return WarmUp(learning_rate, choice.warmup_steps)
    steps = max(1, choice.total_steps - choice.warmup_steps)
    decay = keras.optimizers.schedules.CosineDecay(learning_rate, steps)
    return WarmUp(decay, choice.warmup_steps)


for _strategy in (
    Strategy(
        "auto",
        "picks the recipe from the model family and the step budget",
        (
            "chosen per model family and step budget (`auto_choice`, "
            "recorded in `summary.json`): Transformers get plain full "
            "fine-tuning, every stage from the start with AdamW at a "
            "constant rate; CNNs with BatchNorm keep BatchNorm "
            "frozen, unfreeze their stages one by one in steps until half "
            "the budget, with Adam, warm-up and cosine decay, layer-wise "
            "decay 0.8 from `learning_rate` (the top stage) and, without "
            "a probe, the new head at 10x",
        ),
        _auto,
    ),
    Strategy(
        "probe",
        "the head only; the backbone stays frozen (feature extraction)",
        ("the head at `learning_rate`, the backbone frozen",),
        _probe,
    ),
    Strategy(
        "partial",
        "the top backbone stage and the head; the rest stays frozen",
        (
            "the top `stages` stages (default 2: the top backbone stage and "
            "the head) at `learning_rate`, the rest frozen",
        ),
        _partial,
    ),
    Strategy(
        "full",
        "the whole model at one rate, from a new head",
        (
            "every stage at `learning_rate` (after a probe, the head is "
            "reset to its initial weights first)",
        ),
        _full,
        from_probe=False,
    ),
    Strategy(
        "gradual",
        "gradual unfreezing (ULMFiT): one more stage per epoch, from the top",
        (
            "the head alone for one epoch (the probe, when there is one)",
            "one more stage per epoch, from the top, all at `learning_rate`",
        ),
        _gradual,
    ),
    Strategy(
        "chain-thaw",
        "chain-thaw (DeepMoji): the head alone, each stage alone, then all",
        (
            "the head alone for one epoch",
            "each other stage alone, from the input up, one epoch each",
            "every stage, all at `learning_rate`",
        ),
        _chain_thaw,
    ),
    Strategy(
        "lp-ft",
        "LP-FT (Kumar et al. 2022): a linear probe, then the whole model",
        (
            "the head alone for `head_epochs` (the probe, when there is one)",
            "every stage at `learning_rate`, from the probe's head",
        ),
        _lp_ft,
    ),
    Strategy(
        "discriminative",
        "the whole model, each stage at its own rate",
        (
            "every stage at its own rate: `lr_range` from `learning_rate / "
            "100` (bottom stage) to `learning_rate` (head)",
        ),
        _discriminative,
    ),
):
    register_strategy(_strategy)
