"""Named stages: an ordered split of a model's layers, from input to output.

Every kerasft API speaks in stages. `stages(model)` returns them, and the
resolver here (`resolve_stages`, `resolve_layers`, `stage_index`) turns a
user's target -- a stage name, a layer name, a regex, an index or a Layer --
into stages or layers, with the same error message everywhere.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Any
from typing import Union

import keras

from kerasft._src import keras_internals

Target = Union[str, int, "re.Pattern[str]", keras.Layer, Sequence[Any]]

HEAD = "head"


class Stage:
    """A named, ordered group of layers of a model.

    Stages are computed by `kerasft.stages(model)`; you do not build them
    yourself. A stage holds the *leaf* layers of the model that belong to it
    (nested models are expanded), so a stage of a backbone nested inside a
    classifier still names the backbone's own layers.

    Attributes:
        name: str. The stage name, e.g. `"block4"`, `"conv5"`, `"head"`, or
            `"resnet50/conv4"` in a model with several backbones.
        index: int. Position of the stage, 0 for the one nearest the input.
        layers: tuple of `keras.Layer`. The stage's leaf layers, in order.
    """

    def __init__(self, name: str, index: int, layers, model: keras.Model):
        self.name = name
        self.index = index
        self.layers = tuple(layers)
        self._model = model

    @property
    def weight_layers(self) -> list:
        """The stage's layers that own weights."""
        return [layer for layer in self.layers if layer.weights]

    @property
    def variables(self) -> list:
        """All variables of the stage, trainable or not."""
        return _unique([v for layer in self.layers for v in layer.weights])

    @property
    def trainable_variables(self) -> list:
        """The stage's variables that `model.fit` would update now."""
        model_trainable = {id(v) for v in self._model.trainable_variables}
        return [v for v in self.variables if id(v) in model_trainable]

    @property
    def non_trainable_variables(self) -> list:
        """The stage's variables that `model.fit` leaves alone."""
        trainable = {id(v) for v in self.trainable_variables}
        return [v for v in self.variables if id(v) not in trainable]

    def count_params(self) -> int:
        """Total number of parameters of the stage."""
        return _count(self.variables)

    @property
    def trainable_params(self) -> int:
        """Number of parameters of the stage that train now."""
        return _count(self.trainable_variables)

    @property
    def trainable(self) -> bool | None:
        """`True` if the stage trains, `False` if not, `None` if partly.

        BatchNormalization layers are left out of this answer (their mode is
        the BN policy's business, see `kerasft.summary`); a stage without
        weights reports `False`.
        """
        if not self.trainable_variables:
            return False
        trainable = {id(v) for v in self.trainable_variables}
        states = [
            any(id(v) in trainable for v in layer.weights)
            for layer in self.weight_layers
            if not isinstance(layer, keras.layers.BatchNormalization)
        ]
        if all(states):
            return True
        return None if any(states) else False

    def __repr__(self) -> str:
        return (
            f"<Stage {self.index}: '{self.name}', {len(self.layers)} layers, "
            f"{self.count_params():,} params>"
        )


def _unique(items):
    seen = set()
    out = []
    for item in items:
        if id(item) not in seen:
            seen.add(id(item))
            out.append(item)
    return out


def _count(variables) -> int:
    total = 0
    for v in variables:
        size = 1
        for dim in v.shape:
            size *= int(dim)
        total += size
    return total


def _is_input(layer) -> bool:
    return isinstance(layer, keras.layers.InputLayer)


def _children(model) -> list:
    return [layer for layer in model.layers if not _is_input(layer)]


def leaf_layers(layer) -> list:
    """Expands nested models into their non-model layers, in order."""
    if isinstance(layer, keras.Model):
        out = []
        for child in _children(layer):
            out.extend(leaf_layers(child))
        return _unique(out)
    if _is_input(layer):
        return []
    return [layer]


def sublayers(layer) -> list:
    """A layer and every layer it holds, depth first, each once.

    Keras has no public walker over sublayers, so this follows the
    attributes of each layer (`keras_internals.tracked_attribute_layers`).
    """
    out = []
    seen = set()

    def visit(obj):
        if isinstance(obj, keras.Layer):
            if id(obj) in seen:
                return
            seen.add(id(obj))
            out.append(obj)
            for child in keras_internals.tracked_attribute_layers(obj):
                visit(child)

    visit(layer)
    return out


# ---------------------------------------------------------------------------
# Known stage maps. Each family names the layers that identify it and a rule
# from layer name to stage name. Layers the rule does not match join the
# stage before them (or the first stage, before any match); layers after the
# last match form the `head` stage (pooling, classifier).


def _vgg(name):
    m = re.match(r"(block[1-5])_", name)
    return m.group(1) if m else None


