"""Cutting a functional model at the end of its frozen, deterministic prefix.

The prefix is the stages before the first stage with trainable variables
(`kerasft.stages`), extended by any further operation that has no trainable
weights, is deterministic and reads only the prefix (e.g. a global pooling
layer in the head), so the cut tensors are the smallest available. The
*body* (inputs to cut) is a model computed once per sample; the *top* (cut
to outputs) is a functional model over the SAME layer objects, so training
it trains the model. Training-time randomness (Dropout, GaussianNoise,
`Random*` augmentation layers, any layer with a `keras.random.SeedGenerator`)
or a BatchNormalization layer in training mode inside the frozen stages
would make cached features wrong, so the split refuses them.
"""

from __future__ import annotations

import keras

from kerasft._src import keras_internals
from kerasft._src.freezing import _effective_state
from kerasft._src.stages import stages as model_stages
from kerasft._src.walk import leaf_layers
from kerasft._src.walk import sublayers

_RANDOM_CLASSES = (
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
)


def _is_random(layer) -> bool:
    if isinstance(layer, _RANDOM_CLASSES):
        return True
    if type(layer).__name__.startswith("Random"):
        return True
    return keras_internals.holds_seed_generator(layer)


def _random_sublayer(layer):
    """`layer`, or a layer it holds, that is random at training time."""
    # A layer holding random layers (a `kerasft.augment.Augmentation`, a
    # `keras.layers.Pipeline`, a Transformer block with Dropout) is random
    # too, though it is a leaf of the model.
    return next((x for x in sublayers(layer) if _is_random(x)), None)


def _training_time_issue(layer, effective) -> str | None:
    """Why `layer` behaves differently in training, or None."""
    if isinstance(layer, keras.layers.BatchNormalization):
        if effective.get(id(layer), layer.trainable):
            return (
                "BatchNormalization in training mode (it is trainable, so "
                "fit uses batch statistics and updates its moving averages)"
            )
        return None
    random = _random_sublayer(layer)
    if random is layer:
        return f"{type(layer).__name__} (random at training time)"
    if random is not None:
        return (
            f"{type(layer).__name__} holding {type(random).__name__} "
            f"'{random.name}' (random at training time)"
        )
    return None


class Split:
    """The body and top models of a model cut, and what the cut holds."""

    def __init__(self, body, top, body_leaves):
        self.body = body
        self.top = top
        self.body_leaves = body_leaves


def _prefix_leaves(model):
    """Leaves of the stages before the first stage that trains."""
    stage_list = model_stages(model)
    first = next((s.index for s in stage_list if s.trainable_variables), None)
    if first is None:
        raise ValueError(
            f"Nothing in model '{model.name}' is trainable, so there is "
            "nothing to train on cached features. Unfreeze the stages to "
            "train first, e.g. `kerasft.freeze_until(model, 'block4')`. "
            f"Received: model with 0 trainable variables"
        )
    leaves = [x for s in stage_list[:first] for x in s.layers]
    return leaves, stage_list[first].name


def _plan(graph_model, trainable_ids, prefix_ids, effective, first_stage):
    """Walks one functional graph; returns (available, mixed, cut, leaves)."""
    available = {id(t) for t in graph_model.inputs}
    body_leaves = []
    mixed = None
    top_nodes = []
    for op, ins, outs in keras_internals.graph_nodes(graph_model):
        leaves = leaf_layers(op) if isinstance(op, keras.Layer) else []
        weights = op.weights if isinstance(op, keras.Layer) else []
        from_body = all(id(t) in available for t in ins)
        trains = any(id(v) in trainable_ids for v in weights)
        issues = [
            (leaf, _training_time_issue(leaf, effective)) for leaf in leaves
        ]
        issues = [(leaf, why) for leaf, why in issues if why]
        for leaf, why in issues:
            if id(leaf) in prefix_ids:
                raise ValueError(
                    f"cached_fit cannot cache features computed by layer "
                    f"'{leaf.name}': {why} runs below the first trainable "
                    f"stage '{first_stage}', so its output changes from one "
                    "epoch to the next. Move augmentation into the data "
                    "pipeline you pass to `model.fit`, remove the layer, "
                    "freeze it in inference mode (BatchNormalization: "
                    "`bn='frozen'`), or train with `model.fit`. Received: "
                    f"layer {leaf.name!r} of type {type(leaf).__name__}"
                )
        if from_body and not trains and not issues and mixed is None:
            available.update(id(t) for t in outs)
            body_leaves.extend(leaves)
        elif (
            from_body
            and mixed is None
            and isinstance(op, keras.Model)
            and len(ins) == 1
            and len(outs) == 1
            and any(id(x) in prefix_ids for x in leaves)
        ):
            mixed = (op, ins[0], outs[0])
        else:
            top_nodes.append((op, ins, outs))
    cut = []
    seen = set()
    for _, ins, _ in top_nodes:
        for t in ins:
            if id(t) in available and id(t) not in seen:
                seen.add(id(t))
                cut.append(t)
    return available, mixed, cut, body_leaves


