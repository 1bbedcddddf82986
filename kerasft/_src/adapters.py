"""Named LoRA adapters on Keras's own LoRA layers: add, switch, merge.

Keras gives a layer one pair of LoRA factors (`layer.enable_lora(rank)`).
kerasft keeps several *named adapters* on top of it: the active adapter's
factors live in those Keras variables, and the values of the inactive ones
are kept here, per model, keyed by variable path. Switching copies values
in and out, so the model's variables, and so its compiled functions, stay
the same.

An adapter is the set of variables that train with it: the LoRA factors of
the layers it targets, and the variables of its `head` layers (so each task
keeps its own classifier). A layer that an adapter does not target keeps
factors of zero while that adapter is active, which adds nothing to its
kernel. Adapters that share a layer share its rank (the shape of its
factors); their `alpha` may differ.

`merge_adapters` folds the active adapter into the base kernels the way
Keras does when it saves a LoRA layer (`layer.save_own_variables` writes
the merged kernel), then removes the factors; `unload_adapters` removes
them and puts the head variables back as they were before the first
adapter, bit-exact. Both leave a plain model and the `trainable` flags it
had before the first adapter.
"""

from __future__ import annotations

import contextlib
import dataclasses
import weakref
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

from kerasft._src import keras_internals
from kerasft._src import walk
from kerasft._src.stages import HEAD
from kerasft._src.stages import _check_model
from kerasft._src.stages import resolve_layers
from kerasft._src.stages import stages
from kerasft._src.validation import check_int
from kerasft._src.validation import check_number
from kerasft._src.validation import check_type

DEFAULT = "default"

_LORA_TYPES = (
    keras.layers.Dense,
    keras.layers.EinsumDense,
    keras.layers.Embedding,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)


@dataclasses.dataclass
class _Adapter:
    """One adapter; layers and head leaves are indices into the walk."""

    layers: dict  # index in walk.sublayers(model) -> lora_alpha
    head: list  # indices in walk.leaf_layers(model)
    values: dict | None = None  # variable path -> array, while inactive


@dataclasses.dataclass
class _State:
    adapters: dict  # name -> _Adapter, in the order they were added
    active: str
    flags: tuple | None  # trainable flags before the first adapter
    originals: dict  # variable path -> head value before any adapter


# Keyed weakly by model: the registry never keeps a model alive, and the
# model carries no kerasft attribute into `model.save`.
_REGISTRY: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def supports_lora(layer) -> bool:
    return isinstance(layer, _LORA_TYPES) and callable(
        getattr(layer, "enable_lora", None)
    )


def head_layers(model, head) -> list:
    """Leaf layers that train in full next to the adapters."""
    if head is None:
        return []
    if isinstance(head, str) and head == "auto":
        if any(s.name == HEAD for s in stages(model)):
            return resolve_layers(model, HEAD)
        return []
    try:
        return resolve_layers(model, head)
    except (TypeError, ValueError) as error:
        raise type(error)(f"Bad `head`: {error}") from error


def _set_trainable(layer, value: bool) -> None:
    """`layer.trainable = value`, resetting its variables' flags.

    Keras's setter sets the flags of the layer's variables, but on
    TensorFlow only when the value changes (a `TFLayer` is an
    `AutoTrackable`; Keras 3.15.1), so it is set the other way first.
    """
    layer.trainable = not value
    layer.trainable = value


def set_variables(model, train_leaves, keep) -> None:
    """Makes `train_leaves` trainable, then freezes every other variable.

    `keep(variable)` says which variables of the other leaves still train.
    Layer flags are set first, because a layer's `trainable` setter resets
    the flags of its variables.
    """
    train_ids = {id(x) for x in train_leaves}
    leaves = walk.leaf_layers(model)
    for container in [x for x in walk.sublayers(model) if walk.is_container(x)]:
        if not container.trainable:
            container.trainable = True
    for leaf in leaves:
        if leaf.weights:
            _set_trainable(
                leaf, not isinstance(leaf, keras.layers.BatchNormalization)
            )
    for leaf in leaves:
        if id(leaf) in train_ids or not leaf.trainable:
            continue
        for variable in leaf.weights:
            if not keep(variable):
                variable.trainable = False