def _resnet(name):
    m = re.match(r"(conv[1-5])_", name)
    if m:
        return m.group(1)
    if name.startswith("pool1_"):
        return "conv1"
    if name in ("post_bn", "post_relu"):
        return "conv5"
    return None


_MOBILENET_BLOCKS = {1: 1, 2: 2, 3: 2, 4: 3, 5: 3, 12: 5, 13: 5}
_MOBILENET_BLOCKS.update({i: 4 for i in range(6, 12)})


def _mobilenet(name):
    if re.fullmatch(r"conv1(_bn|_relu|_pad)?", name):
        return "stem"
    m = re.fullmatch(r"conv_(?:dw|pw|pad)_(\d+)(?:_bn|_relu)?", name)
    if m:
        return f"block{_MOBILENET_BLOCKS[int(m.group(1))]}"
    return None


_MOBILENETV2_BLOCKS = {1: 1, 2: 1, 3: 2, 4: 2, 5: 2}
_MOBILENETV2_BLOCKS.update({i: 3 for i in range(6, 13)})
_MOBILENETV2_BLOCKS.update({i: 4 for i in range(13, 17)})


def _mobilenetv2(name):
    if name in ("Conv1", "bn_Conv1", "Conv1_relu", "Conv1_pad"):
        return "stem"
    if name.startswith("expanded_conv_"):
        return "stem"
    m = re.match(r"block_(\d+)_", name)
    if m:
        return f"block{_MOBILENETV2_BLOCKS[int(m.group(1))]}"
    if name in ("Conv_1", "Conv_1_bn", "out_relu"):
        return "top"
    return None


def _efficientnet(name):
    if name.startswith("stem_"):
        return "stem"
    m = re.match(r"block([1-7])[a-z]_", name)
    if m:
        return f"block{m.group(1)}"
    if name.startswith("top_") and name != "top_dropout":
        return "top"
    return None


def _alexnet(name):
    m = re.fullmatch(r"(conv[1-5]|fc6|fc7)(_\w+)?", name)
    return m.group(1) if m else None


def _transformer(name):
    # keras-hub Transformer backbones (BERT, DistilBERT, RoBERTa, ...): the
    # encoder blocks are named `transformer_layer_N`, the layers before them
    # carry "embedding" in their names and BERT's pooler is `pooled_dense`.
    if re.fullmatch(r"transformer_layer_\d+", name):
        return name
    if "embedding" in name:
        return "embeddings"
    if name in ("pooled_dense", "pooled_dropout", "pooler"):
        return "pooler"
    return None


# (family, layer names that must all be present, rule). The names are those
# of the first blocks, so a backbone cut after any stage is still known.
_FAMILIES = (
    ("vgg", ("block1_conv1", "block1_conv2", "block1_pool"), _vgg),
    ("resnet", ("conv1_conv", "pool1_pool", "conv2_block1_out"), _resnet),
    ("mobilenet", ("conv1", "conv_dw_1", "conv_pw_1"), _mobilenet),
    (
        "mobilenetv2",
        ("Conv1", "bn_Conv1", "expanded_conv_project"),
        _mobilenetv2,
    ),
    (
        "efficientnet",
        ("stem_conv", "stem_bn", "block1a_project_conv"),
        _efficientnet,
    ),
    ("alexnet", ("conv1", "conv2", "conv5", "fc6", "fc7"), _alexnet),
    ("transformer", ("transformer_layer_0",), _transformer),
)


def known_family(model) -> str | None:
    """Returns the family name of a model with a known stage map, or None."""
    if not isinstance(model, keras.Model):
        return None
    names = {layer.name for layer in model.layers}
    for family, required, _ in _FAMILIES:
        if all(n in names for n in required):
            return family
    return None


def _known_groups(model, family):
    rule = next(r for f, _, r in _FAMILIES if f == family)
    groups = []  # list of [name, [leaves]]
    pending = []  # leaves before the first match
    for layer in _children(model):
        stage = rule(layer.name)
        leaves = leaf_layers(layer)
        if stage is None:
            if groups:
                groups[-1][1].extend(leaves)
            else:
                pending.extend(leaves)
            continue
        if groups and groups[-1][0] == stage:
            groups[-1][1].extend(leaves)
        else:
            groups.append([stage, leaves])
        if pending:
            groups[0][1][:0] = pending
            pending = []
    if not groups:
        return [[model.name, pending]]
    # Unmatched layers after the last match form the head.
    last_rule_layer = max(
        i for i, layer in enumerate(_children(model)) if rule(layer.name)
    )
    trailing = []
    for layer in _children(model)[last_rule_layer + 1 :]:
        trailing.extend(leaf_layers(layer))
    if trailing:
        tail_ids = {id(x) for x in trailing}
        groups[-1][1] = [x for x in groups[-1][1] if id(x) not in tail_ids]
        groups.append([HEAD, trailing])
    return groups


