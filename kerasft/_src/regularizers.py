"""Regularization for fine-tuning: L2-SP, L2 by stage, re-initialization.

`L2SP` pulls the pretrained stages towards their starting point
(`alpha / 2 * ||w - w0||^2`, Li et al. 2018, "Explicit inductive bias for
transfer learning with convolutional networks") and decays the new head
towards zero (`beta / 2 * ||w||^2`). `L2` is the same machinery with plain
decay towards zero on chosen stages. Both attach a penalty to each variable
through Keras's own per-variable hook, `variable.regularizer`, which every
layer sums into `model.losses` (over its *trainable* weights) and every
trainer adds to the loss of `fit` and `evaluate`, also statelessly on JAX.

Their strengths live in `keras.Variable`s owned by the regularizer. They are
not part of the model's state, so the model's weights and saved files do not
change. TensorFlow and PyTorch read them at every step; JAX's jitted step
captures their value when it is traced, so on JAX `set_strength` forces new
step functions when a value changes (one new trace per change).

`reinitialize(model, target, seed=...)` draws new weights for the layers of
chosen stages with each layer's own initializers (Zhang et al. 2021,
"Revisiting few-sample BERT fine-tuning").
"""

from __future__ import annotations

import math
import numbers
import random as python_random
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from kerasft._src import keras_internals
from kerasft._src import walk
from kerasft._src.stages import HEAD
from kerasft._src.stages import Target
from kerasft._src.stages import resolve_layers
from kerasft._src.stages import resolve_stages
from kerasft._src.stages import stages as list_stages

__all__ = [
    "L2",
    "L2SP",
    "StrengthSchedule",
    "l2sp",
    "reinitialize",
]


def _check_strength(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"`{name}` must be a number >= 0. "
            f"Received: {name}={value!r} of type {type(value).__name__}"
        )
    if not math.isfinite(value) or value < 0:
        raise ValueError(
            f"`{name}` must be a finite number >= 0. Received: {name}={value!r}"
        )
    return float(value)


def _check_built(model: Any, what: str) -> None:
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"{what} expects a `keras.Model`. "
            f"Received: model={model!r} of type {type(model).__name__}"
        )
    if not model.built or not model.weights:
        raise ValueError(
            f"{what} needs a model whose weights exist, but model "
            f"'{model.name}' is not built yet. Build it first (call it on a "
            "batch, `model.build(input_shape)`, or start it with a "
            "`keras.Input`). "
            f"Received: model={model.name!r} (built={model.built}, "
            f"weights={len(model.weights)})"
        )


def _reset_step_functions(model: keras.Model) -> None:
    """Forces new train and test steps where the model already has them.

    The penalty is part of the loss that a step function traces, so a step
    traced before the penalty was attached (or removed) would keep ignoring
    it (a `tf.function`, a jitted JAX step).
    """
    if getattr(model, "train_function", None) is not None:
        model.make_train_function(force=True)
    if getattr(model, "test_function", None) is not None:
        model.make_test_function(force=True)


