"""ResNet and ResNetV2 (keras.applications): `conv1` (stem)..`conv5`."""

import re

from kerasft._src.stages.registry import register_stage_map

# keras.applications name -> preprocessing mode (see ImagePreprocessing).
PREPROCESSING = {
    "ResNet50": "caffe",
    "ResNet101": "caffe",
    "ResNet152": "caffe",
    "ResNet50V2": "tf",
    "ResNet101V2": "tf",
    "ResNet152V2": "tf",
}


def stage_of(name):
    match = re.match(r"(conv[1-5])_", name)
    if match:
        return match.group(1)
    if name.startswith("pool1_"):
        return "conv1"
    if name in ("post_bn", "post_relu"):  # ResNetV2's last normalization
        return "conv5"
    return None


register_stage_map(
    "resnet",
    fingerprint=("conv1_conv", "pool1_pool", "conv2_block1_out"),
    stage_of=stage_of,
)
