"""VGG16 and VGG19 (keras.applications): `block1`..`block5`."""

from kerasft._src.stages.registry import register_stage_map
from kerasft._src.stages.stage_maps._rules import by_pattern

# keras.applications name -> preprocessing mode (see ImagePreprocessing).
PREPROCESSING = {"VGG16": "caffe", "VGG19": "caffe"}


register_stage_map(
    "vgg",
    fingerprint=("block1_conv1", "block1_conv2", "block1_pool"),
    stage_of=by_pattern(r"(block[1-5])_"),
)
