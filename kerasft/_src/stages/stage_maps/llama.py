"""Llama, Llama 3 (keras-hub): `embeddings`, `decoder_block_0`..,
`final_norm`.

keras-hub names the blocks `transformer_layer_N`; the stages are
`decoder_block_N` (the layer names still resolve). The LM head of a
`LlamaCausalLM` is the backbone's `token_embedding` (its
`reverse_embeddings` when the weights are not tied), so its `head` stage
has no layers of its own.
"""

from kerasft._src.stages.stage_maps._hub import LLAMA_LAYOUT
from kerasft._src.stages.stage_maps._hub import register_hub_map

register_hub_map("llama", classes=("LlamaBackbone",), **LLAMA_LAYOUT)
