"""`StagePenalty`: an L2 penalty on the variables of chosen stages.

Each variable that carries the penalty gets `strength / 2 * ||w - w0||^2`
(pulled towards a reference value w0) or `strength / 2 * ||w||^2` (decayed
towards zero) through Keras's own per-variable hook, `variable.regularizer`,
which every layer sums into `model.losses` (over its *trainable* weights)
and every trainer adds to the loss of `fit` and `evaluate`, also
statelessly on JAX.

The strengths live in `keras.Variable`s owned by the penalty. They are not
part of the model's state, so the model's weights and saved files do not
change. TensorFlow and PyTorch read them at every step; JAX's jitted step
captures their value when it is traced, so on JAX `set_strength` forces new
step functions when a value changes (one new trace per change).
"""

from __future__ import annotations

import contextlib
from typing import Any

import keras
import numpy as np

from kerasft._src import keras_internals
from kerasft._src.reference_weights import FORMS
from kerasft._src.reference_weights import reference_pairs
from kerasft._src.stages import Target
from kerasft._src.stages import resolve_stages
from kerasft._src.stages import stages as list_stages
from kerasft._src.validation import check_model
from kerasft._src.validation import check_number
from kerasft._src.validation import check_type


def check_strength(name: str, value: Any) -> float:
    return check_number(name, value, minimum=0)


def check_target(name: str, target: Any) -> None:
    """Raises unless `target` is a stage target that fits in a config."""
    if target is None or isinstance(target, (str, int)):
        return
    if isinstance(target, (list, tuple)) and all(
        isinstance(t, (str, int)) and not isinstance(t, bool) for t in target
    ):
        return
    raise TypeError(
        f"`{name}` must be a stage name, a layer name or regex (str), a "
        "stage index (int), or a list of these, so that it can be saved "
        "in the config. To target Layer objects, pass their names. "
        f"Received: {name}={target!r}"
    )


def stage_variables(
    model: keras.Model, target: Target | None, name: str = "target"
) -> list:
    """The variables of the target stages (every stage for `None`), once.

    `name` is the argument `target` came from, for the error message.
    """
    chosen = list_stages(model) if target is None else None
    if chosen is None:
        try:
            chosen = resolve_stages(model, target)
        except (TypeError, ValueError) as error:
            raise type(error)(f"Bad `{name}`: {error}") from error
    seen, out = set(), []
    for stage in chosen:
        for v in stage.variables:
            if id(v) not in seen:
                seen.add(id(v))
                out.append(v)
    return out


