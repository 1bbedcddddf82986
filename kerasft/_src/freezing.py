"""Freezing: pure functions that choose which weights train.

Keras 3 computes `trainable_weights` top-down: a container with
`trainable=False` returns no trainable weights, whatever its sublayers say.
kerasft therefore never freezes containers. It flips `trainable` on the leaf
layers that own weights and keeps every container trainable, so that
unfreezing one layer later (with `unfreeze` or with
`model.get_layer(...).trainable = True`) makes exactly that layer train.

BatchNormalization needs its own policy. In Keras 3 a BN layer uses batch
statistics only when it is called with `training=True` *and* is trainable;
`base(x, training=False)` inside a functional model does not hold once the
base is trainable (the outer `training=True` wins). The default policy,
`bn="frozen"`, keeps BN layers non-trainable and so in inference mode.
"""

from __future__ import annotations

import keras

from kerasft._src import walk
from kerasft._src.stages import _check_model
from kerasft._src.stages import resolve_layers
from kerasft._src.stages import stage_index
from kerasft._src.stages import stages
from kerasft._src.validation import check_bool
from kerasft._src.validation import check_callable

BN_POLICIES = ("frozen", "train", "follow")


def check_bn(bn):
    if bn not in BN_POLICIES:
        raise ValueError(
            f"Unknown BatchNormalization policy. Allowed: {list(BN_POLICIES)} "
            "('frozen': BN layers never train and run in inference mode; "
            "'train': BN layers train, even in frozen stages; 'follow': BN "
            f"layers do what their stage does). Received: bn={bn!r}"
        )


def _is_bn(layer) -> bool:
    return isinstance(layer, keras.layers.BatchNormalization)


def _effective_state(model):
    """Maps id(leaf) -> whether the leaf's weights train now."""
    state = {}

    def visit(layer, parent_trainable):
        for child in walk.children(layer):
            on = parent_trainable and child.trainable
            if walk.is_container(child):
                visit(child, on)
            else:
                state[id(child)] = on

    visit(model, model.trainable)
    return state


def _apply(model, changes):
    """Sets leaf trainability; `changes` maps id(leaf) -> bool.

    Containers are opened first (set trainable=True, which cascades), then
    every leaf gets back its effective state, then the changes apply.
    """
    leaves = walk.leaf_layers(model)
    if any(not c.trainable for c in walk.containers(model)):
        state = _effective_state(model)
        for container in walk.containers(model):
            if not container.trainable:
                container.trainable = True
        for leaf in leaves:
            if leaf.trainable != state[id(leaf)]:
                leaf.trainable = state[id(leaf)]
    for leaf in leaves:
        value = changes.get(id(leaf))
        if value is not None and leaf.trainable != value:
            leaf.trainable = value


def _value_for(layer, value, bn):
    if _is_bn(layer):
        if bn == "frozen":
            return False
        if bn == "train":
            return True
    return value


def _set(model, target, value, bn):
    check_bn(bn)
    if target is None:
        _check_model(model)
        layers = walk.leaf_layers(model)
    else:
        layers = resolve_layers(model, target)
    changes = {
        id(layer): _value_for(layer, value, bn)
        for layer in layers
        if layer.weights
    }
    _apply(model, changes)
    return [layer for layer in layers if layer.weights]


def freeze(model: keras.Model, target=None, *, bn: str = "frozen") -> list:
    """Freezes the weights of a model, or of some of its stages or layers.

    Example:

    ```python
    kerasft.freeze(model)                    # everything
    kerasft.freeze(model, ["block1", "block2"])
    kerasft.freeze(model, r"block[12]_conv\\d")  # a regex over layer names
    ```

    Args:
        model: keras.Model. A built model.
        target: What to freeze: `None` for the whole model, a stage name, a
            layer name, a regex (matched with `re.fullmatch`, stage names
            first, then layer names), an int stage index (negative from the
            end), a `keras.Layer`, or a list of these. Defaults to `None`.
        bn: str. BatchNormalization policy for the targeted BN layers:
            `"frozen"` (never train, inference mode), `"train"` (train even
            though frozen) or `"follow"` (freeze like the other layers).
            Defaults to `"frozen"`.

    Returns:
        The list of weight-owning layers whose state was set.

    Raises:
        ValueError: for an unknown name (with the valid names and the closest
            match), an index out of range, a layer not in the model, an
            unbuilt model, or an unknown `bn`. The freeze state is unchanged.
        TypeError: for a target of an unsupported type.
    """
    return _set(model, target, False, bn)


def unfreeze(model: keras.Model, target=None, *, bn: str = "frozen") -> list:
    """Makes the weights of a model, or of some stages or layers, trainable.

    Only the targeted layers change; everything else keeps its state, so
    `freeze(model)` then `unfreeze(model, "head")` trains just the head.

    Example:

    ```python
    kerasft.freeze(model)
    kerasft.unfreeze(model, ["block5", "head"])
    ```

    Args:
        model: keras.Model. A built model.
        target: What to unfreeze, as in `freeze`. Defaults to `None` (all).
        bn: str. BatchNormalization policy for the targeted BN layers:
            `"frozen"` (they stay non-trainable, in inference mode),
            `"train"` or `"follow"` (they train too). Defaults to `"frozen"`.

    Returns:
        The list of weight-owning layers whose state was set.

    Raises:
        ValueError, TypeError: as for `freeze`; the state is unchanged.
    """
    return _set(model, target, True, bn)