@keras.saving.register_keras_serializable(package="kerasft")
class _L2Term(keras.regularizers.Regularizer):
    """`strength / 2 * ||x - reference||^2`, the penalty of one variable.

    Set as `variable.regularizer` by `L2SP` and `L2`; `strength` is a shared
    scalar `keras.Variable` and `reference` (w0) a non-trainable copy of the
    variable's value, or `None` for decay towards zero. A regularizer the
    variable had before is kept in `previous` and added.
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


class _StagePenalty:
    """Shared machinery of `L2SP` and `L2`: named strengths, attach, detach.

    Subclasses set `_strength_names` and implement `_plan(model, reference)`,
    which returns `[(strength_name, variable, reference_value_or_None)]`.
    """

    _strength_names: tuple = ()

    def __init__(self, strengths: dict, name: str):
        if not isinstance(name, str) or not name:
            raise ValueError(
                f"`name` must be a non-empty string. Received: name={name!r}"
            )
        self.name = name
        self._strengths = {
            key: _check_strength(key, value) for key, value in strengths.items()
        }
        self._variables: dict = {}
        self._attached: list = []  # (variable, term, previous)
        self._model = None

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

    def set_strength(self, **strengths: float) -> None:
        """Changes one or more strengths; takes effect at the next step.

        Works inside `fit` (from a callback) and between `fit` calls, on
        every backend. On JAX a change forces new step functions (the
        jitted step holds the strength as a constant), one trace per change.

        Raises:
            ValueError: for an unknown strength name or a value < 0.
            TypeError: for a value that is not a number.
        """
        changed = False
        for key, value in strengths.items():
            if key not in self._strength_names:
                raise ValueError(
                    f"Unknown strength {key!r} for {type(self).__name__}. "
                    f"Valid names: {list(self._strength_names)}. "
                    f"Received: {key}={value!r}"
                )
            value = _check_strength(key, value)
            if value != self._strengths[key]:
                changed = True
            self._strengths[key] = value
            if key in self._variables:
                self._variables[key].assign(value)
        # JAX only: the jitted train/test steps captured the strength
        # variables' values when they were traced (they are not model
        # state), so a new value needs new step functions. TensorFlow and
        # torch read the variables at every step.
        if (
            changed
            and self._model is not None
            and keras.backend.backend() == "jax"
        ):
            _reset_step_functions(self._model)

    def apply(self, model: keras.Model, *, reference: Any = None):
        """Attaches the penalty to the variables of `model`.

        Returns `self`. See the class docstring for the arguments.
        """
        _check_built(model, f"{type(self).__name__}.apply")
        if self._model is not None:
            raise ValueError(
                f"This {type(self).__name__} is already applied to model "
                f"'{self._model.name}'. Call `remove()` first, or create "
                f"another instance. Received: model={model.name!r}"
            )
        plan = self._plan(model, _reference_values(model, reference))
        for _, variable, _ in plan:
            if isinstance(variable.regularizer, _L2Term) or _holds_term(
                variable.regularizer
            ):
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
            for key in self._strength_names
        }
        attached = []
        for key, variable, ref in plan:
            previous = variable.regularizer
            term = _L2Term(self._variables[key], ref, previous)
            variable.regularizer = term
            attached.append((variable, term, previous))
        self._attached = attached
        self._model = model
        keras_internals.sync_backend_state(model)
        _reset_step_functions(model)
        return self

    def remove(self) -> None:
        """Detaches the penalty, restoring any regularizer there before."""
        for variable, term, previous in self._attached:
            if variable.regularizer is term:
                variable.regularizer = previous
        model = self._model
        self._attached = []
        self._variables = {}
        self._model = None
        if model is not None:
            _reset_step_functions(model)

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


def _holds_term(regularizer) -> bool:
    while regularizer is not None:
        if isinstance(regularizer, _L2Term):
            return True
        regularizer = getattr(regularizer, "previous", None)
    return False


def _reference_values(model: keras.Model, reference: Any) -> dict:
    """Maps `id(variable)` of `model` to its w0, or None for a copy now."""
    if reference is None:
        return None
    if isinstance(reference, keras.Model):
        _check_built(reference, "`reference`")
        values = [keras.ops.convert_to_numpy(v) for v in reference.weights]
        source = f"model {reference.name!r}"
    elif isinstance(reference, (list, tuple)):
        values = [np.asarray(v) for v in reference]
        source = "the list"
    else:
        raise TypeError(
            "`reference` must be None (the model's current weights), a "
            "keras.Model with the same architecture, or a list of arrays in "
            "the order of `model.weights`. "
            f"Received: reference of type {type(reference).__name__}"
        )
    weights = model.weights
    if len(values) != len(weights):
        raise ValueError(
            f"`reference` must have one array per weight of model "
            f"'{model.name}' ({len(weights)}), in the order of "
            f"`model.weights`. Received: {len(values)} arrays from {source}"
        )
    out = {}
    for v, value in zip(weights, values):
        if tuple(value.shape) != tuple(v.shape):
            raise ValueError(
                f"`reference` does not match model '{model.name}': weight "
                f"{v.path!r} has shape {tuple(v.shape)}, the reference "
                f"array has shape {tuple(value.shape)}. Received: "
                f"reference from {source}"
            )
        out[id(v)] = np.array(value, copy=True)
    return out


def _stage_variables(model: keras.Model, target: Target | None) -> list:
    chosen = list_stages(model) if target is None else None
    if chosen is None:
        chosen = resolve_stages(model, target)
    seen, out = set(), []
    for stage in chosen:
        for v in stage.variables:
            if id(v) not in seen:
                seen.add(id(v))
                out.append(v)
    return out


def _check_target(name: str, target: Any) -> None:
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


@keras.saving.register_keras_serializable(package="kerasft")
class L2SP:
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

    The penalty is training state, not part of the model: `model.save`
    works and saves the weights, but not the penalty or w0. `get_config`
    saves the settings; after loading, re-apply with the pretrained
    weights as `reference`.

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

    def __init__(
        self,
        alpha: float = 0.1,
        beta: float = 0.01,
        *,
        pretrained: Target | None = None,
        name: str = "l2sp",
    ):
        _check_target("pretrained", pretrained)
        self._penalty = _L2SPPenalty({"alpha": alpha, "beta": beta}, name)
        self.pretrained = pretrained
        self._penalty.pretrained = pretrained

    @property
    def alpha(self) -> float:
        """The current strength of the pull towards w0."""
        return self._penalty.strengths["alpha"]

    @property
    def beta(self) -> float:
        """The current strength of the decay of the other stages."""
        return self._penalty.strengths["beta"]

    @property
    def name(self) -> str:
        return self._penalty.name

    @property
    def model(self) -> keras.Model | None:
        """The model the penalty is applied to, or `None`."""
        return self._penalty.model

    @property
    def variables(self) -> list:
        """The model variables that carry the penalty (trainable or not)."""
        return self._penalty.variables

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
        self._penalty.apply(model, reference=reference)
        return self

    def remove(self) -> None:
        """Detaches the penalty from the model (restores prior regularizers)."""
        self._penalty.remove()

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
        self._penalty.set_strength(**strengths)

    def penalty(self) -> float:
        """The penalty over the currently trainable variables, as a float."""
        return self._penalty.penalty()

    def get_config(self) -> dict:
        return {
            "alpha": self.alpha,
            "beta": self.beta,
            "pretrained": self.pretrained,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config: dict) -> L2SP:
        return cls(**config)

    def __repr__(self) -> str:
        applied = f", model={self.model.name!r}" if self.model else ""
        return (
            f"<L2SP alpha={self.alpha:g} beta={self.beta:g} "
            f"pretrained={self.pretrained!r}{applied}>"
        )


class _L2SPPenalty(_StagePenalty):
    _strength_names = ("alpha", "beta")
    pretrained: Any = None

    def _plan(self, model, reference):
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
        pretrained = _stage_variables(model, target)
        pretrained_ids = {id(v) for v in pretrained}
        others = [
            v
            for v in _stage_variables(model, None)
            if id(v) not in pretrained_ids
        ]
        plan = [
            (
                "alpha",
                v,
                keras.ops.convert_to_numpy(v).copy()
                if reference is None
                else reference[id(v)],
            )
            for v in pretrained
        ]
        plan += [("beta", v, None) for v in others]
        return plan


@keras.saving.register_keras_serializable(package="kerasft")
class L2:
    """Weight decay towards zero on chosen stages, as a loss term.

    Adds `strength / 2 * ||w||^2` over the weights of the chosen stages
    (gradient `strength * w`). Same machinery as `L2SP`: every variable of
    the stages gets the penalty, Keras counts the trainable ones; the
    strength can be changed with `set_strength` or `StrengthSchedule`.

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

    def __init__(
        self,
        strength: float = 1e-4,
        *,
        target: Target | None = None,
        name: str = "l2",
    ):
        _check_target("target", target)
        self._penalty = _L2Penalty({"strength": strength}, name)
        self.target = target
        self._penalty.target = target

    @property
    def strength(self) -> float:
        """The current strength."""
        return self._penalty.strengths["strength"]

    @property
    def name(self) -> str:
        return self._penalty.name

    @property
    def model(self) -> keras.Model | None:
        """The model the penalty is applied to, or `None`."""
        return self._penalty.model

    @property
    def variables(self) -> list:
        """The model variables that carry the penalty (trainable or not)."""
        return self._penalty.variables

    def apply(self, model: keras.Model) -> L2:
        """Attaches the penalty to the variables of the target stages.

        Returns:
            `self`.

        Raises:
            ValueError: for an unbuilt model, an unknown stage, or a second
                `apply`.
        """
        self._penalty.apply(model)
        return self

    def remove(self) -> None:
        """Detaches the penalty from the model (restores prior regularizers)."""
        self._penalty.remove()

    def set_strength(self, *, strength: float) -> None:
        """Changes the strength; takes effect at the next step."""
        self._penalty.set_strength(strength=strength)

    def penalty(self) -> float:
        """The penalty over the currently trainable variables, as a float."""
        return self._penalty.penalty()

    def get_config(self) -> dict:
        return {
            "strength": self.strength,
            "target": self.target,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config: dict) -> L2:
        return cls(**config)

    def __repr__(self) -> str:
        applied = f", model={self.model.name!r}" if self.model else ""
        return (
            f"<L2 strength={self.strength:g} target={self.target!r}{applied}>"
        )


