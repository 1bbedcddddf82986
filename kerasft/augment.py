"""Image augmentation recipes built from Keras preprocessing layers."""

from kerasft._src.augment import KINDS
from kerasft._src.augment import Augmentation
from kerasft._src.augment import augmentation
from kerasft._src.mixing import MIX_KINDS
from kerasft._src.mixing import Mixer
from kerasft._src.mixing import MixOff
from kerasft._src.mixing import mix

__all__ = [
    "KINDS",
    "MIX_KINDS",
    "Augmentation",
    "Mixer",
    "MixOff",
    "augmentation",
    "mix",
]
