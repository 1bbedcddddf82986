"""The only kerasft module that touches Keras internals.

Changing what trains inside one `model.fit` needs a few pieces of trainer
state that Keras does not expose publicly, and a few kerasft features rely
on how Keras lays out or names things (an optimizer's saved variables, the
variables `enable_lora` creates, a layer's initializer attributes). They
are all here, each with the reason it is needed, so that a Keras upgrade
has exactly one file to check; `tests/test_keras_internals.py` fails when
another module reaches into Keras.

`mutating(model, ...)` is the one way kerasft changes a model inside
`fit`: the callbacks, the penalties, `reinitialize` and
`kerasft.optimizers.trainable_change` all use it.

Checked against Keras 3.15.1 (`keras/src/backend/{jax,tensorflow,torch}/
trainer.py`, `keras/src/trainers/trainer.py`,
`keras/src/optimizers/base_optimizer.py`,
`keras/src/optimizers/multi_optimizer.py`, `keras/src/saving/saving_lib.py`,
`keras/src/callbacks/{backup_and_restore,callback_list,
learning_rate_scheduler,reduce_lr_on_plateau}.py`, `keras/src/layers/layer.py`,
`keras/src/layers/core/{dense,einsum_dense,embedding}.py`,
`keras/src/layers/convolutional/base_{conv,depthwise_conv}.py`,
`keras/src/layers/rnn/lstm.py` and, for the graph walk of
`kerasft.cached_fit`, `keras/src/ops/node.py`).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

# ---------------------------------------------------------------------------
# Changing a model inside `fit`.

OPTIMIZER_MODES = ("rebuild", "rebuild_if_changed", "keep")
STEP_MODES = ("reset", "reset_loss", "reset_captured", "keep")


@contextlib.contextmanager
def mutating(
    model: keras.Model, *, optimizer: str, steps: str
) -> Iterator[None]:
    """Context manager: the one way kerasft changes a model inside `fit`.

    On entry the trainer's in-flight state is written back into the model's
    variables (`sync_backend_state`, needed on JAX), so that the block sees
    and changes the current values and the fit loop re-reads them. On exit
    the optimizer is rebuilt or kept, and the compiled step functions are
    reset as `steps` says. Nothing happens on exit if the block raises.
    Safe in any callback hook of `fit` and outside `fit`, on every backend.

    Args:
        model: keras.Model. The model the block changes.
        optimizer: str. `"rebuild"`: rebuild the compiled optimizer over
            the new trainable variables, carrying its state
            (`kerasft.optimizers.rebuild_optimizer`'s rule).
            `"rebuild_if_changed"`: the same, but only when the block
            changed `model.trainable_variables`; when it did not, neither
            the optimizer nor the step functions change. `"keep"`: keep
            the optimizer.
        steps: str. Which compiled step functions to reset:
            `"reset"` after a change of the trainable set (see
            `reset_step_functions`), `"reset_loss"` after a change of the
            loss terms (`reset_loss_functions`), `"reset_captured"` after a
            new value of a variable the loss reads but the model does not
            own (`reset_captured_functions`), or `"keep"`.

    Raises:
        ValueError: for an unknown mode, or a rebuilt optimizer with
            `steps="keep"` (the old train step would keep using the old
            optimizer).
    """
    if optimizer not in OPTIMIZER_MODES:
        raise ValueError(
            f"`optimizer` must be one of {list(OPTIMIZER_MODES)}. "
            f"Received: optimizer={optimizer!r}"
        )
    if steps not in STEP_MODES:
        raise ValueError(
            f"`steps` must be one of {list(STEP_MODES)}. "
            f"Received: steps={steps!r}"
        )
    if optimizer != "keep" and steps != "reset":
        raise ValueError(
            "A rebuilt optimizer needs new step functions. "
            f"Received: optimizer={optimizer!r}, steps={steps!r}"
        )
    sync_backend_state(model)
    before = None
    if optimizer == "rebuild_if_changed":
        before = [id(v) for v in model.trainable_variables]
    yield
    if before is not None and before == [
        id(v) for v in model.trainable_variables
    ]:
        return
    if optimizer != "keep":
        # Imported here: the rebuild module uses this one for its scope
        # and its step reset.
        from kerasft._src.optimizers import rebuild

        rebuild.replace_optimizer(model)
    _RESETS[steps](model)


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


def reset_loss_functions(model: keras.Model) -> None:
    """Forces new train and test steps where the model already has them.

    Each step function traces the loss, `model.losses` included (the
    penalties of `variable.regularizer`), so a step traced before a loss
    term was attached or removed keeps the old loss (a `tf.function`, a
    jitted JAX step, a compiled torch step). A step that does not exist yet
    is made on its first use anyway, after `compile` chose how.
    """
    if getattr(model, "train_function", None) is not None:
        model.make_train_function(force=True)
    if getattr(model, "test_function", None) is not None:
        model.make_test_function(force=True)


def reset_captured_functions(model: keras.Model) -> None:
    """Forces new train and test steps after a captured value changed.

    JAX only: a jitted step reads the model's variables from its state
    argument, but any other `keras.Variable` the loss reads (a penalty's
    strength) is a constant of the trace, so a new value needs new step
    functions (one trace per change). TensorFlow and torch read such
    variables at every step.
    """
    if keras.backend.backend() == "jax":
        reset_loss_functions(model)


_RESETS = {
    "reset": reset_step_functions,
    "reset_loss": reset_loss_functions,
    "reset_captured": reset_captured_functions,
    "keep": lambda model: None,
}


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


def sibling_callbacks(callback: keras.callbacks.Callback) -> list | None:
    """The callbacks that run beside `callback` in the `fit` being set up.

    Keras gives a callback no handle on the other callbacks of its `fit`.
    `keras.callbacks.CallbackList.__init__` calls `set_model` on each of
    its `callbacks` (`keras/src/callbacks/callback_list.py`), so, called
    from a callback's `set_model`, this walks a few frames up to that list.

    Returns:
        The list's `callbacks`, or None when `callback` is not being set
        up by a `CallbackList` (e.g. `set_model` called by hand).
    """
    frame = sys._getframe(1)
    for _ in range(8):
        if frame is None:
            break
        owner = frame.f_locals.get("self")
        if isinstance(owner, keras.callbacks.CallbackList) and any(
            c is callback for c in owner.callbacks
        ):
            return list(owner.callbacks)
        frame = frame.f_back
    return None


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


# ---------------------------------------------------------------------------
# Optimizers.


def sub_optimizers(optimizer: keras.optimizers.MultiOptimizer) -> list:
    """The sub-optimizers of a `MultiOptimizer`, in Keras's order.

    Reads the `optimizers` property of `keras.optimizers.MultiOptimizer`
    itself, so it also works for a subclass that hides `optimizers` (see
    `hidden_from_lr_callbacks`). In Keras 3.15.1 it returns the list
    `MultiOptimizer` dispatches to (`_inner_optimizers`), one entry per
    distinct optimizer of its `OptimizerMap`, the default one last.
    """
    return list(keras.optimizers.MultiOptimizer.optimizers.fget(optimizer))


def hidden_from_lr_callbacks(message: str) -> property:
    """An `optimizers` property that makes Keras's LR callbacks use the rate.

    `keras.callbacks.LearningRateScheduler` and `ReduceLROnPlateau` test
    `hasattr(model.optimizer, "optimizers")` and, when it is true, set
    every sub-optimizer to the same learning rate (Keras 3.15.1,
    `keras/src/callbacks/learning_rate_scheduler.py` and
    `reduce_lr_on_plateau.py`), which would erase per-group factors. A
    property that raises `AttributeError(message)` makes `hasattr` false,
    so they read and set `optimizer.learning_rate` instead.
    """

    def optimizers(self):
        raise AttributeError(message)

    return property(optimizers)


def stored_optimizer_values(store: Any) -> list:
    """The values an optimizer saved into a `saving_lib` store, in order.

    `Optimizer.save_own_variables` writes the i-th of `optimizer.variables`
    under the key `str(i)` (Keras 3.15.1,
    `keras/src/optimizers/base_optimizer.py`); `load_own_variables` reads
    them back the same way. Returns a list of NumPy copies, empty for an
    empty store.
    """
    return [np.array(store[str(i)]) for i in range(len(store.keys()))]


# ---------------------------------------------------------------------------
# Layers and variables.


def tracked_attribute_layers(layer: keras.Layer) -> list:
    """The layers `layer` holds in its attributes, in attribute order.

    A layer held directly, or in a list, tuple or dict attribute (one
    level deep), counts. Keras exposes no public list of a layer's
    sublayers outside `keras.Model.layers` (`Layer._layers` and
    `Layer._flatten_layers` are private, checked on Keras 3.15.1,
    `keras/src/layers/layer.py`), and a keras-hub block or a user's layer
    keeps its sublayers as plain attributes, so this reads the instance's
    attributes.
    """
    out = []
    for value in vars(layer).values():
        if isinstance(value, (list, tuple)):
            items = value
        elif isinstance(value, dict):
            items = value.values()
        else:
            items = (value,)
        out.extend(item for item in items if isinstance(item, keras.Layer))
    return out


def holds_seed_generator(layer: keras.Layer) -> bool:
    """Whether an attribute of `layer` is a `keras.random.SeedGenerator`.

    Keras's random layers (Dropout, GaussianNoise, the Random* augmentation
    layers) keep their `SeedGenerator` as a plain attribute, and Keras lists
    seed generators publicly nowhere (`Layer._seed_generators` is private,
    checked on Keras 3.15.1), so this reads the instance's attributes.
    """
    return any(
        isinstance(value, keras.random.SeedGenerator)
        for value in vars(layer).values()
    )


# The names `layer.enable_lora(rank)` gives the variables it adds:
# `lora_kernel_a`/`lora_kernel_b` (Dense, EinsumDense, the convolutions) and
# `lora_embeddings_a`/`lora_embeddings_b` (Embedding), Keras 3.15.1
# `keras/src/layers/core/{dense,einsum_dense,embedding}.py` and
# `keras/src/layers/convolutional/base_conv.py`. No attribute marks them.
_LORA_PREFIX = "lora_"


def is_lora_variable(variable: keras.Variable) -> bool:
    """Whether `variable` is one of the adapters `enable_lora` created."""
    return variable.name.startswith(_LORA_PREFIX)


def lora_factors(layer: keras.Layer) -> tuple:
    """The `(A, B)` LoRA variables of a layer with `lora_enabled`.

    `Embedding` names them `lora_embeddings_a/b`, the other layers
    `lora_kernel_a/b` (Keras 3.15.1, see `_LORA_PREFIX`).
    """
    stem = (
        "embeddings"
        if isinstance(layer, keras.layers.Embedding)
        else ("kernel")
    )
    return (
        getattr(layer, f"lora_{stem}_a"),
        getattr(layer, f"lora_{stem}_b"),
    )


def remove_lora(layer: keras.Layer) -> None:
    """Takes LoRA off a layer: its factors are untracked and dropped.

    Keras has `enable_lora` but no way back. `Layer.__delattr__` untracks a
    variable (`_untrack_variable`, which also drops torch's parameter) and
    deletes the attribute, but then runs `gc.collect()`, about a second per
    variable in a large process; this does the same without the collection.
    `lora_enabled=False` makes the
    `kernel` / `embeddings` property and `call` use the base weights alone;
    `lora_rank=None` drops the LoRA keys from `get_config`, so a model saved
    afterwards is a plain one (Keras 3.15.1 `core/dense.py`,
    `core/einsum_dense.py`, `core/embedding.py`,
    `convolutional/base_conv.py`). The base kernel is left as it is.
    """
    stem = (
        "embeddings"
        if isinstance(layer, keras.layers.Embedding)
        else ("kernel")
    )
    for name in (f"lora_{stem}_a", f"lora_{stem}_b"):
        layer._untrack_variable(getattr(layer, name))
        super(keras.Layer, layer).__delattr__(name)
    layer.lora_enabled = False
    layer.lora_rank = None
    layer.lora_alpha = None


def reset_compiled_functions(model: keras.Model) -> None:
    """Forces new train, test and predict functions where they exist.

    Each traces the layers' Python attributes as constants (a LoRA layer's
    `lora_alpha / lora_rank`, whether `lora_enabled`) and, on TensorFlow,
    captures the variables it read, so a LoRA change needs new ones on
    every backend. `make_*_function(force=True)` is public; a function not
    made yet is made on first use anyway.
    """
    for kind in ("train", "test", "predict"):
        if getattr(model, f"{kind}_function", None) is not None:
            getattr(model, f"make_{kind}_function")(force=True)


def is_bias(variable: keras.Variable) -> bool:
    """Whether `variable` is a layer's bias.

    Keras's layers name their additive bias `"bias"` (Dense, EinsumDense,
    the convolutions, the recurrent cells; Keras 3.15.1); no attribute of
    the variable says it is one.
    """
    return variable.name == "bias"


# Initializer attributes to try for a variable name, in order, before the
# generic `<name>_initializer` and `initializer`: the depthwise convolutions
# build their `kernel` with `depthwise_initializer`, the separable ones
# their `depthwise_kernel`/`pointwise_kernel` with `depthwise_`/
# `pointwise_initializer`, the recurrent cells their `recurrent_kernel` with
# `recurrent_initializer` (Keras 3.15.1).
_INITIALIZER_ATTRIBUTES = {
    "kernel": ("kernel_initializer", "depthwise_initializer"),
    "depthwise_kernel": ("depthwise_initializer",),
    "pointwise_kernel": ("pointwise_initializer",),
    "recurrent_kernel": ("recurrent_initializer",),
    "embeddings": ("embeddings_initializer",),
}


def initializer_for(layer: keras.Layer, variable: keras.Variable):
    """The initializer `layer` built `variable` with, or None.

    Keras layers keep each initializer as a public constructor argument
    named after the variable (`kernel_initializer` for `kernel`,
    `gamma_initializer` for `gamma`), with the exceptions listed in
    `_INITIALIZER_ATTRIBUTES`, but do not record which initializer made
    which variable.
    """
    name = variable.name
    candidates = list(_INITIALIZER_ATTRIBUTES.get(name, ()))
    candidates += [f"{name}_initializer", "initializer"]
    for attribute in candidates:
        initializer = getattr(layer, attribute, None)
        if initializer is not None and callable(initializer):
            return initializer
    return None


def unit_forget_bias(
    layer: keras.Layer,
    variable: keras.Variable,
    draw: Callable[[int, tuple], Any],
):
    """A new LSTM bias with the forget gate at 1, or None for other variables.

    With `unit_forget_bias=True`, `LSTMCell` builds its bias as the four
    gates `[input, forget, cell, output]`, `units` values each, the forget
    gate all ones and the others from `bias_initializer` (Keras 3.15.1,
    `keras/src/layers/rnn/lstm.py`). `draw(part, shape)` draws part 0 (the
    input gate) and part 1 (the cell and output gates) from the initializer.
    """
    units = getattr(layer, "units", None)
    if not (
        is_bias(variable)
        and getattr(layer, "unit_forget_bias", False)
        and units
    ):
        return None
    return keras.ops.concatenate(
        [
            draw(0, (units,)),
            keras.ops.ones((units,), dtype=variable.dtype),
            draw(1, (units * 2,)),
        ]
    )


# ---------------------------------------------------------------------------
# Multi-host JAX jobs and resuming from a backup.


def agree_on_random_seed() -> None:
    """Gives every process of a multi-host JAX job the same global seed.

    Processes must create the same initial weights. What
    `keras.distribution.initialize` does after `jax.distributed.initialize`
    (checked on Keras 3.15.1, `keras/src/backend/jax/distribution_lib.py`):
    keep a seed set with `keras.utils.set_random_seed`, or sum each
    process's random seed across processes. kerasft calls
    `jax.distributed.initialize` itself to bound its timeouts, which that
    public function does not expose.
    """
    from keras.src.backend.jax import distribution_lib

    distribution_lib.initialize_rng()


def set_initial_epoch(model: keras.Model, epoch: int) -> None:
    """Makes the running `fit` start at `epoch`.

    `fit` reads `model._initial_epoch` after `on_train_begin`, which is how
    `keras.callbacks.BackupAndRestore` resumes (checked on Keras 3.15.1,
    `keras/src/callbacks/backup_and_restore.py` and the backends'
    `trainer.py`); there is no public way for a callback to do it.
    """
    model._initial_epoch = epoch
