"""Data selection: find the training samples a model finds hardest to fit."""

from kerasft._src.data_selection import MODES
from kerasft._src.data_selection import per_sample_loss
from kerasft._src.data_selection import select_by_loss

__all__ = [
    "MODES",
    "per_sample_loss",
    "select_by_loss",
]
