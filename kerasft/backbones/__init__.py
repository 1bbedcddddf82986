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
    "from_application",
    "load_alexnet_weights",
]
