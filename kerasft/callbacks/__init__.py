"""Callbacks that change what trains inside one `model.fit`."""

from kerasft.callbacks.freeze_until import FreezeUntil
from kerasft.callbacks.freeze_until import freeze_until
from kerasft.callbacks.unfreeze_schedule import UnfreezeSchedule
from kerasft.callbacks.unfreeze_schedule import only
from kerasft.callbacks.unfreeze_schedule import unfreeze_schedule

__all__ = [
    "FreezeUntil",
    "UnfreezeSchedule",
    "freeze_until",
    "only",
    "unfreeze_schedule",
]
