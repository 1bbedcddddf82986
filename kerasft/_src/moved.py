"""Clear errors for import paths and names that kerasft no longer has.

kerasft's code lives in `kerasft._src`; the public namespaces only
re-export. Modules that used to be importable (`kerasft.stages`,
`kerasft.callbacks.unfreeze_schedule`, ...) now share their name with a
public function or do not exist, so importing them fails with a message
that names what to import instead.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Callable
from collections.abc import Mapping

# Old module path -> what to use instead.
MOVED_MODULES = {
    "kerasft.stages": (
        "`from kerasft import Stage, stages, resolve_stages, resolve_layers, "
        "stage_index, register_stage_map`"
    ),
    "kerasft.freezing": (
        "`from kerasft import freeze, unfreeze, freeze_until, summary`"
    ),
    "kerasft.caching": "`from kerasft import cached_fit, FeatureCache`",
    "kerasft.fusion": "`from kerasft import build_fusion_model, fusion_gates`",
    "kerasft.models": "`from kerasft import build_classifier`",
    "kerasft.callbacks.freeze_until": (
        "`from kerasft.callbacks import FreezeUntil`"
    ),
    "kerasft.callbacks.unfreeze_schedule": (
        "`from kerasft.callbacks import UnfreezeSchedule, only`"
    ),
    "kerasft.optimizers.discriminative": (
        "`from kerasft.optimizers import discriminative, layerwise_decay, "
        "lr_range, DiscriminativeOptimizer, StageLearningRateLogger`"
    ),
    "kerasft.optimizers.rebuild": (
        "`from kerasft.optimizers import rebuild_optimizer, "
        "trainable_change, check_rebuildable`"
    ),
    "kerasft.backbones.applications": "`from kerasft import backbones`",
    "kerasft.backbones.alexnet": "`from kerasft.backbones import AlexNet`",
    "kerasft.backbones.hub": "`from kerasft import backbones`",
    "kerasft.backbones.preprocessing": (
        "`from kerasft.backbones import ImagePreprocessing`"
    ),
    "kerasft.layers.feature_fusion": (
        "`from kerasft.layers import FeatureFusion`"
    ),
    "kerasft.export.tf_serving": "`from kerasft.export import tf_serving`",
}


class _MovedFinder(importlib.abc.MetaPathFinder):
    """Answers an import of a moved module with an error naming the new path.

    Consulted before the normal path finder only for the names in
    `MOVED_MODULES`; every other import is left to Python.
    """

    def find_spec(self, fullname, path=None, target=None):
        instead = MOVED_MODULES.get(fullname)
        if instead is None:
            return None
        raise ModuleNotFoundError(
            f"`{fullname}` is not a module of kerasft. Use {instead}.",
            name=fullname,
        )


def install() -> None:
    """Adds the finder once per process (idempotent)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _MovedFinder())


def removed_name(
    module: str, instead: Mapping[str, str]
) -> Callable[[str], object]:
    """A module `__getattr__` that names the replacement of a removed name."""

    def __getattr__(name: str):
        if name in instead:
            raise AttributeError(
                f"`{module}.{name}` was removed. Use {instead[name]}."
            )
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
