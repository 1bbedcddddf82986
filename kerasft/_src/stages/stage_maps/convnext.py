"""ConvNeXt (keras.applications): `stem`, `stage_0`..`stage_3`.

Keras prefixes the layer names with the model's name
(`convnext_tiny_stage_0_block_0_...`), so the fingerprint and the rule
match the suffixes. Each downsampling layer opens the stage after it, as
in the paper. The final `LayerNormalization` (unnamed) joins `head`.
"""

import re

from kerasft._src.stages.registry import register_stage_map

# keras.applications name -> preprocessing mode: ConvNeXt carries its own
# normalization layer.
PREPROCESSING = {
    f"ConvNeXt{size}": "none" for size in ("Tiny", "Small", "Base", "Large")
}


def stage_of(name):
    if name.endswith(("_stem", "_prestem_normalization")):
        return "stem"
    match = re.fullmatch(r".+_stage_(\d+)_block_\d+_\w+", name)
    if match:
        return f"stage_{match.group(1)}"
    match = re.fullmatch(r".+_downsampling_block_(\d+)", name)
    if match:
        return f"stage_{int(match.group(1)) + 1}"
    return None


register_stage_map(
    "convnext",
    fingerprint=(
        re.compile(r".+_stem"),
        re.compile(r".+_stage_0_block_0_depthwise_conv"),
    ),
    stage_of=stage_of,
)
