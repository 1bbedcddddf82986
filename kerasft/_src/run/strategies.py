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

from kerasft._src.callbacks.unfreeze_schedule import UnfreezeSchedule
from kerasft._src.freezing import freeze_until
from kerasft._src.freezing import unfreeze
from kerasft._src.optimizers.discriminative import discriminative
from kerasft._src.optimizers.discriminative import lr_range
from kerasft._src.stages import stages as model_stages

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


for _strategy in (
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
