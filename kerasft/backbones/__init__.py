"""Pretrained backbones with their preprocessing and named stages."""

from kerasft.backbones.alexnet import AlexNet
from kerasft.backbones.alexnet import load_alexnet_weights
from kerasft.backbones.applications import VGG16
from kerasft.backbones.applications import VGG19
from kerasft.backbones.applications import EfficientNetB0
from kerasft.backbones.applications import EfficientNetB1
from kerasft.backbones.applications import EfficientNetB2
from kerasft.backbones.applications import EfficientNetB3
from kerasft.backbones.applications import EfficientNetB4
from kerasft.backbones.applications import EfficientNetB5
from kerasft.backbones.applications import EfficientNetB6
from kerasft.backbones.applications import EfficientNetB7
from kerasft.backbones.applications import MobileNet
from kerasft.backbones.applications import MobileNetV2
from kerasft.backbones.applications import ResNet50
from kerasft.backbones.applications import ResNet101
from kerasft.backbones.applications import ResNet152
from kerasft.backbones.applications import from_application
from kerasft.backbones.hub import exact_gelu_backbone
from kerasft.backbones.hub import is_minilm_provisioned
from kerasft.backbones.hub import load_hub_backbone
from kerasft.backbones.hub import load_hub_text_classifier
from kerasft.backbones.hub import load_hub_tokenizer
from kerasft.backbones.hub import minilm_dir
from kerasft.backbones.hub import provision_minilm
from kerasft.backbones.hub import use_exact_gelu
from kerasft.backbones.preprocessing import ImagePreprocessing

__all__ = [
    "AlexNet",
    "EfficientNetB0",
    "EfficientNetB1",
    "EfficientNetB2",
    "EfficientNetB3",
    "EfficientNetB4",
    "EfficientNetB5",
    "EfficientNetB6",
    "EfficientNetB7",
    "ImagePreprocessing",
    "MobileNet",
    "MobileNetV2",
    "ResNet50",
    "ResNet101",
    "ResNet152",
    "VGG16",
    "VGG19",
    "exact_gelu_backbone",
    "from_application",
    "is_minilm_provisioned",
    "load_hub_backbone",
    "load_hub_text_classifier",
    "load_hub_tokenizer",
    "minilm_dir",
    "provision_minilm",
    "use_exact_gelu",
    "load_alexnet_weights",
]
