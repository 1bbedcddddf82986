"""The only kerasft module that touches Keras internals.

Changing what trains inside one `model.fit` needs a few pieces of trainer
state that Keras does not expose publicly. They are all here, each with the
reason it is needed, so that a Keras upgrade has exactly one file to check.

Checked against Keras 3.15.1 (`keras/src/backend/{jax,tensorflow,torch}/
trainer.py`, `keras/src/trainers/trainer.py`,
`keras/src/optimizers/base_optimizer.py`, `keras/src/saving/saving_lib.py`,
`keras/src/callbacks/backup_and_restore.py` and, for the graph walk of
`kerasft.cached_fit`, `keras/src/ops/node.py`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import keras


def sync_backend_state(model: keras.Model) -> None:
    """Writes the trainer's in-flight state back into the model's variables.

    JAX only: inside `fit`, the JAX trainer keeps trainable, non-trainable,
    optimizer and metric values in a state tuple and detaches them from the
    `keras.Variable`s (`_purge_model_variables`). `jax_state_sync()` pairs
    that tuple with `model.trainable_variables` *by position*, so it must run
    before any `trainable` flag changes, and it marks the state as synced,
    which makes the fit loop re-read all state from the variables (and so
    from a new optimizer) before the next step. It is a method of the JAX
    trainer only, hence the `hasattr`. TensorFlow and torch keep the values in
    the variables at all times.
    """
    if keras.backend.backend() == "jax" and hasattr(model, "jax_state_sync"):
        model.jax_state_sync()


def reset_step_functions(model: keras.Model) -> None:
    """Forces new step functions on their next use.

    `make_*_function(force=True)` is public; calling it is needed because a
    `tf.function` never retraces for a new variable list, and torch.compile'd
    functions are rebuilt too. On JAX the test and predict functions are
    reset as well: they are stateless and pair their state with
    `model.trainable_variables` by position at trace time, so a state of the
    same structure (a same-shaped stage swapped in, as chain-thaw does) would
    hit the trace cache with the old pairing. TensorFlow's and torch's test
    and predict steps read every variable directly and need no new trace.
    """
    model.make_train_function(force=True)
    if keras.backend.backend() == "jax":
        model.make_test_function(force=True)
        model.make_predict_function(force=True)


def replace_compiled_optimizer(
    model: keras.Model,
    old: keras.optimizers.Optimizer,
    new: keras.optimizers.Optimizer,
) -> None:
    """Makes `new` the model's optimizer, also in its compile config.

    `model.optimizer` is a plain attribute. `model.compile` also stores the
    optimizer object in `model._compile_config` (a `SerializableDict`), which
    `model.save` serializes; without updating it a saved model would carry
    the old optimizer's config (e.g. its learning rate before
    `ReduceLROnPlateau`). When `compile` wrapped the user's optimizer in a
    `LossScaleOptimizer` (mixed_float16), the config holds the inner one.
    """
    model.optimizer = new
    compile_config = getattr(model, "_compile_config", None)
    config = getattr(compile_config, "config", None)
    if not isinstance(config, dict):
        return
    current = config.get("optimizer")
    if current is old:
        config["optimizer"] = new
    elif current is getattr(old, "inner_optimizer", object()):
        config["optimizer"] = new.inner_optimizer


def torch_world_size() -> int:
    """The world size of an initialized `torch.distributed` process group.

    1 on other backends, or when no process group is initialized. Keras's
    torch trainer has no distributed support in `fit` (checked on Keras
    3.15.1: `keras/src/backend/torch/trainer.py` never all-reduces
    gradients), so a process group with more than one process means either
    independent copies in `fit` or the user's own `DistributedDataParallel`
    loop; in neither can a callback change what trains safely.
    """
    if keras.backend.backend() != "torch":
        return 1
    import torch.distributed

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return int(torch.distributed.get_world_size())
    return 1


def creation_scope(model: keras.Model) -> contextlib.AbstractContextManager:
    """The scope in which a new optimizer and its variables must be created.

    With TensorFlow, variables created for a model trained under a
    `tf.distribute` strategy must be created inside its scope, and a Keras
    optimizer records the strategy current at construction
    (`keras/src/backend/tensorflow/optimizer.py`) and refuses to build under
    another one; the TF trainer exposes the model's strategy as
    `model.distribute_strategy` (the one current when the model was created,
    else the current one). On JAX nothing is needed: a new variable takes
    its layout from the current `keras.distribution` and an optimizer slot
    the layout of its model variable.
    """
    strategy = getattr(model, "distribute_strategy", None)
    if keras.backend.backend() == "tensorflow" and strategy is not None:
        return strategy.scope()
    return contextlib.nullcontext()


def intercept_variable_loading(
    optimizer: keras.optimizers.Optimizer,
    handler: Callable[[keras.optimizers.Optimizer, Any], None],
) -> Callable[[], None]:
    """Routes `optimizer.load_own_variables(store)` to `handler`.

    `model.load_weights` (used by `keras.callbacks.BackupAndRestore` in its
    `on_train_begin`) calls `load_own_variables(store)` on every optimizer it
    reaches (`saving_lib._load_state`), and the base implementation only warns
    and loads nothing when the variable counts differ. An instance attribute
    shadows the method for this one object; no class is patched.

    Returns:
        A function that removes the interception.
    """
    optimizer.load_own_variables = lambda store: handler(optimizer, store)

    def restore() -> None:
        if "load_own_variables" in vars(optimizer):
            del optimizer.load_own_variables

    return restore


def graph_nodes(model: keras.Model) -> list:
    """The call nodes of a functional model, in topological order.

    Each item is `(operation, input_tensors, output_tensors)` for one call
    of an operation inside `model`'s graph. Keras exposes the tensors of an
    operation's *first* call publicly (`layer.input`, `layer.output`), but a
    nested model's `input`/`output` are its own inner tensors and a layer
    may be called more than once, so the walk reads each operation's call
    nodes (`_inbound_nodes`, whose `input_tensors`/`output_tensors` are the
    attributes Keras's own `Function` uses; checked on Keras 3.15.1) and
    keeps those whose inputs are tensors of this graph.
    """
    known = {id(t) for t in model.inputs}
    out = []
    for op in model.operations:
        if isinstance(op, keras.layers.InputLayer):
            continue
        for node in getattr(op, "_inbound_nodes", []):
            ins = list(node.input_tensors)
            outs = list(node.output_tensors)
            if not outs or any(id(t) in known for t in outs):
                continue
            if all(id(t) in known for t in ins):
                known.update(id(t) for t in outs)
                out.append((op, ins, outs))
    return out


def layer_attributes(layer: keras.Layer) -> list:
    """The values of a layer's instance attributes.

    Keras tracks what a layer holds (sublayers, variables, seed generators)
    in its attributes, and lists, tuples and dicts in them, and has no
    public way to list the sublayers of a layer that is not a `Model`
    (`Layer._flatten_layers` is private), so kerasft reads the attributes
    (`vars(layer)`; checked on Keras 3.15.1).
    """
    return list(vars(layer).values())
