"""Parameter-efficient fine-tuning: LoRA and BitFit, targeted by stage."""

from kerasft._src.peft import bitfit
from kerasft._src.peft import enable_lora
from kerasft._src.peft import load_adapter_weights
from kerasft._src.peft import lora_layers
from kerasft._src.peft import save_adapter_weights

__all__ = [
    "bitfit",
    "enable_lora",
    "load_adapter_weights",
    "lora_layers",
    "save_adapter_weights",
]
