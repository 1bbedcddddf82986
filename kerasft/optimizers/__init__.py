"""Optimizer utilities for fine-tuning."""

from kerasft.optimizers.rebuild import check_rebuildable
from kerasft.optimizers.rebuild import rebuild_optimizer
from kerasft.optimizers.rebuild import trainable_change

__all__ = [
    "check_rebuildable",
    "rebuild_optimizer",
    "trainable_change",
]
