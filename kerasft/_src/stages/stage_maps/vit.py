"""ViT (keras-hub): `patch_embedding`, `encoder_block_0`.., `head`.

keras-hub's `ViTBackbone` runs all its Transformer blocks, and the final
normalization, inside one layer (`vit_encoder`, a `ViTEncoder`). The walk
opens that layer like a nested model, so each block
(`transformer_block_1`.., numbered from 1 by keras-hub) is a stage of its
own, `encoder_block_0`..; the encoder's input dropout joins
`encoder_block_0`, and its final normalization (`ln`) and a task model's
layers form the `head`.
"""

from kerasft._src.stages.stage_maps._hub import encoder_blocks
from kerasft._src.stages.stage_maps._hub import register_hub_map

register_hub_map(
    "vit",
    classes=("ViTBackbone",),
    expected=("vit_patching_and_embedding", "vit_encoder"),
    split=encoder_blocks(
        "vit",
        container="ViTEncoder",
        encoder="vit_encoder",
        block=r"transformer_block_\d+",
        first=("dropout",),
    ),
)
