"""DINOv2 (keras-hub): `patch_embedding`, `encoder_block_0`.., `head`.

keras-hub's `DINOV2Backbone` runs all its Transformer blocks inside one
layer (`encoder`, a `DINOV2Encoder`). The walk opens that layer like a
nested model, so each block (`layers_0`..) is a stage of its own,
`encoder_block_0`..; the final normalization (`layernorm`) and a task
model's layers form the `head`.
"""

from kerasft._src.stages.stage_maps._hub import encoder_blocks
from kerasft._src.stages.stage_maps._hub import register_hub_map

register_hub_map(
    "dinov2",
    classes=("DINOV2Backbone",),
    expected=("embeddings", "encoder", "layernorm"),
    split=encoder_blocks(
        "dinov2",
        container="DINOV2Encoder",
        encoder="encoder",
        block=r"layers_\d+",
    ),
)
