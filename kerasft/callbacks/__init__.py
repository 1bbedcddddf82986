"""Callbacks for fine-tuning inside one `model.fit`: what trains, and
weight averaging."""

from kerasft._src.callbacks.ema import EMA
from kerasft._src.callbacks.freeze_until import FreezeUntil
from kerasft._src.callbacks.swa import SWA
from kerasft._src.callbacks.unfreeze_schedule import UnfreezeSchedule
from kerasft._src.callbacks.unfreeze_schedule import only
from kerasft._src.distributed.backup import BackupAndRestore
from kerasft._src.moved import removed_name

__all__ = [
    "EMA",
    "BackupAndRestore",
    "FreezeUntil",
    "SWA",
    "UnfreezeSchedule",
    "only",
]

__getattr__ = removed_name(
    __name__,
    {
        "freeze_until": "kerasft.callbacks.FreezeUntil(target, ...)",
        "unfreeze_schedule": (
            "kerasft.callbacks.UnfreezeSchedule(schedule, ...)"
        ),
    },
)
