"""Qwen 2 and Qwen 3 (keras-hub): `embeddings`, `decoder_block_0`..,
`final_norm`.

The layers are laid out as Llama's (see `llama.py`); `Qwen2Backbone` is
`QwenBackbone`.
"""

from kerasft._src.stages.stage_maps._hub import LLAMA_LAYOUT
from kerasft._src.stages.stage_maps._hub import register_hub_map

register_hub_map(
    "qwen", classes=("QwenBackbone", "Qwen3Backbone"), **LLAMA_LAYOUT
)
