"""SigLIP vision encoder (keras-hub): `patch_embedding`,
`encoder_block_0`.., `head`.

keras-hub prefixes the layer names with the encoder's name when it has
one (`vision_encoder_block_0`). The final normalization and the attention
pooling (`head`) come after the last block, so they form the `head`.
"""

import re

from kerasft._src.stages.stage_maps._hub import register_hub_map


def stage_of(name):
    match = re.fullmatch(r"(?:.+_)?(encoder_block_\d+)", name)
    if match:
        return match.group(1)
    if re.fullmatch(r"(?:.+_)?embedding", name):
        return "patch_embedding"
    return None


register_hub_map(
    "siglip",
    classes=("SigLIPVisionEncoder",),
    expected=(r"(?:.+_)?embedding", r"(?:.+_)?encoder_block_0"),
    stage_of=stage_of,
)
