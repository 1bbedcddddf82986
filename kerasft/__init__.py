"""kerasft: fine-tune pretrained models with Keras 3 on any backend."""

from kerasft import augment
from kerasft import backbones
from kerasft import callbacks
from kerasft import data_selection
from kerasft import export
from kerasft import finetune
from kerasft import layers
from kerasft import optimizers
from kerasft import peft
from kerasft import plotting
from kerasft import regularizers
from kerasft import schedules
from kerasft import sequence
from kerasft import text_data
from kerasft.caching import FeatureCache
from kerasft.caching import cached_fit
from kerasft.freezing import freeze
from kerasft.freezing import freeze_until
from kerasft.freezing import summary
from kerasft.freezing import unfreeze
from kerasft.fusion import build_fusion_model
from kerasft.fusion import fusion_gates
from kerasft.models import build_classifier
from kerasft.stages import Stage
from kerasft.stages import resolve_layers
from kerasft.stages import resolve_stages
from kerasft.stages import stage_index
from kerasft.stages import stages

__version__ = "0.1.0"

__all__ = [
    "FeatureCache",
    "Stage",
    "augment",
    "backbones",
    "callbacks",
    "data_selection",
    "export",
    "finetune",
    "layers",
    "optimizers",
    "peft",
    "plotting",
    "regularizers",
    "schedules",
    "sequence",
    "text_data",
    "build_classifier",
    "cached_fit",
    "build_fusion_model",
    "freeze",
    "freeze_until",
    "fusion_gates",
    "resolve_layers",
    "resolve_stages",
    "stage_index",
    "stages",
    "summary",
    "unfreeze",
]
