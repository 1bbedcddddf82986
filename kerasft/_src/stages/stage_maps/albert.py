"""ALBERT (keras-hub): `embeddings`, `group_0`.., `pooler`.

ALBERT shares its Transformer layers across depth: with `num_layers=12`
and `num_groups=1` (every ALBERT preset), one `TransformerEncoder` runs
12 times. A stage is a group of layers, so each group of shared layers
(`group_G_inner_layer_R`) is one stage, `group_G`, whatever the number of
times it runs. Freezing `group_0` freezes the weights of every pass
through it; an unfreeze schedule or a layer-wise decay sees one stage per
group, not one per pass.
"""

from kerasft._src.stages.stage_maps._hub import register_hub_map
from kerasft._src.stages.stage_maps._rules import by_pattern

_EMBEDDINGS = (
    "token_embedding",
    "position_embedding",
    "segment_embedding",
    "embeddings_add",
    "embeddings_layer_norm",
    "embeddings_dropout",
    "embedding_projection",
)

register_hub_map(
    "albert",
    classes=("AlbertBackbone",),
    expected=("token_embedding", "group_0_inner_layer_0", "pooled_dense"),
    stage_of=by_pattern(
        r"(group_\d+)_inner_layer_\d+$",
        names={
            **dict.fromkeys(_EMBEDDINGS, "embeddings"),
            "pooled_dense": "pooler",
        },
    ),
)
