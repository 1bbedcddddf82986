"""GPT-2 (keras-hub): `embeddings`, `decoder_block_0`.., `final_norm`.

`embeddings` holds the token and position embeddings, their sum and
dropout; keras-hub names the blocks `transformer_layer_N` and the final
normalization `layer_norm`. A `GPT2CausalLM` computes its logits with
`token_embedding` (tied weights), so its `head` stage has no layers of its
own.
"""

from kerasft._src.stages.stage_maps._hub import decoder_rule
from kerasft._src.stages.stage_maps._hub import register_hub_map

_EMBEDDINGS = (
    "token_embedding",
    "position_embedding",
    "embeddings_add",
    "embeddings_dropout",
)

register_hub_map(
    "gpt2",
    classes=("GPT2Backbone",),
    expected=(*_EMBEDDINGS[:2], "transformer_layer_0", "layer_norm"),
    stage_of=decoder_rule(
        embeddings=_EMBEDDINGS,
        block=r"transformer_layer_(\d+)$",
        final_norm="layer_norm",
    ),
)
