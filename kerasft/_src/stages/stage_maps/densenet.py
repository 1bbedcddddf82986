"""DenseNet121, 169 and 201 (keras.applications): `conv1`..`conv5`.

As in ResNet, `conv1` is the stem (up to `pool1`) and `conv2`..`conv5` are
the four dense blocks. Each transition (`pool2`..`pool4`) joins the dense
block it follows, and the last normalization (`bn`, `relu`) joins `conv5`.
"""

import re

from kerasft._src.stages.registry import register_stage_map

# keras.applications name -> preprocessing mode (see ImagePreprocessing).
PREPROCESSING = {
    "DenseNet121": "torch",
    "DenseNet169": "torch",
    "DenseNet201": "torch",
}


def stage_of(name):
    match = re.match(r"(conv[1-5])_", name)
    if match:
        return match.group(1)
    if name == "pool1":
        return "conv1"
    match = re.match(r"pool([2-4])_", name)
    if match:
        return f"conv{match.group(1)}"
    if name in ("bn", "relu"):
        return "conv5"
    return None


register_stage_map(
    "densenet",
    fingerprint=("conv1_conv", "pool1", "conv2_block1_concat"),
    stage_of=stage_of,
)