def freeze_until(
    model: keras.Model,
    target,
    *,
    inclusive: bool = True,
    bn: str = "frozen",
) -> list:
    """Freezes every stage up to `target` and unfreezes the stages after it.

    This is the usual fine-tuning split: the early, generic stages keep their
    pretrained weights and the later stages adapt. The whole model's state is
    set, so the result does not depend on earlier calls.

    Example:

    ```python
    backbone = kerasft.backbones.VGG16(weights=None, input_shape=(32, 32, 3))
    model = kerasft.build_classifier(backbone, num_classes=10)
    kerasft.freeze_until(model, "block4")  # block5 and head train
    kerasft.freeze_until(model, "head", inclusive=False)  # head only
    ```

    Args:
        model: keras.Model. A built model.
        target: The last stage to freeze: a stage name, a layer name (its
            stage), a regex (the deepest matching stage), an int stage index
            (negative from the end), or a `keras.Layer`.
        inclusive: bool. Whether the target stage itself is frozen. Defaults
            to `True`.
        bn: str. BatchNormalization policy for the whole model: `"frozen"`
            (all BN layers non-trainable, in inference mode, even in trained
            stages), `"train"` (all BN layers train) or `"follow"` (BN layers
            train where their stage trains). Defaults to `"frozen"`.

    Returns:
        The list of weight-owning layers that are trainable afterwards.

    Raises:
        ValueError: as for `freeze`. The state is unchanged.
        TypeError: for a target of an unsupported type.
    """
    check_bn(bn)
    check_bool("inclusive", inclusive)
    index = stage_index(model, target)
    cut = index + 1 if inclusive else index
    changes = {}
    trainable = []
    for stage in stages(model):
        value = stage.index >= cut
        for layer in stage.weight_layers:
            layer_value = _value_for(layer, value, bn)
            changes[id(layer)] = layer_value
            if layer_value:
                trainable.append(layer)
    _apply(model, changes)
    return trainable


def _bn_mode(stage, trainable_ids):
    bns = [x for x in stage.layers if _is_bn(x)]
    if not bns:
        return "-"
    modes = {
        "train"
        if any(id(v) in trainable_ids for v in x.trainable_weights)
        or (x.trainable and not x.trainable_weights)
        else "inference"
        for x in bns
    }
    return modes.pop() if len(modes) == 1 else "mixed"


def summary(model: keras.Model, *, print_fn=None) -> list[dict]:
    """Prints and returns one row per stage: what it holds and what trains.

    Columns: stage index and name, number of layers, total parameters,
    trainable parameters, whether the stage trains (`yes`, `no`, `partly`;
    BN layers aside) and the BatchNormalization mode (`inference`, `train`,
    `mixed` or `-` without BN layers).

    Example:

    ```python
    kerasft.freeze_until(model, "conv4")
    rows = kerasft.summary(model)
    rows[-1]["trainable_params"]
    ```

    Args:
        model: keras.Model. A built model.
        print_fn: callable or None. Called with each line of the table;
            `False` prints nothing. Defaults to `print`.

    Returns:
        A list of dicts, one per stage, with keys `index`, `stage`,
        `layers`, `params`, `trainable_params`, `non_trainable_params`,
        `trains` and `bn`.

    Raises:
        TypeError: for a `model` that is not a keras.Model, or a
            `print_fn` that is neither callable, `None` nor `False`.
    """
    _check_model(model)
    if print_fn is not False:
        check_callable(
            "print_fn", print_fn, "a callable, None or False", allow_none=True
        )
    rows = []
    trainable_ids = {id(v) for v in model.trainable_variables}
    for stage in stages(model):
        params = stage.count_params()
        trainable_params = stage.trainable_params
        state = stage.trainable
        trains = {True: "yes", False: "no", None: "partly"}[state]
        if not stage.variables:
            trains = "-"
        rows.append(
            {
                "index": stage.index,
                "stage": stage.name,
                "layers": len(stage.layers),
                "params": params,
                "trainable_params": trainable_params,
                "non_trainable_params": params - trainable_params,
                "trains": trains,
                "bn": _bn_mode(stage, trainable_ids),
            }
        )
    if print_fn is False:
        return rows
    print_fn = print_fn or print
    headers = ("#", "stage", "layers", "params", "trainable", "trains", "bn")
    table = [
        (
            str(r["index"]),
            r["stage"],
            str(r["layers"]),
            f"{r['params']:,}",
            f"{r['trainable_params']:,}",
            r["trains"],
            r["bn"],
        )
        for r in rows
    ]
    total = sum(r["params"] for r in rows)
    total_trainable = sum(r["trainable_params"] for r in rows)
    widths = [
        max(len(h), *(len(row[i]) for row in table)) if table else len(h)
        for i, h in enumerate(headers)
    ]
    right = {0, 2, 3, 4}

    def fmt(cells):
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    print_fn(f'Stages of model "{model.name}"')
    print_fn(fmt(headers))
    print_fn("  ".join("-" * w for w in widths))
    for row in table:
        print_fn(fmt(row))
    print_fn(
        f"Total params: {total:,}  Trainable: {total_trainable:,}  "
        f"Non-trainable: {total - total_trainable:,}"
    )
    return rows
