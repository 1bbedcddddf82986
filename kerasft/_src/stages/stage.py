"""`Stage`: a named, ordered group of layers of a model."""

from __future__ import annotations

import keras

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
        return unique([v for layer in self.layers for v in layer.weights])

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
        return count(self.variables)

    @property
    def trainable_params(self) -> int:
        """Number of parameters of the stage that train now."""
        return count(self.trainable_variables)

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


def unique(items) -> list:
    """The items in order, each object once (by identity)."""
    seen = set()
    out = []
    for item in items:
        if id(item) not in seen:
            seen.add(id(item))
            out.append(item)
    return out


def count(variables) -> int:
    """Total number of scalars in `variables`."""
    total = 0
    for v in variables:
        size = 1
        for dim in v.shape:
            size *= int(dim)
        total += size
    return total
