"""The built-in stage maps, one module per family.

Importing this package registers them (through `register_stage_map`, as a
user's map is registered). `PREPROCESSING` gathers the keras.applications
preprocessing mode of each family that has one.
"""

from kerasft._src.stages.stage_maps import alexnet
from kerasft._src.stages.stage_maps import convnext
from kerasft._src.stages.stage_maps import densenet
from kerasft._src.stages.stage_maps import efficientnet
from kerasft._src.stages.stage_maps import inception_v3
from kerasft._src.stages.stage_maps import mobilenet
from kerasft._src.stages.stage_maps import resnet
from kerasft._src.stages.stage_maps import sequence
from kerasft._src.stages.stage_maps import transformer
from kerasft._src.stages.stage_maps import vgg
from kerasft._src.stages.stage_maps import xception

FAMILIES = (
    alexnet,
    convnext,
    densenet,
    efficientnet,
    inception_v3,
    mobilenet,
    resnet,
    sequence,
    transformer,
    vgg,
    xception,
)

PREPROCESSING = {
    app: mode
    for family in FAMILIES
    for app, mode in getattr(family, "PREPROCESSING", {}).items()
}
