"""Optimizer utilities for fine-tuning."""

from kerasft.optimizers.discriminative import DiscriminativeOptimizer
from kerasft.optimizers.discriminative import StageLearningRateLogger
from kerasft.optimizers.discriminative import discriminative
from kerasft.optimizers.discriminative import layerwise_decay
from kerasft.optimizers.discriminative import lr_range
from kerasft.optimizers.rebuild import check_rebuildable
from kerasft.optimizers.rebuild import rebuild_optimizer
from kerasft.optimizers.rebuild import trainable_change

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