class _L2Penalty(_StagePenalty):
    _strength_names = ("strength",)
    target: Any = None

    def _plan(self, model, reference):
        return [
            ("strength", v, None) for v in _stage_variables(model, self.target)
        ]


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


class StrengthSchedule(keras.callbacks.Callback):
    """Sets the strength of an `L2SP` or `L2` at the start of each epoch.

    Each schedule is a function of the epoch index (from 0) that returns a
    float, for example a lambda or a
    `keras.optimizers.schedules.LearningRateSchedule` called with the epoch.
    The values used are written into the logs as `<name>/<strength>`
    (`l2sp/alpha`). Works under `jit_compile` on every backend (see
    `L2SP.set_strength`).

    Example:

    ```python
    reg = kerasft.regularizers.l2sp(model, alpha=0.1, beta=0.01)
    model.fit(x, y, epochs=4, callbacks=[
        kerasft.regularizers.StrengthSchedule(
            reg, alpha=lambda epoch: 0.1 / (1 + epoch))])
    ```

    Args:
        regularizer: `L2SP` or `L2`. Applied to the model being trained.
        **schedules: callables by strength name: `alpha=` and/or `beta=`
            for `L2SP`, `strength=` for `L2`.

    Raises:
        TypeError: for a regularizer of another type or a schedule that is
            not callable.
        ValueError: for no schedule or an unknown strength name.
    """

    def __init__(self, regularizer: L2SP | L2, **schedules: Callable):
        super().__init__()
        if not isinstance(regularizer, (L2SP, L2)):
            raise TypeError(
                "`regularizer` must be a kerasft.regularizers.L2SP or L2. "
                f"Received: regularizer={regularizer!r}"
            )
        if not schedules:
            raise ValueError(
                "Pass at least one schedule, e.g. `alpha=lambda epoch: ...`. "
                f"Valid names: {list(regularizer._penalty._strength_names)}. "
                "Received: no schedules"
            )
        valid = regularizer._penalty._strength_names
        for key, fn in schedules.items():
            if key not in valid:
                raise ValueError(
                    f"Unknown strength {key!r} for "
                    f"{type(regularizer).__name__}. Valid names: "
                    f"{list(valid)}. Received: {key}={fn!r}"
                )
            if not callable(fn):
                raise TypeError(
                    f"Each schedule must be callable with the epoch index. "
                    f"Received: {key}={fn!r}"
                )
        self.regularizer = regularizer
        self.schedules = dict(schedules)

    def on_epoch_begin(self, epoch, logs=None):
        values = {}
        for key, fn in self.schedules.items():
            value = fn(epoch)
            values[key] = float(keras.ops.convert_to_numpy(value))
        # `self.model` syncs JAX state before the step functions change.
        model = self.model
        if self.regularizer.model is not model:
            raise ValueError(
                f"{type(self.regularizer).__name__} is not applied to the "
                f"model being trained ('{model.name}'). Call "
                "`regularizer.apply(model)` before `fit`. Received: "
                f"regularizer.model={self.regularizer.model!r}"
            )
        self.regularizer._penalty.set_strength(**values)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for key, value in self.regularizer._penalty.strengths.items():
            logs[f"{self.regularizer.name}/{key}"] = value


