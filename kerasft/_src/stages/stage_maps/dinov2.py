"""DINOv2 (keras-hub): `patch_embedding`, `encoder`, `head`.

keras-hub's `DINOV2Backbone` runs all its Transformer blocks inside one
layer (`encoder`, a `DINOV2Encoder`), and a stage is a run of a model's
layers; so the blocks form one stage, `encoder`. The final normalization
(`layernorm`) and a task model's layers form the `head`.
"""

from kerasft._src.stages.stage_maps._hub import register_hub_map

register_hub_map(
    "dinov2",
    classes=("DINOV2Backbone",),
    expected=("embeddings", "encoder", "layernorm"),
    stage_of={"embeddings": "patch_embedding", "encoder": "encoder"}.get,
)
