"""The one layer walker: which layers a model or a layer holds.

Two kinds of nesting exist in Keras. A model holds its layers in
`model.layers` (and a nested model holds its own); a layer that is not a
model (a `TransformerEncoder`, `MultiHeadAttention`, `Bidirectional`)
holds sublayers in its attributes. Every kerasft module finds layers
through the functions here.

A *container* is a layer the walk opens: a model, or a *block
container*, a layer that is not a model but holds a model's blocks
(keras-hub's `ViTEncoder` runs all the Transformer blocks of a ViT). A
block container is walked like a nested model, so that each of its
sublayers is a leaf of its own, and each block can be a stage. The stage
maps that need it register the class names (`register_block_container`).
"""

from __future__ import annotations

import keras

from kerasft._src import keras_internals

# Class names of the block containers (matched on the class or a base
# class, so that keras-hub need not be imported).
_BLOCK_CONTAINERS: set = set()


def register_block_container(class_name: str) -> None:
    """Makes the walk open layers of class `class_name` like models."""
    _BLOCK_CONTAINERS.add(class_name)


def _is_input(layer) -> bool:
    return isinstance(layer, keras.layers.InputLayer)


def is_container(layer) -> bool:
    """Whether the walk opens `layer`: a model or a block container."""
    if isinstance(layer, keras.Model):
        return True
    return any(cls.__name__ in _BLOCK_CONTAINERS for cls in type(layer).__mro__)


def children(model: keras.Layer) -> list:
    """The top-level layers of a container, in order, without its inputs.

    The layers of a block container are those it holds in its
    attributes, in attribute order, each once.
    """
    if not isinstance(model, keras.Model):
        out = []
        for layer in keras_internals.tracked_attribute_layers(model):
            if not any(layer is x for x in out):
                out.append(layer)
        return out
    return [layer for layer in model.layers if not _is_input(layer)]


def leaf_layers(layer: keras.Layer) -> list:
    """Expands containers into the layers they hold, in order.

    A layer that is not a container is its own only leaf (its sublayers
    are not expanded); each leaf appears once.
    """
    if is_container(layer):
        out = []
        seen = set()
        for child in children(layer):
            for leaf in leaf_layers(child):
                if id(leaf) not in seen:
                    seen.add(id(leaf))
                    out.append(leaf)
        return out
    if _is_input(layer):
        return []
    return [layer]


def nested_layers(model: keras.Model) -> list:
    """Every layer and container inside `model`, depth first, in order.

    A nested container comes before its own layers; `model` itself and
    the input layers are left out.
    """
    out = []
    for child in children(model):
        out.append(child)
        if is_container(child):
            out.extend(nested_layers(child))
    return out


def containers(model: keras.Model) -> list:
    """`model` and every container nested in it, outermost first."""
    return [model] + [
        layer for layer in nested_layers(model) if is_container(layer)
    ]


def sublayers(layer: keras.Layer) -> list:
    """A layer and every layer it holds, depth first, each once.

    This follows both kinds of nesting: the layers of a model and the
    sublayers a layer keeps in its attributes (and in lists, tuples and
    dicts in them).
    """
    out = []
    seen = set()

    def visit(obj):
        if id(obj) in seen:
            return
        seen.add(id(obj))
        out.append(obj)
        for item in keras_internals.tracked_attribute_layers(obj):
            visit(item)

    visit(layer)
    return out