def lora_candidates(model, target, head_leaves) -> list:
    """The layers of `target` (outside the head) that support LoRA."""
    head_ids = {id(x) for x in head_leaves}
    if target is None:
        targeted = [x for x in walk.leaf_layers(model) if id(x) not in head_ids]
    else:
        targeted = resolve_layers(model, target)
    candidates = []
    for leaf in targeted:
        candidates.extend(x for x in walk.sublayers(leaf) if supports_lora(x))
    if not candidates:
        weight_layers = [
            f"{x.name} ({type(x).__name__})" for x in targeted if x.weights
        ]
        raise ValueError(
            "No layer of the target supports LoRA. Keras supports it on "
            "Dense, EinsumDense, Embedding and Conv1D/2D/3D(Transpose) "
            "layers; the targeted layers with weights are: "
            f"{weight_layers or 'none'}. Received: target={target!r}"
        )
    return candidates


def _index(items) -> dict:
    """Position by object id (layers are compared by identity)."""
    return {id(x): i for i, x in enumerate(items)}


def _lora_layers(model) -> list:
    return [
        x
        for x in walk.sublayers(model)
        if not isinstance(x, keras.Model) and getattr(x, "lora_enabled", False)
    ]


def _base_variables(model) -> list:
    return [v for v in model.weights if not keras_internals.is_lora_variable(v)]


def _flags(model) -> tuple:
    return (
        [x.trainable for x in walk.sublayers(model)],
        [v.trainable for v in _base_variables(model)],
    )


def _restore_flags(model, flags) -> None:
    """Sets the layer flags, outermost first, then the variable flags."""
    layer_flags, variable_flags = flags
    for layer, flag in zip(walk.sublayers(model), layer_flags):
        layer.trainable = flag
    for variable, flag in zip(_base_variables(model), variable_flags):
        variable.trainable = flag


def _state(model, *, create: bool) -> _State | None:
    """The model's adapters; LoRA layers made outside kerasft (a model
    loaded with LoRA in its config) become the adapter `"default"`."""
    state = _REGISTRY.get(model)
    if state is not None:
        return state
    lora = _lora_layers(model)
    if not lora and not create:
        return None
    index = _index(walk.sublayers(model))
    state = _State(
        adapters={},
        active=DEFAULT,
        flags=None if lora else _flags(model),
        originals={},
    )
    if lora:
        state.adapters[DEFAULT] = _Adapter(
            {index[id(x)]: x.lora_alpha for x in lora}, []
        )
    _REGISTRY[model] = state
    return state


def _adapter_variables(model, adapter) -> list:
    subs = walk.sublayers(model)
    leaves = walk.leaf_layers(model)
    out = []
    for i in adapter.layers:
        out.extend(keras_internals.lora_factors(subs[i]))
    for i in adapter.head:
        out.extend(leaves[i].weights)
    return out


def _stash(model, adapter) -> None:
    adapter.values = {
        v.path: keras.ops.convert_to_numpy(v).copy()
        for v in _adapter_variables(model, adapter)
    }


def _activate(model, adapter) -> bool:
    """Puts `adapter`'s values and alphas in; True if an alpha changed."""
    by_path = {v.path: v for v in model.weights}
    for path, value in (adapter.values or {}).items():
        by_path[path].assign(value)
    adapter.values = None
    changed = False
    index = _index(walk.sublayers(model))
    for layer in _lora_layers(model):
        alpha = adapter.layers.get(index[id(layer)])
        if alpha is None:
            for factor in keras_internals.lora_factors(layer):
                factor.assign(np.zeros(factor.shape, factor.dtype))
        elif layer.lora_alpha != alpha:
            layer.lora_alpha = alpha
            changed = True
    ids = {id(v) for v in _adapter_variables(model, adapter)}
    leaves = walk.leaf_layers(model)
    set_variables(
        model, [leaves[i] for i in adapter.head], lambda v: id(v) in ids
    )
    return changed


@contextlib.contextmanager
def _changing(model) -> Iterator[None]:
    """Syncs the backend state, then rebuilds what the change needs.

    A built optimizer is rebuilt over the new trainable variables if they
    changed; one not built yet builds itself on the first `fit`, over the
    variables that train then (so adding an adapter to a keras-hub task,
    which compiles itself, allocates no optimizer slots).
    """
    optimizer = getattr(model, "optimizer", None)
    compiled = getattr(model, "compiled", False) and (
        getattr(optimizer, "built", False)
    )
    with keras_internals.mutating(
        model,
        optimizer="rebuild_if_changed" if compiled else "keep",
        steps="reset" if compiled else "keep",
    ):
        yield


