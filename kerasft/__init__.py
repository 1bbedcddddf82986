"""kerasft: fine-tune pretrained models with Keras 3 on any backend."""

__version__ = "0.1.0"