def _groups(model):
    family = known_family(model)
    if family is not None:
        return _known_groups(model, family)
    children = _children(model)
    backbones = [c for c in children if known_family(c) is not None]
    if not backbones:
        return [[layer.name, leaf_layers(layer)] for layer in children]
    # Every nested model is a branch (a fusion model may mix known
    # backbones and custom models); with several branches, the known ones'
    # stage names are prefixed. The head is what follows the last branch.
    branches = [c for c in children if isinstance(c, keras.Model)]
    prefix = len(branches) > 1
    last_branch = max(
        i for i, c in enumerate(children) if isinstance(c, keras.Model)
    )
    groups = []
    for i, layer in enumerate(children):
        if any(layer is b for b in backbones):
            for name, leaves in _known_groups(layer, known_family(layer)):
                if prefix:
                    name = f"{layer.name}/{name}"
                groups.append([name, leaves])
        elif i > last_branch:
            groups.append([HEAD, leaf_layers(layer)])
        else:
            groups.append([layer.name, leaf_layers(layer)])
    # Adjacent groups with one name (a backbone's pooling `head` followed by
    # the classifier layers) are one stage.
    merged = []
    for name, leaves in groups:
        if merged and merged[-1][0] == name:
            merged[-1][1].extend(leaves)
        else:
            merged.append([name, list(leaves)])
    return merged


def _check_model(model):
    if not isinstance(model, keras.Model):
        raise TypeError(
            "Expected a `keras.Model`. "
            f"Received: model={model!r} of type {type(model).__name__}"
        )
    if not model.built:
        raise ValueError(
            f"Model '{model.name}' is not built yet, so its layers have no "
            "weights to freeze or count. Build it first, for example by "
            "calling it on a batch of data, with `model.build(input_shape)`, "
            "or by starting it with a `keras.Input`. "
            f"Received: model={model.name!r} (built=False)"
        )


def stages(model: keras.Model) -> list[Stage]:
    """Returns the named stages of a model, in order from input to output.

    Known architectures get their usual names: VGG16/19 `block1`..`block5`;
    ResNet50/101/152 `conv1` (stem) .. `conv5`; MobileNet and MobileNetV2
    `stem`, `block1`.. (one block per resolution), MobileNetV2 `top`;
    EfficientNetB0-B7 `stem`, `block1`..`block7`, `top`; AlexNet
    `conv1`..`conv5`, `fc6`, `fc7`; keras-hub Transformer backbones (any
    model whose blocks are named `transformer_layer_N`, such as
    `BertBackbone`) `embeddings`, `transformer_layer_0`.. and BERT's
    `pooler`. Layers after the last known block
    (pooling, classifier) form the `head` stage, and so do layers added after
    a nested backbone. Any other model gets the generic split: each
    top-level layer is a stage named after it, and a nested model is one
    stage unless a known map applies. In a model with several known
    backbones, their stage names are prefixed with the backbone's name
    (`"resnet50/conv4"`).

    Example:

    ```python
    backbone = kerasft.backbones.VGG16(weights=None, input_shape=(32, 32, 3))
    model = kerasft.build_classifier(backbone, num_classes=10)
    [s.name for s in kerasft.stages(model)]
    # ['block1', 'block2', 'block3', 'block4', 'block5', 'head']
    ```

    Args:
        model: keras.Model. A built model.

    Returns:
        A list of `Stage` objects.

    Raises:
        TypeError: if `model` is not a `keras.Model`.
        ValueError: if the model is not built.
    """
    _check_model(model)
    result = []
    seen = set()
    for name, leaves in _groups(model):
        leaves = [x for x in _unique(leaves) if id(x) not in seen]
        seen.update(id(x) for x in leaves)
        result.append(Stage(name, len(result), leaves, model))
    return result


def _all_named_layers(model):
    """All leaf layers and nested models of `model`, by name, in order."""
    out = []

    def walk(layer):
        for child in _children(layer):
            out.append(child)
            if isinstance(child, keras.Model):
                walk(child)

    walk(model)
    return out


def _compile(pattern):
    if isinstance(pattern, re.Pattern):
        return pattern
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _unknown_name_error(model, target, stage_list):
    stage_names = [s.name for s in stage_list]
    layer_names = [layer.name for layer in _all_named_layers(model)]
    close = difflib.get_close_matches(
        str(target), stage_names + layer_names, n=1, cutoff=0.6
    )
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return ValueError(
        f"No stage or layer of model '{model.name}' matches {target!r}."
        f"{hint} Valid stage names: {stage_names}. Layer names (exact, or "
        "a regex matched with re.fullmatch) and stage indices are accepted "
        f"too. Received: target={target!r}"
    )


