"""EfficientNet B0-B7 and EfficientNetV2 (keras.applications) and
keras-hub's EfficientNet: `stem`, `block1`..`block7`, `top`."""

import re

from kerasft._src.stages.registry import register_stage_map
from kerasft._src.stages.stage_maps._hub import register_hub_map

# keras.applications name -> preprocessing mode: EfficientNets carry their
# own rescaling layers.
PREPROCESSING = {f"EfficientNetB{i}": "none" for i in range(8)}
PREPROCESSING.update(
    {f"EfficientNetV2{s}": "none" for s in ("B0", "B1", "B2", "B3", "S", "M")}
)


def stage_of(name):
    if name.startswith("stem_"):
        return "stem"
    match = re.match(r"block([1-7])[a-z]_", name)
    if match:
        return f"block{match.group(1)}"
    if name.startswith("top_") and name != "top_dropout":
        return "top"
    return None


register_stage_map(
    "efficientnet",
    fingerprint=("stem_conv", "stem_bn", "block1a_project_conv"),
    stage_of=stage_of,
)


# keras-hub's EfficientNetBackbone names its layers as keras.applications
# does (`block1a_project`, without `_conv`).
register_hub_map(
    "hub_efficientnet",
    classes=("EfficientNetBackbone",),
    expected=("stem_conv", r"block1a_\w+", "top_conv"),
    stage_of=stage_of,
)
