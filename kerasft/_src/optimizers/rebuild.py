"""Rebuild a compiled model's optimizer for a new set of trainable variables.

Keras fixes the variables an optimizer updates when it is built, and the
compiled train step captures them. This module is the one place in kerasft
that replaces the optimizer of a compiled model after `layer.trainable`
flags changed, carrying its state over, so the change takes effect even in
the middle of `model.fit`.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator

import keras

from kerasft._src import keras_internals
from kerasft._src.validation import check_model


def check_rebuildable(optimizer: keras.optimizers.Optimizer) -> None:
    """Raises if `rebuild_optimizer` cannot rebuild this optimizer.

    An optimizer is rebuildable when `type(optimizer).from_config(
    optimizer.get_config())` returns a new, unbuilt optimizer of the same
    kind. All built-in Keras optimizers qualify, and so do
    `keras.optimizers.LossScaleOptimizer` and `keras.optimizers.
    MultiOptimizer` over an `OptimizerMap` (a `MultiOptimizer` over a plain
    Python function does not serialize, so it does not).

    Args:
        optimizer: keras.optimizers.Optimizer. The optimizer to check.

    Raises:
        TypeError: if `optimizer` is not a Keras optimizer or its config does
            not round-trip.
    """
    _clone(optimizer)


def _clone(optimizer):
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TypeError(
            "kerasft can only rebuild a `keras.optimizers.Optimizer` (the "
            "model must be compiled with one). "
            f"Received: optimizer={optimizer!r} of type "
            f"{type(optimizer).__name__}"
        )
    try:
        clone = type(optimizer).from_config(optimizer.get_config())
    except Exception as e:
        raise TypeError(
            f"Cannot rebuild optimizer '{optimizer.name}' of type "
            f"{type(optimizer).__name__} for a new set of trainable "
            "variables: `type(optimizer).from_config(optimizer.get_config())` "
            f"failed with {type(e).__name__}: {e}. A rebuildable optimizer "
            "must round-trip through its config (register custom classes "
            "with `keras.saving.register_keras_serializable`; a "
            "`MultiOptimizer` needs an `OptimizerMap`, not a function). "
            f"Received: optimizer={optimizer!r}"
        ) from e
    if type(clone) is not type(optimizer):
        raise TypeError(
            f"`{type(optimizer).__name__}.from_config` returned a "
            f"{type(clone).__name__}, so the optimizer cannot be rebuilt "
            f"faithfully. Received: optimizer={optimizer!r}"
        )
    return clone


def _keyed(variables, attr):
    """Keys variables by (path or name, shape, occurrence of that pair)."""
    seen = collections.Counter()
    out = {}
    for v in variables:
        base = (getattr(v, attr), tuple(v.shape))
        out[base + (seen[base],)] = v
        seen[base] += 1
    return out


def carry_state(old_variables: list, new_variables: list) -> int:
    """Copies optimizer state from old to new variables that correspond.

    Variables correspond when their `path` and shape are equal. Those left
    over are then paired by `name` (the path without the optimizer's name
    scope) and shape, in order, because a nested optimizer's variables can
    be created under a different scope from one build to the next (the
    inner optimizer of a `LossScaleOptimizer` on TensorFlow).

    Returns:
        The number of variables whose value was copied.
    """
    copied = 0
    old_left, new_left = list(old_variables), list(new_variables)
    for attr in ("path", "name"):
        previous = _keyed(old_left, attr)
        used, matched = set(), set()
        for key, variable in _keyed(new_left, attr).items():
            source = previous.get(key)
            if source is None or source.dtype != variable.dtype:
                continue
            variable.assign(source.value)
            used.add(id(source))
            matched.add(id(variable))
            copied += 1
        old_left = [v for v in old_left if id(v) not in used]
        new_left = [v for v in new_left if id(v) not in matched]
    return copied


def rebuild_optimizer(model: keras.Model) -> keras.optimizers.Optimizer:
    """Rebuilds a compiled model's optimizer over its trainable variables.

    The new optimizer is `type(old).from_config(old.get_config())`, built on
    `model.trainable_variables`. Every optimizer variable whose path (or,
    failing that, name) and shape match one of the old optimizer gets the
    old value: the iteration count, the learning rate, and the slot
    variables (such as Adam's moments) of variables that were trainable
    before and still are. Slot variables of variables that became trainable
    start from their initial value; those of variables that were frozen are
    dropped. The model's compiled train function (and, on JAX, its test and
    predict functions) is reset so the next step uses the new set.

    Keras names slot variables after the model variable's path
    (`add_variable_from_reference`), which is what makes the match by path
    work for every built-in optimizer, `LossScaleOptimizer` and
    `MultiOptimizer`.

    On JAX inside `model.fit`, the trainer state must be written back to the
    variables *before* `trainable` flags change; use `trainable_change`,
    which does that, instead of calling this function directly.

    Example:

    ```python
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1)
    model.get_layer("dense_0").trainable = True
    kerasft.optimizers.rebuild_optimizer(model)
    model.fit(x, y, epochs=1)  # Now also trains dense_0; Adam state kept.
    ```

    Args:
        model: keras.Model. A compiled model.

    Returns:
        The new optimizer (also set as `model.optimizer`).

    Raises:
        ValueError: if the model is not compiled.
        TypeError: if its optimizer cannot be rebuilt (see
            `check_rebuildable`).
    """
    new = replace_optimizer(model)
    keras_internals.reset_step_functions(model)
    return new


def replace_optimizer(model: keras.Model) -> keras.optimizers.Optimizer:
    """`rebuild_optimizer` without the reset of the step functions.

    `keras_internals.mutating` calls it and then resets the step functions
    itself.
    """
    old = _compiled_optimizer(model)
    # Both the optimizer object and its variables: a TensorFlow optimizer
    # records the current `tf.distribute` strategy in its constructor and
    # refuses to build under another one.
    with keras_internals.creation_scope(model):
        new = _clone(old)
        new.build(model.trainable_variables)
    if old.built:
        carry_state(old.variables, new.variables)
    keras_internals.replace_compiled_optimizer(model, old, new)
    return new


def _compiled_optimizer(model):
    check_model(model, compiled=True, purpose="rebuilding its optimizer")
    return model.optimizer


@contextlib.contextmanager
def trainable_change(model: keras.Model) -> Iterator[None]:
    """Context manager: change `trainable` flags, then rebuild the optimizer.

    On entry the backend's in-flight training state is written back to the
    model (needed on JAX inside `fit`); on exit the optimizer is rebuilt over
    the new trainable variables with `rebuild_optimizer`, and the compiled
    step functions are reset. It is safe inside any callback hook of
    `model.fit` (`on_epoch_begin`, `on_train_batch_begin`, ...) on every
    backend. Nothing is rebuilt if the block raises.

    Example:

    ```python
    class UnfreezeAtEpoch2(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                with kerasft.optimizers.trainable_change(self.model):
                    self.model.get_layer("encoder").trainable = True
    ```

    Args:
        model: keras.Model. A compiled model.

    Raises:
        ValueError: if the model is not compiled.
        TypeError: if its optimizer cannot be rebuilt.
    """
    check_rebuildable(_compiled_optimizer(model))
    with keras_internals.mutating(model, optimizer="rebuild", steps="reset"):
        yield
