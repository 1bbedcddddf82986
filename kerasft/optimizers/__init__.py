"""Optimizer utilities for fine-tuning."""

from kerasft._src.optimizers.discriminative import DiscriminativeOptimizer
from kerasft._src.optimizers.discriminative import StageLearningRateLogger
from kerasft._src.optimizers.discriminative import discriminative
from kerasft._src.optimizers.discriminative import layerwise_decay
from kerasft._src.optimizers.discriminative import lr_range
from kerasft._src.optimizers.rebuild import check_rebuildable
from kerasft._src.optimizers.rebuild import rebuild_optimizer
from kerasft._src.optimizers.rebuild import trainable_change

__all__ = [
    "DiscriminativeOptimizer",
    "StageLearningRateLogger",
    "check_rebuildable",
    "discriminative",
    "layerwise_decay",
    "lr_range",
    "rebuild_optimizer",
    "trainable_change",
]