# ---------------------------------------------------------------------------
# Re-initialization.

# Initializer attributes to try for a variable name, in order, before the
# generic `<name>_initializer` and `initializer`.
_INITIALIZER_ATTRIBUTES = {
    "kernel": ("kernel_initializer", "depthwise_initializer"),
    "depthwise_kernel": ("depthwise_initializer",),
    "pointwise_kernel": ("pointwise_initializer",),
    "recurrent_kernel": ("recurrent_initializer",),
    "embeddings": ("embeddings_initializer",),
}


def _own_variables(layer) -> list:
    """The variables a layer creates itself (not those of its sublayers)."""
    inner = {id(v) for sub in walk.sublayers(layer)[1:] for v in sub.weights}
    return [v for v in layer.weights if id(v) not in inner]


def _initializer_for(layer, variable):
    name = variable.name
    candidates = list(_INITIALIZER_ATTRIBUTES.get(name, ()))
    candidates += [f"{name}_initializer", "initializer"]
    for attribute in candidates:
        initializer = getattr(layer, attribute, None)
        if initializer is not None and callable(initializer):
            return initializer
    return None


def _seeded(initializer, seed):
    """A copy of `initializer` drawing from `seed`, if it is random."""
    if not isinstance(initializer, keras.initializers.Initializer):
        return initializer
    config = initializer.get_config()
    if "seed" not in config:
        return initializer
    config["seed"] = seed
    return type(initializer).from_config(config)


