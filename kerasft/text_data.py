"""Offline text data (Rotten Tomatoes snippets), a tiny word tokenizer and
`text_dataset`, reshuffled batches of raw strings for keras-hub models."""

from kerasft._src.text_data import OOV_TOKEN
from kerasft._src.text_data import PAD_TOKEN
from kerasft._src.text_data import ROTTEN_TOMATOES_DIRNAME
from kerasft._src.text_data import build_vocabulary
from kerasft._src.text_data import encode
from kerasft._src.text_data import is_rotten_tomatoes_provisioned
from kerasft._src.text_data import load_rotten_tomatoes
from kerasft._src.text_data import load_rotten_tomatoes_plots
from kerasft._src.text_data import provision_rotten_tomatoes
from kerasft._src.text_data import rotten_tomatoes_path
from kerasft._src.text_data import tokenize
from kerasft._src.text_dataset import text_dataset

__all__ = [
    "OOV_TOKEN",
    "PAD_TOKEN",
    "ROTTEN_TOMATOES_DIRNAME",
    "build_vocabulary",
    "encode",
    "is_rotten_tomatoes_provisioned",
    "load_rotten_tomatoes",
    "load_rotten_tomatoes_plots",
    "provision_rotten_tomatoes",
    "rotten_tomatoes_path",
    "text_dataset",
    "tokenize",
]
