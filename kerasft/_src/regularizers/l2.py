"""`L2`: weight decay towards zero on chosen stages, as a loss term."""

from __future__ import annotations

import keras

from kerasft._src.regularizers.penalty import StagePenalty
from kerasft._src.regularizers.penalty import check_target
from kerasft._src.regularizers.penalty import stage_variables
from kerasft._src.stages import Target


@keras.saving.register_keras_serializable(package="kerasft")
class L2(StagePenalty):
    """Weight decay towards zero on chosen stages, as a loss term.

    Adds `strength / 2 * ||w||^2` over the weights of the chosen stages
    (gradient `strength * w`). A `StagePenalty`, like `L2SP`: every
    variable of the stages gets the penalty, Keras counts the trainable
    ones; the strength can be changed with `set_strength` or
    `StrengthSchedule`.

    Example:

    ```python
    reg = kerasft.regularizers.L2(1e-4, target=["block5", "head"])
    reg.apply(model)
    ```

    Args:
        strength: float. Must be >= 0. Defaults to `1e-4`.
        target: The stages: anything `kerasft.resolve_stages` accepts that
            can be saved (names, regexes, indices, or a list of these).
            Defaults to `None`: every stage.
        name: str. Name used for the strength variable. Defaults to `"l2"`.

    Raises:
        ValueError: for `strength` < 0.
        TypeError: for a non-number strength or a target of another type.
    """

    strength_names = ("strength",)

    def __init__(
        self,
        strength: float = 1e-4,
        *,
        target: Target | None = None,
        name: str = "l2",
    ):
        check_target("target", target)
        super().__init__({"strength": strength}, name=name)
        self.target = target

    @property
    def strength(self) -> float:
        """The current strength."""
        return self._strengths["strength"]

    def apply(self, model: keras.Model) -> L2:
        """Attaches the penalty to the variables of the target stages.

        Returns:
            `self`.

        Raises:
            ValueError: for an unbuilt model, an unknown stage, or a second
                `apply`.
        """
        return super().apply(model)

    def set_strength(self, *, strength: float) -> None:
        """Changes the strength; takes effect at the next step."""
        super().set_strength(strength=strength)

    def plan(self, model: keras.Model) -> list:
        """`strength` towards zero on every variable of the target stages."""
        return [
            ("strength", v, False) for v in stage_variables(model, self.target)
        ]

    def get_config(self) -> dict:
        return {**super().get_config(), "target": self.target}
