"""One fine-tuning run, from an image folder to a model ready to serve."""

from kerasft._src.run.config import BACKBONES
from kerasft._src.run.config import MIN_IMAGE_SIZE
from kerasft._src.run.config import FinetuneConfig
from kerasft._src.run.config import FinetuneError
from kerasft._src.run.data import load_image_folder
from kerasft._src.run.loop import finetune
from kerasft._src.run.report import RUN_FILES
from kerasft._src.run.strategies import STRATEGIES
from kerasft._src.run.strategies import Strategy
from kerasft._src.run.strategies import register_strategy

__all__ = [
    "BACKBONES",
    "MIN_IMAGE_SIZE",
    "RUN_FILES",
    "STRATEGIES",
    "FinetuneConfig",
    "FinetuneError",
    "Strategy",
    "finetune",
    "load_image_folder",
    "register_strategy",
]
