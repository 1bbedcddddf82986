"""Parameter-efficient fine-tuning: LoRA and BitFit, targeted by stage."""

from kerasft._src.adapters import active_adapter
from kerasft._src.adapters import add_adapter
from kerasft._src.adapters import delete_adapter
from kerasft._src.adapters import list_adapters
from kerasft._src.adapters import merge_adapters
from kerasft._src.adapters import set_active_adapter
from kerasft._src.adapters import unload_adapters
from kerasft._src.peft import bitfit
from kerasft._src.peft import enable_lora
from kerasft._src.peft import load_adapter_weights
from kerasft._src.peft import lora_layers
from kerasft._src.peft import save_adapter_weights

__all__ = [
    "active_adapter",
    "add_adapter",
    "bitfit",
    "delete_adapter",
    "enable_lora",
    "list_adapters",
    "load_adapter_weights",
    "lora_layers",
    "merge_adapters",
    "save_adapter_weights",
    "set_active_adapter",
    "unload_adapters",
]