def _resolve_one(model, target, stage_list):
    """Returns (stages, layers) for one target; layers are leaf layers."""
    if isinstance(target, bool):
        raise TypeError(
            "A target must be a stage name, a layer name, a regex, an int "
            f"stage index or a Layer. Received: target={target!r}"
        )
    if isinstance(target, int):
        n = len(stage_list)
        if not -n <= target < n:
            raise ValueError(
                f"Stage index {target} is out of range for model "
                f"'{model.name}', which has {n} stages (valid indices: "
                f"{-n}..{n - 1}; stages: {[s.name for s in stage_list]}). "
                f"Received: target={target}"
            )
        stage = stage_list[target]
        return [stage], list(stage.layers)
    if isinstance(target, keras.Layer):
        if target is model:
            return list(stage_list), leaf_layers(model)
        if not any(target is x for x in _all_named_layers(model)):
            raise ValueError(
                f"Layer '{target.name}' is not part of model '{model.name}'. "
                "Pass a layer of this model, or its name. "
                f"Received: target={target!r}"
            )
        leaves = leaf_layers(target)
        return _stages_of(leaves, stage_list), leaves
    if isinstance(target, (str, re.Pattern)):
        if isinstance(target, str):
            for stage in stage_list:
                if stage.name == target:
                    return [stage], list(stage.layers)
            named = [x for x in _all_named_layers(model) if x.name == target]
            if named:
                leaves = _unique(
                    [leaf for x in named for leaf in leaf_layers(x)]
                )
                return _stages_of(leaves, stage_list), leaves
        pattern = _compile(target)
        if pattern is not None:
            matched = [s for s in stage_list if pattern.fullmatch(s.name)]
            if matched:
                leaves = [leaf for s in matched for leaf in s.layers]
                return matched, leaves
            named = [
                x for x in _all_named_layers(model) if pattern.fullmatch(x.name)
            ]
            if named:
                leaves = _unique(
                    [leaf for x in named for leaf in leaf_layers(x)]
                )
                return _stages_of(leaves, stage_list), leaves
        shown = getattr(target, "pattern", target)
        raise _unknown_name_error(model, shown, stage_list)
    raise TypeError(
        "A target must be a stage name, a layer name, a regex, an int stage "
        "index, a Layer, or a list of these. "
        f"Received: target={target!r} of type {type(target).__name__}"
    )


def _stages_of(leaves, stage_list):
    ids = {id(x) for x in leaves}
    return [s for s in stage_list if any(id(x) in ids for x in s.layers)]


def _resolve(model, target):
    _check_model(model)
    stage_list = stages(model)
    targets = (
        list(target) if isinstance(target, (list, tuple, set)) else [target]
    )
    if not targets:
        raise ValueError(
            f"Expected at least one target. Received: target={target!r}"
        )
    found_stages, found_layers = [], []
    for t in targets:
        s, layers = _resolve_one(model, t, stage_list)
        found_stages.extend(s)
        found_layers.extend(layers)
    found_stages = sorted(_unique(found_stages), key=lambda s: s.index)
    return found_stages, _unique(found_layers), stage_list


def resolve_stages(model: keras.Model, target: Target) -> list[Stage]:
    """Returns the stages a target refers to, in model order.

    Args:
        model: keras.Model. A built model.
        target: The stage(s) or layer(s): a stage name, a layer name, a regex
            (`str` or compiled, matched with `re.fullmatch` against stage
            names first, then layer names), an int index into `stages(model)`
            (negative counts from the end), a `keras.Layer` of the model, or
            a list of these. A layer selects the stage that contains it.

    Returns:
        A list of `Stage`.

    Raises:
        ValueError: for a name that matches nothing (the message lists the
            valid stage names and the closest match), an index out of range,
            a layer that is not in the model, or an unbuilt model.
        TypeError: for a target of another type.
    """
    return _resolve(model, target)[0]


def resolve_layers(model: keras.Model, target: Target) -> list:
    """Returns the leaf layers a target refers to, in model order.

    A stage name selects all layers of the stage; a layer name, a regex over
    layer names, or a Layer selects just those layers (a nested model
    selects all of its layers). Arguments and errors are those of
    `resolve_stages`.
    """
    layers = _resolve(model, target)[1]
    order = {id(x): i for i, x in enumerate(leaf_layers(model))}
    return sorted(layers, key=lambda x: order.get(id(x), len(order)))


def stage_index(model: keras.Model, target: Target) -> int:
    """Returns the index of the deepest stage a target refers to.

    Arguments and errors are those of `resolve_stages`.
    """
    return resolve_stages(model, target)[-1].index