@keras.saving.register_keras_serializable(package="kerasft")
class _L2Term(keras.regularizers.Regularizer):
    """`strength / 2 * ||x - reference||^2`, the penalty of one variable.

    Set as `variable.regularizer` by `StagePenalty.apply`; `strength` is a
    shared scalar `keras.Variable` and `reference` (w0) a non-trainable copy
    of the variable's value, or `None` for decay towards zero. A regularizer
    the variable had before is kept in `previous` and added.
    """

    def __init__(self, strength, reference=None, previous=None):
        if not isinstance(strength, keras.Variable):
            strength = keras.Variable(
                float(strength), trainable=False, dtype="float32"
            )
        if reference is not None and not isinstance(reference, keras.Variable):
            reference = keras.Variable(np.asarray(reference), trainable=False)
        self.strength = strength
        self.reference = reference
        self.previous = previous

    def __call__(self, x):
        diff = x
        if self.reference is not None:
            diff = x - keras.ops.cast(self.reference, x.dtype)
        penalty = keras.ops.multiply(
            keras.ops.cast(self.strength, x.dtype) * 0.5,
            keras.ops.sum(keras.ops.square(diff)),
        )
        if self.previous is not None:
            penalty = penalty + self.previous(x)
        return penalty

    def get_config(self) -> dict:
        reference = self.reference
        if reference is not None:
            reference = keras.ops.convert_to_numpy(reference).tolist()
        return {
            "strength": float(keras.ops.convert_to_numpy(self.strength)),
            "reference": reference,
            "previous": (
                None
                if self.previous is None
                else keras.regularizers.serialize(self.previous)
            ),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("previous") is not None:
            config["previous"] = keras.regularizers.deserialize(
                config["previous"]
            )
        return cls(**config)


def _holds_term(regularizer) -> bool:
    while regularizer is not None:
        if isinstance(regularizer, _L2Term):
            return True
        regularizer = getattr(regularizer, "previous", None)
    return False


def _reference_values(model: keras.Model, reference: Any) -> dict | None:
    """Maps `id(variable)` of `model` to its w0, or None for a copy now."""
    if reference is None:
        return None
    pairs = reference_pairs(
        model, reference, forms="None (the model's current weights), " + FORMS
    )
    return {id(v): np.array(array, copy=True) for v, array in pairs}


class StagePenalty:
    """Base class of the L2 penalties on stages (`L2SP`, `L2`).

    A penalty has named strengths (`strength_names`) and says, in `plan`,
    which variables of a model carry which strength and whether their term
    pulls them towards a reference value w0 (`strength / 2 * ||w - w0||^2`)
    or decays them towards zero (`strength / 2 * ||w||^2`). `apply` attaches
    the terms through Keras's per-variable hook, `variable.regularizer`:
    Keras adds a variable's term to the loss only while the variable is
    trainable, so stages unfrozen later join the penalty by themselves.
    `set_strength` (or `StrengthSchedule`) changes a strength at any time,
    also inside `fit`, on every backend and under `jit_compile`.

    The penalty is training state, not part of the model: `model.save`
    saves the weights but not the penalty; `get_config` saves the settings.

    Example:

    ```python
    @keras.saving.register_keras_serializable(package="my_package")
    class HeadDecay(kerasft.regularizers.StagePenalty):
        strength_names = ("strength",)

        def __init__(self, strength=1e-3, *, name="head_decay"):
            super().__init__({"strength": strength}, name=name)

        def plan(self, model):
            return [
                ("strength", v, False)
                for v in kerasft.resolve_stages(model, "head")[0].variables
            ]

    HeadDecay(1e-3).apply(model)
    ```

    Args:
        strengths: dict. The starting value of each of `strength_names`,
            each a number >= 0.
        name: str. Prefix of the names of the strength variables.

    Raises:
        ValueError: for a strength < 0 or not finite, or an empty `name`.
        TypeError: for a strength that is not a number.
    """

    #: The names of the strengths, as accepted by `set_strength`.
    strength_names: tuple = ()

    def __init__(self, strengths: dict, *, name: str):
        if not isinstance(name, str) or not name:
            raise ValueError(
                f"`name` must be a non-empty string. Received: name={name!r}"
            )
        check_type("strengths", strengths, dict, "a dict {name: strength}")
        self.name = name
        self._strengths = {
            key: check_strength(key, value) for key, value in strengths.items()
        }
        self._variables: dict = {}
        self._attached: list = []  # (variable, term, previous)
        self._model = None

    def plan(self, model: keras.Model) -> list:
        """Which variables carry which strength.

        Subclasses implement it; `apply` calls it once.

        Args:
            model: keras.Model. The built model being penalised.

        Returns:
            A list of `(strength_name, variable, to_reference)`: the term of
            `variable` uses the strength `strength_name` and pulls towards
            w0 when `to_reference` is true, towards zero otherwise.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement `plan(model)`."
        )

    @property
    def model(self) -> keras.Model | None:
        """The model the penalty is applied to, or `None`."""
        return self._model

    @property
    def strengths(self) -> dict:
        """The current strengths, as floats, by name."""
        return dict(self._strengths)

    @property
    def variables(self) -> list:
        """The model variables that carry this penalty (trainable or not)."""
        return [variable for variable, _, _ in self._attached]

    @property
    def references(self) -> list:
        """`(variable, w0)` for the variables pulled towards w0.

        w0 is a NumPy copy of the reference value each variable is pulled
        towards; variables decayed towards zero are not listed. Empty
        before `apply`.
        """
        return [
            (variable, keras.ops.convert_to_numpy(term.reference).copy())
            for variable, term, _ in self._attached
            if term.reference is not None
        ]

    def set_strength(self, **strengths: float) -> None:
        """Changes one or more strengths; takes effect at the next step.

        Works inside `fit` (from a callback) and between `fit` calls, on
        every backend. On JAX a change forces new step functions (the
        jitted step holds the strength as a constant), one trace per change.

        Raises:
            ValueError: for an unknown strength name or a value < 0.
            TypeError: for a value that is not a number.
        """
        values = {}
        for key, value in strengths.items():
            if key not in self.strength_names:
                raise ValueError(
                    f"Unknown strength {key!r} for {type(self).__name__}. "
                    f"Valid names: {list(self.strength_names)}. "
                    f"Received: {key}={value!r}"
                )
            values[key] = check_strength(key, value)
        changed = any(values[k] != self._strengths[k] for k in values)
        model = self._model if changed else None
        with _changing(model, steps="reset_captured"):
            for key, value in values.items():
                self._strengths[key] = value
                if key in self._variables:
                    self._variables[key].assign(value)

    def apply(self, model: keras.Model, *, reference: Any = None):
        """Attaches the penalty to the variables of `model`.

        Args:
            model: keras.Model. A built model.
            reference: w0 for the terms that pull towards it. `None` takes
                (copies) the model's current weights; a built `keras.Model`
                of the same architecture, a list of arrays in the order of
                `model.weights` or a dict `{variable.path: array}` provides
                them. Defaults to `None`.

        Returns:
            `self`.

        Raises:
            ValueError: for an unbuilt model, a second `apply`, a variable
                that already carries a kerasft penalty, or a `reference`
                that does not match.
        """
        check_model(model, weights=True, purpose=f"{type(self).__name__}.apply")
        if self._model is not None:
            raise ValueError(
                f"This {type(self).__name__} is already applied to model "
                f"'{self._model.name}'. Call `remove()` first, or create "
                f"another instance. Received: model={model.name!r}"
            )
        references = _reference_values(model, reference)
        plan = self.plan(model)
        for _, variable, _ in plan:
            if _holds_term(variable.regularizer):
                raise ValueError(
                    f"Variable {variable.path!r} already carries an L2/L2-SP "
                    "penalty from kerasft. Call `remove()` on the other "
                    f"regularizer first. Received: model={model.name!r}"
                )
        self._variables = {
            key: keras.Variable(
                self._strengths[key],
                trainable=False,
                dtype="float32",
                name=f"{self.name}_{key}",
            )
            for key in self.strength_names
        }
        with _changing(model, steps="reset_loss"):
            self._attached = [
                self._attach(variable, key, to_reference, references)
                for key, variable, to_reference in plan
            ]
            self._model = model
        return self

    def _attach(self, variable, key, to_reference, references):
        w0 = None
        if to_reference:
            w0 = (
                keras.ops.convert_to_numpy(variable).copy()
                if references is None
                else references[id(variable)]
            )
        previous = variable.regularizer
        term = _L2Term(self._variables[key], w0, previous)
        variable.regularizer = term
        return variable, term, previous

    def remove(self) -> None:
        """Detaches the penalty, restoring any regularizer there before."""
        with _changing(self._model, steps="reset_loss"):
            for variable, term, previous in self._attached:
                if variable.regularizer is term:
                    variable.regularizer = previous
            self._attached = []
            self._variables = {}
            self._model = None

    def penalty(self) -> float:
        """The current value of the penalty over the trainable variables.

        This is the amount the penalty adds to the loss of the next step.
        """
        if self._model is None:
            return 0.0
        trainable = {id(v) for v in self._model.trainable_variables}
        total = 0.0
        for variable, term, _ in self._attached:
            if id(variable) in trainable:
                value = term(keras.ops.convert_to_tensor(variable))
                if term.previous is not None:
                    value = value - term.previous(
                        keras.ops.convert_to_tensor(variable)
                    )
                total += float(keras.ops.convert_to_numpy(value))
        return total

    def get_config(self) -> dict:
        return {**self.strengths, "name": self.name}

    def __repr__(self) -> str:
        # The strengths, then the settings a subclass adds to the config.
        parts = [f"{key}={value:g}" for key, value in self.strengths.items()]
        parts += [
            f"{key}={value!r}"
            for key, value in self.get_config().items()
            if key not in self._strengths and key != "name"
        ]
        applied = f", model={self.model.name!r}" if self.model else ""
        return f"<{type(self).__name__} {' '.join(parts)}{applied}>"

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


def _changing(model: keras.Model | None, *, steps: str):
    """`keras_internals.mutating` for `model`, or nothing without a model."""
    if model is None:
        return contextlib.nullcontext()
    return keras_internals.mutating(model, optimizer="keep", steps=steps)
