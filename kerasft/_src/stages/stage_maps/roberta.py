"""RoBERTa and XLM-RoBERTa (keras-hub): `embeddings`,
`transformer_layer_0`..

RoBERTa has no pooler in its backbone; a task model's layers (its
`pooled_dense` included) form the `head`.
"""

from kerasft._src.stages.stage_maps._hub import register_hub_map
from kerasft._src.stages.stage_maps._rules import by_pattern

_EMBEDDINGS = ("embeddings", "embeddings_layer_norm", "embeddings_dropout")

register_hub_map(
    "roberta",
    classes=("RobertaBackbone",),
    expected=(*_EMBEDDINGS[:2], "transformer_layer_0"),
    stage_of=by_pattern(
        r"(transformer_layer_\d+)$",
        names=dict.fromkeys(_EMBEDDINGS, "embeddings"),
    ),
)
