"""DenseNet121, 169 and 201 (keras.applications): `conv1`..`conv5`.

As in ResNet, `conv1` is the stem (up to `pool1`) and `conv2`..`conv5` are
the four dense blocks. Each transition (`pool2`..`pool4`) joins the dense
block it follows, and the last normalization (`bn`, `relu`) joins `conv5`.
"""

from kerasft._src.stages.registry import register_stage_map
from kerasft._src.stages.stage_maps._rules import by_pattern

# keras.applications name -> preprocessing mode (see ImagePreprocessing).
PREPROCESSING = {
    "DenseNet121": "torch",
    "DenseNet169": "torch",
    "DenseNet201": "torch",
}

stage_of = by_pattern(
    r"(conv[1-5])_",
    (r"pool([2-4])_", r"conv\1"),
    names={"pool1": "conv1", "bn": "conv5", "relu": "conv5"},
)


register_stage_map(
    "densenet",
    fingerprint=("conv1_conv", "pool1", "conv2_block1_concat"),
    stage_of=stage_of,
)
