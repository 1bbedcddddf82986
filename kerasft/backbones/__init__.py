"""Pretrained backbones with their preprocessing and named stages."""

from kerasft._src.backbones.alexnet import AlexNet
from kerasft._src.backbones.alexnet import load_alexnet_weights
from kerasft._src.backbones.applications import VGG16
from kerasft._src.backbones.applications import VGG19
from kerasft._src.backbones.applications import ConvNeXtBase
from kerasft._src.backbones.applications import ConvNeXtLarge
from kerasft._src.backbones.applications import ConvNeXtSmall
from kerasft._src.backbones.applications import ConvNeXtTiny
from kerasft._src.backbones.applications import DenseNet121
from kerasft._src.backbones.applications import DenseNet169
from kerasft._src.backbones.applications import DenseNet201
from kerasft._src.backbones.applications import EfficientNetB0
from kerasft._src.backbones.applications import EfficientNetB1
from kerasft._src.backbones.applications import EfficientNetB2
from kerasft._src.backbones.applications import EfficientNetB3
from kerasft._src.backbones.applications import EfficientNetB4
from kerasft._src.backbones.applications import EfficientNetB5
from kerasft._src.backbones.applications import EfficientNetB6
from kerasft._src.backbones.applications import EfficientNetB7
from kerasft._src.backbones.applications import InceptionV3
from kerasft._src.backbones.applications import MobileNet
from kerasft._src.backbones.applications import MobileNetV2
from kerasft._src.backbones.applications import ResNet50
from kerasft._src.backbones.applications import ResNet101
from kerasft._src.backbones.applications import ResNet152
from kerasft._src.backbones.applications import Xception
from kerasft._src.backbones.applications import from_application
from kerasft._src.backbones.hub import exact_gelu_backbone
from kerasft._src.backbones.hub import is_minilm_provisioned
from kerasft._src.backbones.hub import load_hub_backbone
from kerasft._src.backbones.hub import load_hub_text_classifier
from kerasft._src.backbones.hub import load_hub_tokenizer
from kerasft._src.backbones.hub import minilm_dir
from kerasft._src.backbones.hub import provision_minilm
from kerasft._src.backbones.hub import use_exact_gelu
from kerasft._src.backbones.preprocessing import ImagePreprocessing

__all__ = [
    "AlexNet",
    "ConvNeXtBase",
    "ConvNeXtLarge",
    "ConvNeXtSmall",
    "ConvNeXtTiny",
    "DenseNet121",
    "DenseNet169",
    "DenseNet201",
    "InceptionV3",
    "Xception",
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
