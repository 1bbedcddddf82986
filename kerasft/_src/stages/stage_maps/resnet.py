"""ResNet and ResNetV2 (keras.applications): `conv1` (stem)..`conv5`;
keras-hub ResNet: `stem`, `stack0`.."""

from kerasft._src.stages.registry import register_stage_map
from kerasft._src.stages.stage_maps._hub import register_hub_map
from kerasft._src.stages.stage_maps._rules import by_pattern

# keras.applications name -> preprocessing mode (see ImagePreprocessing).
PREPROCESSING = {
    "ResNet50": "caffe",
    "ResNet101": "caffe",
    "ResNet152": "caffe",
    "ResNet50V2": "tf",
    "ResNet101V2": "tf",
    "ResNet152V2": "tf",
}

stage_of = by_pattern(
    r"(conv[1-5])_",
    (r"pool1_", "conv1"),
    # ResNetV2's last normalization.
    names={"post_bn": "conv5", "post_relu": "conv5"},
)


register_stage_map(
    "resnet",
    fingerprint=("conv1_conv", "pool1_pool", "conv2_block1_out"),
    stage_of=stage_of,
)


# keras-hub's ResNetBackbone: `stem` (the input convolutions and `pool1`),
# `stack0`.. (its own names); the last normalization of a pre-activation
# ResNet (`post_bn`, `post_relu`) comes after the last stack, in `head`.
register_hub_map(
    "hub_resnet",
    classes=("ResNetBackbone",),
    expected=("conv1_conv", r"stack0_block0_\w+"),
    stage_of=by_pattern(
        (r"conv\d+_", "stem"), (r"pool1_", "stem"), r"(stack\d+)_"
    ),
)
