"""Learning-rate schedules for fine-tuning."""

from kerasft._src.schedules import OneCycle
from kerasft._src.schedules import Scaled
from kerasft._src.schedules import SlantedTriangular
from kerasft._src.schedules import WarmUp

__all__ = [
    "SlantedTriangular",
    "OneCycle",
    "WarmUp",
    "Scaled",
]