def _check_name(name) -> str:
    check_type("name", name, str, "a str")
    if not name:
        raise ValueError(
            f"`name` must be a non-empty str. Received: name={name!r}"
        )
    return name


def _check_known(model, state, name) -> _Adapter:
    names = list(state.adapters) if state else []
    if name not in names:
        raise ValueError(
            f"Model '{model.name}' has no adapter {name!r}; its adapters "
            f"are {names}. Received: name={name!r}"
        )
    return state.adapters[name]


def _check_paths(model, layers) -> None:
    """Adapter values are kept by path: the layers' paths must be unique
    (their LoRA factors get paths below the layer's)."""
    variables = [v for x in layers for v in x.weights]
    counts: dict = {}
    for v in model.weights:
        counts[v.path] = counts.get(v.path, 0) + 1
    shared = sorted({v.path for v in variables if counts[v.path] > 1})
    if shared:
        raise ValueError(
            "Adapters are kept by variable path, and several variables of "
            f"model '{model.name}' share the paths {shared}. Give the layers "
            f"unique names. Received: model={model.name!r}"
        )


def add_lora(model, name, rank, target, alpha, head, *, extend) -> list:
    """`add_adapter`, or with `extend=True` `enable_lora`'s growing of the
    adapter `"default"`. Arguments are checked before any change."""
    check_int("rank", rank, minimum=1)
    check_number(
        "alpha", alpha, minimum=0, min_inclusive=False, allow_none=True
    )
    _check_model(model)
    head_leaves = head_layers(model, head)
    candidates = lora_candidates(model, target, head_leaves)
    state = _state(model, create=False)
    if extend:
        _check_extend(model, state, candidates, target)
    else:
        _check_new(model, state, name, rank, candidates)
    _check_paths(model, candidates + head_leaves)
    with _changing(model):
        state = _state(model, create=True)
        if state.adapters and state.active != name:
            _stash(model, state.adapters[state.active])
        new = name not in state.adapters
        adapter = state.adapters.setdefault(name, _Adapter({}, []))
        subs = _index(walk.sublayers(model))
        for layer in candidates:
            _fresh_factors(layer, rank, alpha)
            adapter.layers[subs[id(layer)]] = layer.lora_alpha
        leaves = _index(walk.leaf_layers(model))
        new_head = {leaves[id(x)] for x in head_leaves} - set(adapter.head)
        adapter.head = sorted(set(adapter.head) | new_head)
        _start_head(
            state, [v for x in head_leaves for v in x.weights], reset=new
        )
        state.active = name
        _activate(model, adapter)
    keras_internals.reset_compiled_functions(model)
    return candidates


def _start_head(state, variables, *, reset: bool) -> None:
    """Records the head values from before any adapter; with `reset`, a new
    adapter's head starts from them."""
    for v in variables:
        original = state.originals.setdefault(
            v.path, keras.ops.convert_to_numpy(v).copy()
        )
        if reset:
            v.assign(original)


def _check_extend(model, state, candidates, target) -> None:
    already = [x.name for x in candidates if x.lora_enabled]
    if already:
        raise ValueError(
            f"LoRA is already enabled on layers {already}; Keras can enable "
            "it only once per layer. Target other layers. "
            f"Received: target={target!r}"
        )
    if state and list(state.adapters) not in ([], [DEFAULT]):
        raise ValueError(
            f"Model '{model.name}' has the named adapters "
            f"{list(state.adapters)}; add LoRA to it with "
            "`kerasft.peft.add_adapter(model, name, rank, ...)`. "
            f"Received: target={target!r}"
        )


def _check_new(model, state, name, rank, candidates) -> None:
    _check_name(name)
    if state and name in state.adapters:
        raise ValueError(
            f"Model '{model.name}' already has an adapter {name!r}; delete "
            "it first or choose another name. Its adapters are "
            f"{list(state.adapters)}. Received: name={name!r}"
        )
    other = [
        f"{x.name} (rank {x.lora_rank})"
        for x in candidates
        if x.lora_enabled and x.lora_rank != rank
    ]
    if other:
        raise ValueError(
            "Adapters that share a layer share its LoRA rank, and layers "
            f"{other} already hold factors of another rank. Use that rank, "
            f"or target other layers. Received: rank={rank!r}"
        )


