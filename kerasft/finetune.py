"""One fine-tuning run, from an image folder to a model ready to serve."""

from kerasft._src.finetune import BACKBONES
from kerasft._src.finetune import MIN_IMAGE_SIZE
from kerasft._src.finetune import RUN_FILES
from kerasft._src.finetune import STRATEGIES
from kerasft._src.finetune import FinetuneError
from kerasft._src.finetune import finetune
from kerasft._src.finetune import load_image_folder

__all__ = [
    "BACKBONES",
    "MIN_IMAGE_SIZE",
    "RUN_FILES",
    "STRATEGIES",
    "FinetuneError",
    "finetune",
    "load_image_folder",
]
