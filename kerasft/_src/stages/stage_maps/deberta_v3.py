"""DeBERTaV3 (keras-hub): `embeddings`, `transformer_layer_0`..

keras-hub names the blocks `disentangled_attention_encoder_layer_N`; the
stages are `transformer_layer_N`, as in BERT (the layer names still
resolve). The relative position embedding (`rel_embedding`), computed once
and read by every block, belongs to `embeddings`.
"""

from kerasft._src.stages.stage_maps._hub import register_hub_map
from kerasft._src.stages.stage_maps._rules import by_pattern

_EMBEDDINGS = (
    "token_embedding",
    "embeddings_layer_norm",
    "embeddings_dropout",
    "rel_embedding",
)

register_hub_map(
    "deberta_v3",
    classes=("DebertaV3Backbone",),
    expected=(
        "token_embedding",
        "rel_embedding",
        "disentangled_attention_encoder_layer_0",
    ),
    stage_of=by_pattern(
        (
            r"disentangled_attention_encoder_layer_(\d+)$",
            r"transformer_layer_\1",
        ),
        names=dict.fromkeys(_EMBEDDINGS, "embeddings"),
    ),
)
