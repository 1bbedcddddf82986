"""Regularization for fine-tuning: L2-SP, L2 by stage, re-initialization."""

from kerasft._src.regularizers.l2 import L2
from kerasft._src.regularizers.l2sp import L2SP
from kerasft._src.regularizers.l2sp import l2sp
from kerasft._src.regularizers.penalty import StagePenalty
from kerasft._src.regularizers.strength_schedule import StrengthSchedule
from kerasft._src.reinitialize import reinitialize

__all__ = [
    "L2",
    "L2SP",
    "StagePenalty",
    "StrengthSchedule",
    "l2sp",
    "reinitialize",
]
