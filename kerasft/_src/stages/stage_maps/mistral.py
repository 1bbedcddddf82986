"""Mistral (keras-hub): `embeddings`, `decoder_block_0`.., `final_norm`.

The layers are laid out as Llama's (see `llama.py`).
"""

from kerasft._src.stages.stage_maps._hub import LLAMA_LAYOUT
from kerasft._src.stages.stage_maps._hub import register_hub_map

register_hub_map("mistral", classes=("MistralBackbone",), **LLAMA_LAYOUT)
