"""ViT (keras-hub): `patch_embedding`, `encoder`, `head`.

keras-hub's `ViTBackbone` runs all its Transformer blocks, and the final
normalization, inside one layer (`vit_encoder`, a `ViTEncoder`), and a
stage is a run of a model's layers; so the blocks form one stage,
`encoder`. A task model's layers form the `head`.
"""

from kerasft._src.stages.stage_maps._hub import register_hub_map

register_hub_map(
    "vit",
    classes=("ViTBackbone",),
    expected=("vit_patching_and_embedding", "vit_encoder"),
    stage_of={
        "vit_patching_and_embedding": "patch_embedding",
        "vit_encoder": "encoder",
    }.get,
)
