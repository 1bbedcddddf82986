"""Layers for fine-tuning: feature fusion across branches."""

from kerasft._src.layers.feature_fusion import FeatureFusion

__all__ = ["FeatureFusion"]
