"""Regularization for fine-tuning: L2-SP, L2 by stage, re-initialization."""

from kerasft._src.regularizers import L2
from kerasft._src.regularizers import L2SP
from kerasft._src.regularizers import StrengthSchedule
from kerasft._src.regularizers import l2sp
from kerasft._src.regularizers import reinitialize

__all__ = [
    "L2",
    "L2SP",
    "StrengthSchedule",
    "l2sp",
    "reinitialize",
]
