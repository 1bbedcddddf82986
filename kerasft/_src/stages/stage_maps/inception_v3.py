"""InceptionV3 (keras.applications): `stem`, `mixed0`..`mixed10`.

Only the concatenation that ends each Inception module is named
(`mixed0`..`mixed10`); the convolutions are not. So the rule splits by
position: each stage ends at its `mixedN` layer, and the stem is
everything up to the last max pooling before `mixed0`'s branches.
"""

import re

import keras

from kerasft._src import walk
from kerasft._src.stages.registry import register_stage_map
from kerasft._src.stages.stage import HEAD

# keras.applications name -> preprocessing mode (see ImagePreprocessing).
PREPROCESSING = {"InceptionV3": "tf"}

_MIXED = re.compile(r"mixed\d+")


def split(model):
    groups = []
    current = []
    for layer in walk.children(model):
        current.append(layer)
        if _MIXED.fullmatch(layer.name):
            groups.append((layer.name, current))
            current = []
    first_name, first = groups[0]
    pools = [
        i
        for i, layer in enumerate(first)
        if isinstance(layer, keras.layers.MaxPooling2D)
    ]
    if pools:
        cut = pools[-1] + 1
        groups[0:1] = [("stem", first[:cut]), (first_name, first[cut:])]
    if current:
        groups.append((HEAD, current))
    return groups


register_stage_map("inception_v3", fingerprint=("mixed0",), split=split)
