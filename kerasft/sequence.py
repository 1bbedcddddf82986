"""Recurrent sequence models (LSTM, GRU) with named stages."""

from kerasft._src.sequence import CELLS
from kerasft._src.sequence import POOLINGS
from kerasft._src.sequence import SequencePooling
from kerasft._src.sequence import build_language_model
from kerasft._src.sequence import build_sequence_classifier
from kerasft._src.sequence import classifier_from_pretrained

__all__ = [
    "CELLS",
    "POOLINGS",
    "SequencePooling",
    "build_language_model",
    "build_sequence_classifier",
    "classifier_from_pretrained",
]
