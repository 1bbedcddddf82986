"""AlexNet (`kerasft.backbones.AlexNet`): `conv1`..`conv5`, `fc6`, `fc7`."""

import re

from kerasft._src.stages.registry import register_stage_map


def stage_of(name):
    match = re.fullmatch(r"(conv[1-5]|fc6|fc7)(_\w+)?", name)
    return match.group(1) if match else None


register_stage_map(
    "alexnet",
    fingerprint=("conv1", "conv2", "conv5", "fc6", "fc7"),
    stage_of=stage_of,
)
