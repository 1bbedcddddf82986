"""Gemma and Gemma 3 (keras-hub): `embeddings`, `decoder_block_0`..,
`final_norm`.

A `GemmaCausalLM` computes its logits with the backbone's
`token_embedding` (tied weights), so its `head` stage has no layers of
its own: the output matrix is in `embeddings`.
"""

from kerasft._src.stages.stage_maps._hub import decoder_rule
from kerasft._src.stages.stage_maps._hub import register_hub_map

register_hub_map(
    "gemma",
    classes=("GemmaBackbone", "Gemma3Backbone"),
    expected=("token_embedding", "decoder_block_0", "final_normalization"),
    stage_of=decoder_rule(
        embeddings=("token_embedding",),
        block=r"decoder_block_(\d+)$",
        final_norm="final_normalization",
    ),
)