def _fresh_factors(layer, rank, alpha) -> None:
    """Keras's LoRA start on `layer`: `A` He-uniform, `B` zero."""
    if not layer.lora_enabled:
        layer.enable_lora(rank, lora_alpha=alpha)
        return
    a, b = keras_internals.lora_factors(layer)
    a.assign(keras.initializers.HeUniform()(a.shape, a.dtype))
    b.assign(np.zeros(b.shape, b.dtype))
    layer.lora_alpha = alpha if alpha is not None else rank


def add_adapter(
    model: keras.Model,
    name: str,
    rank: int,
    *,
    target: Any = None,
    alpha: float | None = None,
    head: Any = "auto",
) -> list:
    """Adds a named LoRA adapter to a model and makes it the active one.

    Like `enable_lora`, but a model can hold several adapters, one active
    at a time (`set_active_adapter` switches, `list_adapters` lists them).
    The new adapter starts as Keras starts LoRA (`A` He-uniform, `B` zero,
    so the model's outputs do not change) and only it, and the `head`
    layers, train afterwards. The adapter that was active is kept: its
    LoRA factors and head variables are stored, keyed by variable path.

    Adapters may target different layers; while one is active, the LoRA
    factors of the layers it does not target are zero. Adapters that share
    a layer share its rank (Keras gives a layer one pair of factors of a
    fixed shape); their `alpha` may differ.

    Example:

    ```python
    peft.add_adapter(model, "sentiment", 4, target=r"transformer_layer_\\d+")
    model.fit(...)
    peft.add_adapter(model, "topic", 4, target=r"transformer_layer_\\d+")
    model.fit(...)
    peft.set_active_adapter(model, "sentiment")
    ```

    Args:
        model: keras.Model. A built model.
        name: str. The adapter's name, not used on this model yet.
        rank: int. The rank of the adapter, > 0.
        target: Where to add it, as for `enable_lora`. Defaults to `None`
            (every supported layer outside the head).
        alpha: float or None. The LoRA scale numerator; the update is scaled
            by `alpha / rank`. `None` uses `rank`. Defaults to `None`.
        head: What trains in full with this adapter and is stored with it:
            `"auto"`, `None` or a target, as for `enable_lora`. Defaults to
            `"auto"`.

    Returns:
        The list of layers the adapter targets.

    Raises:
        ValueError: for a name already used, a `rank` that differs from
            that of another adapter on the same layer, a target without a
            layer that supports LoRA, or the errors of `enable_lora`.
        TypeError: for arguments of the wrong type.
    """
    return add_lora(model, name, rank, target, alpha, head, extend=False)


def set_active_adapter(model: keras.Model, name: str) -> None:
    """Makes one of a model's adapters the active one.

    The active adapter's LoRA factors and head variables are stored, and
    those of `name` are put in their place, with its `alpha`; only `name`'s
    variables train afterwards. When the adapters target the same layers
    with the same `alpha`, the model's trainable variables do not change
    and no function is traced again; otherwise a compiled optimizer is
    rebuilt over the new trainable set, carrying its state, and the compiled
    functions are made again on their next use.

    Example:

    ```python
    peft.set_active_adapter(model, "topic")
    model.predict(x)
    ```

    Args:
        model: keras.Model. A model with adapters from `add_adapter` or
            `enable_lora` (whose adapter is `"default"`).
        name: str. The adapter to activate.

    Raises:
        ValueError: if the model has no adapter `name` (the message lists
            its adapters).
        TypeError: for a `name` that is not a str.
    """
    _check_model(model)
    _check_name(name)
    state = _state(model, create=False)
    adapter = _check_known(model, state, name)
    if name == state.active:
        return
    before = [id(v) for v in model.trainable_variables]
    with _changing(model):
        _stash(model, state.adapters[state.active])
        state.active = name
        changed = _activate(model, adapter)
    if changed or before != [id(v) for v in model.trainable_variables]:
        keras_internals.reset_compiled_functions(model)


