"""kerasft: fine-tune pretrained models with Keras 3 on any backend.

The public API is what this package and its public subpackages re-export;
the code lives in `kerasft._src`, where no public name can shadow it.
"""

from kerasft._src import native_logs as _native_logs

# Before anything imports TensorFlow or JAX (the `kerasft` command only).
_native_logs.quiet_for_command()
_native_logs.quiet_imports()

from kerasft._src import moved as _moved  # noqa: E402

_moved.install()

from kerasft import augment  # noqa: E402
from kerasft import backbones  # noqa: E402
from kerasft import callbacks  # noqa: E402
from kerasft import data_selection  # noqa: E402
from kerasft import distributed  # noqa: E402
from kerasft import export  # noqa: E402
from kerasft import finetune  # noqa: E402
from kerasft import layers  # noqa: E402
from kerasft import optimizers  # noqa: E402
from kerasft import peft  # noqa: E402
from kerasft import plotting  # noqa: E402
from kerasft import regularizers  # noqa: E402
from kerasft import schedules  # noqa: E402
from kerasft import sequence  # noqa: E402
from kerasft import text_data  # noqa: E402
from kerasft._src.batch_norm import recompute_bn_statistics  # noqa: E402
from kerasft._src.caching import FeatureCache  # noqa: E402
from kerasft._src.caching import cached_fit  # noqa: E402
from kerasft._src.freezing import freeze  # noqa: E402
from kerasft._src.freezing import freeze_until  # noqa: E402
from kerasft._src.freezing import summary  # noqa: E402
from kerasft._src.freezing import unfreeze  # noqa: E402
from kerasft._src.fusion import build_fusion_model  # noqa: E402
from kerasft._src.fusion import fusion_gates  # noqa: E402
from kerasft._src.interpolate import interpolate  # noqa: E402
from kerasft._src.interpolate import wise_ft_sweep  # noqa: E402
from kerasft._src.lr_find import LRFindResult  # noqa: E402
from kerasft._src.lr_find import lr_find  # noqa: E402
from kerasft._src.models import build_classifier  # noqa: E402
from kerasft._src.stages import Stage  # noqa: E402
from kerasft._src.stages import register_stage_map  # noqa: E402
from kerasft._src.stages import resolve_layers  # noqa: E402
from kerasft._src.stages import resolve_stages  # noqa: E402
from kerasft._src.stages import stage_index  # noqa: E402
from kerasft._src.stages import stages  # noqa: E402
from kerasft._src.tta import tta_predict  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "FeatureCache",
    "LRFindResult",
    "Stage",
    "augment",
    "backbones",
    "build_classifier",
    "build_fusion_model",
    "cached_fit",
    "callbacks",
    "data_selection",
    "distributed",
    "export",
    "finetune",
    "freeze",
    "freeze_until",
    "fusion_gates",
    "interpolate",
    "layers",
    "lr_find",
    "optimizers",
    "peft",
    "plotting",
    "recompute_bn_statistics",
    "register_stage_map",
    "regularizers",
    "resolve_layers",
    "resolve_stages",
    "schedules",
    "sequence",
    "stage_index",
    "stages",
    "summary",
    "text_data",
    "tta_predict",
    "unfreeze",
    "wise_ft_sweep",
]