def _split(graph_model, trainable_ids, prefix_ids, effective, first_stage):
    """Cuts a functional model; returns a `Split` or None (nothing to cut)."""
    available, mixed, cut, body_leaves = _plan(
        graph_model, trainable_ids, prefix_ids, effective, first_stage
    )
    inputs = _one(graph_model.inputs)
    outputs = graph_model.outputs
    for t in outputs:
        if id(t) in available:
            raise ValueError(
                f"Output '{t.name}' of model '{graph_model.name}' is computed "
                "by frozen layers only, so cached_fit cannot train it. "
                f"Received: a model with {len(outputs)} outputs"
            )
    if mixed is not None:
        op, t_in, t_out = mixed
        if any(id(t) != id(t_in) for t in cut):
            # The top also reads frozen tensors other than the nested
            # model's input: cut in front of the nested model instead.
            if not any(t is t_in for t in cut):
                cut.append(t_in)
            mixed = None
        else:
            inner = _split(
                op, trainable_ids, prefix_ids, effective, first_stage
            )
            if inner is None:
                cut, mixed = [t_in], None
    if mixed is None:
        if all(any(t is i for i in graph_model.inputs) for t in cut):
            return None  # nothing frozen runs before the trainable part
        outputs = _one(outputs)
        body = keras.Model(inputs, _one(cut), name=f"{graph_model.name}_body")
        top = keras.Model(_one(cut), outputs, name=f"{graph_model.name}_top")
        return Split(body, top, body_leaves)
    # The cut is inside the nested model `op`: body = (outer prefix, then
    # the nested body); top = (the nested top, then the outer rest).
    features = inner.body(t_in)
    body = keras.Model(inputs, features, name=f"{graph_model.name}_body")
    new_inputs = [
        keras.Input(batch_shape=t.shape, dtype=t.dtype)
        for t in keras.tree.flatten(inner.top.inputs)
    ]
    outer_rest = keras.Model(t_out, _one(outputs))
    top_inputs = new_inputs if len(new_inputs) > 1 else new_inputs[0]
    top = keras.Model(
        top_inputs,
        outer_rest(inner.top(top_inputs)),
        name=f"{graph_model.name}_top",
    )
    return Split(body, top, body_leaves + inner.body_leaves)


def _one(tensors):
    tensors = list(tensors)
    return tensors[0] if len(tensors) == 1 else tensors


def split_model(model: keras.Model) -> tuple[keras.Model, keras.Model] | None:
    """Splits a model at the end of its frozen, deterministic prefix.

    Example:

    ```python
    kerasft.freeze_until(model, "block4")
    body, top = split_model(model)
    features = body.predict(images)
    # top(features) == model(images); top shares model's layers
    ```

    Args:
        model: keras.Model. A built functional model.

    Returns:
        `(body, top)`: `body` maps the model's inputs to the cut tensors,
        `top` maps the cut tensors to the outputs with the same layer
        objects as `model`. `None` if nothing frozen runs before the
        trainable layers.

    Raises:
        TypeError: if `model` is not a functional `keras.Model`.
        ValueError: if nothing trains, or if a random layer or a
            BatchNormalization layer in training mode runs below the first
            trainable stage.
    """
    split = make_split(model)
    return None if split is None else (split.body, split.top)


def check_functional(model):
    if isinstance(model, keras.Model) and hasattr(model, "operations"):
        return
    raise TypeError(
        "cached_fit needs a functional keras.Model (built from "
        "`keras.Input`), whose graph can be cut; wrap a Sequential model "
        "with `keras.Model(seq.inputs, seq.outputs)` after building it. "
        f"Received: model={model!r} of type {type(model).__name__}"
    )


def make_split(model):
    check_functional(model)
    prefix, first_stage = _prefix_leaves(model)
    trainable_ids = {id(v) for v in model.trainable_variables}
    effective = _effective_state(model)
    return _split(
        model,
        trainable_ids,
        {id(x) for x in prefix},
        effective,
        first_stage,
    )
