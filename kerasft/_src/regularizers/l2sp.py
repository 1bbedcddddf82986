"""`L2SP`: pull the pretrained stages towards w0, decay the new head.

Li, Grandvalet and Davoine 2018, "Explicit inductive bias for transfer
learning with convolutional networks".
"""

from __future__ import annotations

from typing import Any

import keras

from kerasft._src.regularizers.penalty import StagePenalty
from kerasft._src.regularizers.penalty import check_target
from kerasft._src.regularizers.penalty import stage_variables
from kerasft._src.stages import HEAD
from kerasft._src.stages import Target
from kerasft._src.stages import stages as list_stages


@keras.saving.register_keras_serializable(package="kerasft")
class L2SP(StagePenalty):
    """L2-SP: keep pretrained weights near their start, decay the new head.

    Adds `alpha / 2 * ||w - w0||^2` over the weights of the pretrained stages
    (w0 is a copy of their values when `apply` is called, or taken from
    `reference`) and `beta / 2 * ||w||^2` over the weights of every other
    stage (the new head), so the gradients are `alpha * (w - w0)` and
    `beta * w` (Li et al. 2018). Every variable of the chosen stages gets
    the penalty, frozen or not; Keras counts it only while the variable is
    trainable, so stages unfrozen later (`UnfreezeSchedule`, `FreezeUntil`)
    join the penalty by themselves. It works in `fit` and `evaluate` on
    every backend, with `jit_compile` on or off.

    A `StagePenalty`: the penalty is training state, not part of the model.
    `model.save` works and saves the weights, but not the penalty or w0.
    `get_config` saves the settings; after loading, re-apply with the
    pretrained weights as `reference`.

    Example:

    ```python
    model = kerasft.build_classifier(backbone, num_classes=5)
    reg = kerasft.regularizers.L2SP(alpha=0.1, beta=0.01).apply(model)
    model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=3)

    # Strength per epoch (works under jit on every backend):
    schedule = kerasft.regularizers.StrengthSchedule(
        reg, alpha=lambda epoch: 0.1 * 0.5**epoch
    )
    model.fit(x, y, epochs=3, callbacks=[schedule])
    ```

    Args:
        alpha: float. Strength of the pull towards w0 on the pretrained
            stages. Must be >= 0. Defaults to `0.1`.
        beta: float. Strength of the decay towards zero on the other
            stages. Must be >= 0. Defaults to `0.01`.
        pretrained: The pretrained stages: a stage name, layer name, regex,
            stage index, or a list of these (see `kerasft.resolve_stages`).
            Defaults to `None`: every stage except `"head"` (the model must
            then have a `"head"` stage).
        name: str. Name used for the strength variables. Defaults to
            `"l2sp"`.

    Raises:
        ValueError: for `alpha` or `beta` < 0, or an empty `name`.
        TypeError: for a non-number strength, or a `pretrained` that cannot
            be saved in the config (pass layer names instead of layers).
    """

    strength_names = ("alpha", "beta")

    def __init__(
        self,
        alpha: float = 0.1,
        beta: float = 0.01,
        *,
        pretrained: Target | None = None,
        name: str = "l2sp",
    ):
        check_target("pretrained", pretrained)
        super().__init__({"alpha": alpha, "beta": beta}, name=name)
        self.pretrained = pretrained

    @property
    def alpha(self) -> float:
        """The current strength of the pull towards w0."""
        return self._strengths["alpha"]

    @property
    def beta(self) -> float:
        """The current strength of the decay of the other stages."""
        return self._strengths["beta"]

    def apply(self, model: keras.Model, *, reference: Any = None) -> L2SP:
        """Attaches the penalty to `model`'s variables and records w0.

        Call it after loading the pretrained weights and building the head,
        before `fit`. Calling it after a `fit` is fine too: the step
        functions are rebuilt.

        Args:
            model: keras.Model. A built model.
            reference: w0. `None` takes (copies) the model's current
                weights; a built `keras.Model` of the same architecture or
                a list of arrays in the order of `model.weights` provides
                them explicitly (use it to re-apply after loading a
                fine-tuned model). Defaults to `None`.

        Returns:
            `self`.

        Raises:
            ValueError: for an unbuilt model, a model without a `"head"`
                stage when `pretrained` is `None`, an unknown stage, a
                `reference` that does not match, or a second `apply`.
        """
        return super().apply(model, reference=reference)

    def set_strength(
        self, *, alpha: float | None = None, beta: float | None = None
    ) -> None:
        """Changes `alpha` and/or `beta`; takes effect at the next step.

        Works between `fit` calls and inside `fit` (from a callback) on
        every backend; on JAX each change costs one new trace of the step.

        Raises:
            ValueError: for a value < 0.
        """
        strengths = {}
        if alpha is not None:
            strengths["alpha"] = alpha
        if beta is not None:
            strengths["beta"] = beta
        super().set_strength(**strengths)

    def plan(self, model: keras.Model) -> list:
        """`alpha` towards w0 on the pretrained stages, `beta` elsewhere."""
        if self.pretrained is None:
            names = [s.name for s in list_stages(model)]
            if HEAD not in names:
                raise ValueError(
                    f"Model '{model.name}' has no '{HEAD}' stage, so L2SP "
                    "cannot tell the pretrained stages from the new ones. "
                    "Pass `pretrained=` (stage names, layer names, a regex, "
                    f"or indices). Stages: {names}. Received: pretrained=None"
                )
            target = [n for n in names if n != HEAD]
        else:
            target = self.pretrained
        pretrained = stage_variables(model, target, "pretrained")
        pretrained_ids = {id(v) for v in pretrained}
        others = [
            v
            for v in stage_variables(model, None)
            if id(v) not in pretrained_ids
        ]
        return [("alpha", v, True) for v in pretrained] + [
            ("beta", v, False) for v in others
        ]

    def get_config(self) -> dict:
        return {**super().get_config(), "pretrained": self.pretrained}


def l2sp(
    model: keras.Model,
    alpha: float = 0.1,
    beta: float = 0.01,
    *,
    pretrained: Target | None = None,
    reference: Any = None,
) -> L2SP:
    """Applies L2-SP to a model; shorthand for `L2SP(...).apply(model)`.

    Example:

    ```python
    reg = kerasft.regularizers.l2sp(model, alpha=0.1, beta=0.01)
    ```

    Args:
        model: keras.Model. A built model.
        alpha: float. Pull towards w0 on the pretrained stages. Defaults to
            `0.1`.
        beta: float. Decay towards zero on the other stages. Defaults to
            `0.01`.
        pretrained: The pretrained stages. Defaults to `None`: every stage
            except `"head"`.
        reference: w0, see `L2SP.apply`. Defaults to `None` (a copy of the
            current weights).

    Returns:
        The applied `L2SP`.

    Raises:
        ValueError: see `L2SP` and `L2SP.apply`.
    """
    return L2SP(alpha, beta, pretrained=pretrained).apply(
        model, reference=reference
    )