def delete_adapter(model: keras.Model, name: str) -> None:
    """Deletes an inactive adapter of a model.

    Its stored values are dropped, and layers that no other adapter targets
    lose their LoRA factors. The active adapter cannot be deleted: activate
    another one first, or call `merge_adapters` / `unload_adapters`.

    Example:

    ```python
    peft.delete_adapter(model, "topic")
    ```

    Args:
        model: keras.Model. A model with adapters.
        name: str. The adapter to delete.

    Raises:
        ValueError: if the model has no adapter `name`, or `name` is the
            active adapter.
        TypeError: for a `name` that is not a str.
    """
    _check_model(model)
    _check_name(name)
    state = _state(model, create=False)
    _check_known(model, state, name)
    if name == state.active:
        raise ValueError(
            f"Adapter {name!r} is the active adapter of model "
            f"'{model.name}'. Activate another one first "
            "(`set_active_adapter`), or end the adapters with "
            f"`merge_adapters` or `unload_adapters`. Received: name={name!r}"
        )
    del state.adapters[name]
    used = {i for a in state.adapters.values() for i in a.layers}
    subs = _index(walk.sublayers(model))
    unused = [x for x in _lora_layers(model) if subs[id(x)] not in used]
    if unused:
        with _changing(model):
            for layer in unused:
                keras_internals.remove_lora(layer)
        keras_internals.reset_compiled_functions(model)


def list_adapters(model: keras.Model) -> list:
    """Returns the names of a model's adapters, in the order added.

    A model with LoRA from `enable_lora` (or loaded with LoRA layers) has
    the one adapter `"default"`; a model without LoRA has none.

    Args:
        model: keras.Model. A built model.

    Returns:
        A list of str.
    """
    _check_model(model)
    state = _state(model, create=False)
    return list(state.adapters) if state else []


def active_adapter(model: keras.Model) -> str | None:
    """Returns the name of a model's active adapter, or `None` if none.

    Args:
        model: keras.Model. A built model.

    Returns:
        A str, or `None` for a model without adapters.
    """
    _check_model(model)
    state = _state(model, create=False)
    return state.active if state else None


def _end(model, action, *, originals: bool) -> list:
    """Runs `action(layer)` on each LoRA layer; the model ends plain.

    With `originals`, the head variables get back their values from before
    the first adapter."""
    _check_model(model)
    layers = _lora_layers(model)
    if not layers:
        raise ValueError(
            f"Model '{model.name}' has no LoRA layers. Add adapters with "
            "`enable_lora` or `add_adapter` first. "
            f"Received: model={model.name!r}"
        )
    state = _state(model, create=False)
    with _changing(model):
        for layer in layers:
            action(layer)
        if state.flags is not None:
            _restore_flags(model, state.flags)
        if originals:
            by_path = {v.path: v for v in model.weights}
            for path, value in state.originals.items():
                by_path[path].assign(value)
        _REGISTRY.pop(model, None)
    keras_internals.reset_compiled_functions(model)
    return layers


def _merge(layer) -> None:
    # What Keras saves for a LoRA layer is its merged kernel (requantized
    # for an int8/int4 layer); loading that into the layer without LoRA
    # gives the kernel its forward pass used.
    store: dict = {}
    layer.save_own_variables(store)
    keras_internals.remove_lora(layer)
    layer.load_own_variables(store)


def merge_adapters(model: keras.Model) -> list:
    """Folds the active adapter into the base weights and removes LoRA.

    Each LoRA layer's kernel becomes `W + (alpha / rank) * A @ B`, computed
    by Keras as when it saves a LoRA layer, and its LoRA factors are
    removed; the other adapters are dropped. The model is then a plain
    model: `model.save` writes no LoRA, a loaded copy has none, and exports
    see ordinary layers. Outputs match the unmerged model to float
    rounding; on an `int8`-quantized layer Keras quantizes the merged
    kernel again, so they match to the quantization step. The `trainable`
    flags are as before the first adapter; recompile before training.

    Example:

    ```python
    peft.enable_lora(model, 4)
    model.fit(...)
    peft.merge_adapters(model)
    model.save("merged.keras")
    ```

    Args:
        model: keras.Model. A model with LoRA layers.

    Returns:
        The list of layers merged.

    Raises:
        ValueError: if the model has no LoRA layer.
    """
    return _end(model, _merge, originals=False)


def unload_adapters(model: keras.Model) -> list:
    """Removes every adapter: the base model back, bit-exact.

    The LoRA factors are removed (the base kernels were never changed), the
    head variables the adapters trained get back the values they had before
    the first adapter, and the `trainable` flags are as they were then.

    Example:

    ```python
    peft.add_adapter(model, "a", 4)
    model.fit(...)
    peft.unload_adapters(model)  # the pretrained model again
    ```

    Args:
        model: keras.Model. A model with LoRA layers.

    Returns:
        The list of layers unloaded.

    Raises:
        ValueError: if the model has no LoRA layer.
    """
    return _end(model, keras_internals.remove_lora, originals=True)
