"""The one layer walker: which layers a model or a layer holds.

Two kinds of nesting exist in Keras. A model holds its layers in
`model.layers` (and a nested model holds its own); a layer that is not a
model (a `TransformerEncoder`, `MultiHeadAttention`, `Bidirectional`)
holds sublayers in its attributes. Every kerasft module finds layers
through the functions here.
"""

from __future__ import annotations

import keras

from kerasft._src import keras_internals


def _is_input(layer) -> bool:
    return isinstance(layer, keras.layers.InputLayer)


def children(model: keras.Model) -> list:
    """The top-level layers of a model, in order, without its inputs."""
    return [layer for layer in model.layers if not _is_input(layer)]


def leaf_layers(layer: keras.Layer) -> list:
    """Expands nested models into their non-model layers, in order.

    A layer that is not a model is its own only leaf (its sublayers are
    not expanded); each leaf appears once.
    """
    if isinstance(layer, keras.Model):
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
    """Every layer and nested model inside `model`, depth first, in order.

    A nested model comes before its own layers; `model` itself and the
    input layers are left out.
    """
    out = []
    for child in children(model):
        out.append(child)
        if isinstance(child, keras.Model):
            out.extend(nested_layers(child))
    return out


def containers(model: keras.Model) -> list:
    """`model` and every model nested in it, outermost first."""
    return [model] + [
        layer
        for layer in nested_layers(model)
        if isinstance(layer, keras.Model)
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