def _new_value(layer, variable, initializer, seed):
    shape = tuple(variable.shape)
    dtype = variable.dtype
    if (
        variable.name == "bias"
        and getattr(layer, "unit_forget_bias", False)
        and getattr(layer, "units", None)
    ):
        # LSTMCell builds its bias as [input, forget=1, cell, output].
        units = layer.units
        init = _seeded(initializer, seed)
        return keras.ops.concatenate(
            [
                init((units,), dtype=dtype),
                keras.ops.ones((units,), dtype=dtype),
                _seeded(initializer, seed + 1)((units * 2,), dtype=dtype),
            ]
        )
    return _seeded(initializer, seed)(shape, dtype=dtype)


def _variable_seeds(seed, count):
    if seed is None:
        # Keras initializers seeded with `None` draw one default seed when
        # they are created and then repeat their values on every call, so a
        # layer's own initializer would give back its first values. Fresh
        # seeds from Python's generator (seeded by
        # `keras.utils.set_random_seed`) give new values instead.
        return [python_random.randint(1, 10**9) for _ in range(count)]
    state = np.random.SeedSequence(seed).generate_state(count)
    return [int(s) % (2**31 - 1) for s in state]


def reinitialize(
    model: keras.Model, target: Target, *, seed: int | None = None
):
    """Re-initializes the layers of chosen stages with their own initializers.

    Every variable of the targeted layers, and of the layers they hold
    (the projections of `MultiHeadAttention`, the sublayers of a keras-hub
    `TransformerEncoder`, the cell of an `LSTM`), gets a fresh value from
    the initializer its layer was built with: `kernel_initializer`,
    `bias_initializer`, `recurrent_initializer`, `depthwise_initializer`,
    `embeddings_initializer`, BatchNormalization's `gamma`/`beta`/
    `moving_mean`/`moving_variance` initializers, and so on (an LSTM keeps
    its forget-gate bias of 1 when `unit_forget_bias=True`). Other layers
    are left bit-identical. This is the re-initialization of the top layers
    of Zhang et al. 2021 ("Revisiting few-sample BERT fine-tuning").

    With a `seed`, each variable draws from its own seed derived from it, in
    model order, so the same seed gives identical weights on every run.
    Without one, each call draws new values (from seeds of Python's
    generator, which `keras.utils.set_random_seed` seeds).
    Re-initialize before `compile`/`fit`: an optimizer that already has
    slots (Adam moments) for these variables keeps them.

    Example:

    ```python
    # Re-draw the last two Transformer blocks of a BERT-like model.
    kerasft.regularizers.reinitialize(
        model, ["transformer_layer_10", "transformer_layer_11"], seed=0
    )
    ```

    Args:
        model: keras.Model. A built model.
        target: The stages or layers: anything `kerasft.resolve_layers`
            accepts (a stage name, layer name, regex, index, Layer, or a
            list of these).
        seed: int or None. Seed for reproducible values. Defaults to `None`
            (new values on each call).

    Returns:
        The list of variables that were re-initialized, in model order.

    Raises:
        ValueError: for an unbuilt model, an unknown stage or layer, targeted
            layers without weights, or a variable whose layer has no
            initializer for it.
        TypeError: for a target or seed of another type.
    """
    _check_built(model, "reinitialize")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
    ):
        raise TypeError(
            f"`seed` must be an int or None. Received: seed={seed!r}"
        )
    if seed is not None and seed < 0:
        raise ValueError(f"`seed` must be >= 0. Received: seed={seed!r}")
    leaves = resolve_layers(model, target)
    work = []  # (layer, variable, initializer)
    seen = set()
    for leaf in leaves:
        for layer in walk.sublayers(leaf):
            for variable in _own_variables(layer):
                if id(variable) in seen:
                    continue
                seen.add(id(variable))
                initializer = _initializer_for(layer, variable)
                if initializer is None:
                    raise ValueError(
                        f"Cannot re-initialize variable {variable.path!r}: "
                        f"layer '{layer.name}' ({type(layer).__name__}) has "
                        f"no initializer for '{variable.name}' (looked for "
                        f"`{variable.name}_initializer` and `initializer`). "
                        "Leave this layer out of the target. "
                        f"Received: target={target!r}"
                    )
                work.append((layer, variable, initializer))
    if not work:
        names = [leaf.name for leaf in leaves]
        raise ValueError(
            f"The target selects layers without weights ({names}), so there "
            f"is nothing to re-initialize. Received: target={target!r}"
        )
    # JAX only: during `fit` the trainer holds the values; write them back
    # first so the new values are not overwritten (and are read back).
    keras_internals.sync_backend_state(model)
    seeds = _variable_seeds(seed, len(work))
    for (layer, variable, initializer), s in zip(work, seeds):
        variable.assign(_new_value(layer, variable, initializer, s))
    return [variable for _, variable, _ in work]
