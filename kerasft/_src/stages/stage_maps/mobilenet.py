"""MobileNet and MobileNetV2 (keras.applications): `stem`, one block per
resolution (`block1`..), and MobileNetV2's `top`."""

import re

from kerasft._src.stages.registry import register_stage_map

# keras.applications name -> preprocessing mode (see ImagePreprocessing).
PREPROCESSING = {"MobileNet": "tf", "MobileNetV2": "tf"}

# Depthwise-separable block number -> resolution block.
_V1_BLOCKS = {1: 1, 2: 2, 3: 2, 4: 3, 5: 3, 12: 5, 13: 5}
_V1_BLOCKS.update({i: 4 for i in range(6, 12)})

# Inverted residual block number -> resolution block.
_V2_BLOCKS = {1: 1, 2: 1, 3: 2, 4: 2, 5: 2}
_V2_BLOCKS.update({i: 3 for i in range(6, 13)})
_V2_BLOCKS.update({i: 4 for i in range(13, 17)})


def stage_of(name):
    if re.fullmatch(r"conv1(_bn|_relu|_pad)?", name):
        return "stem"
    match = re.fullmatch(r"conv_(?:dw|pw|pad)_(\d+)(?:_bn|_relu)?", name)
    if match:
        return f"block{_V1_BLOCKS[int(match.group(1))]}"
    return None


def stage_of_v2(name):
    if name in ("Conv1", "bn_Conv1", "Conv1_relu", "Conv1_pad"):
        return "stem"
    if name.startswith("expanded_conv_"):
        return "stem"
    match = re.match(r"block_(\d+)_", name)
    if match:
        return f"block{_V2_BLOCKS[int(match.group(1))]}"
    if name in ("Conv_1", "Conv_1_bn", "out_relu"):
        return "top"
    return None


register_stage_map(
    "mobilenet",
    fingerprint=("conv1", "conv_dw_1", "conv_pw_1"),
    stage_of=stage_of,
)
register_stage_map(
    "mobilenetv2",
    fingerprint=("Conv1", "bn_Conv1", "expanded_conv_project"),
    stage_of=stage_of_v2,
)
