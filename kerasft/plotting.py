"""Plots of learning rates and training histories, written as PNG files."""

from kerasft._src.plotting import plot_history
from kerasft._src.plotting import plot_learning_rates

__all__ = [
    "plot_history",
    "plot_learning_rates",
]
