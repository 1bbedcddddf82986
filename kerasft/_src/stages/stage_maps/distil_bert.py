"""DistilBERT (keras-hub): `embeddings`, `transformer_layer_0`..

DistilBERT has no pooler; a task model's layers form the `head`.
"""

from kerasft._src.stages.stage_maps._hub import register_hub_map
from kerasft._src.stages.stage_maps._rules import by_pattern

_EMBEDDINGS = (
    "token_and_position_embedding",
    "embeddings_layer_norm",
    "embeddings_dropout",
)

register_hub_map(
    "distil_bert",
    classes=("DistilBertBackbone",),
    expected=(*_EMBEDDINGS[:2], "transformer_layer_0"),
    stage_of=by_pattern(
        r"(transformer_layer_\d+)$",
        names=dict.fromkeys(_EMBEDDINGS, "embeddings"),
    ),
)
