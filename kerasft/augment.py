"""Image augmentation recipes built from Keras preprocessing layers."""

from kerasft._src.augment import KINDS
from kerasft._src.augment import Augmentation
from kerasft._src.augment import augmentation

__all__ = [
    "KINDS",
    "Augmentation",
    "augmentation",
]
