"""VGG16 and VGG19 (keras.applications): `block1`..`block5`."""

import re

from kerasft._src.stages.registry import register_stage_map

# keras.applications name -> preprocessing mode (see ImagePreprocessing).
PREPROCESSING = {"VGG16": "caffe", "VGG19": "caffe"}


def stage_of(name):
    match = re.match(r"(block[1-5])_", name)
    return match.group(1) if match else None


register_stage_map(
    "vgg",
    fingerprint=("block1_conv1", "block1_conv2", "block1_pool"),
    stage_of=stage_of,
)
