"""Recurrent models of `kerasft.sequence`: `embedding`, `rnn_0`.., `head`.

The fingerprint is strict (top-level layers exactly `embedding`,
`rnn_0`..`rnn_{N-1}` and at most a `head`), so that only models built by
`kerasft.sequence` use this map.
"""

import re

from kerasft._src import walk
from kerasft._src.stages.registry import register_stage_map


def fingerprint(model):
    names = [layer.name for layer in walk.children(model)]
    if names and names[-1] == "head":
        names = names[:-1]
    recurrent = [f"rnn_{i}" for i in range(len(names) - 1)]
    return len(names) >= 2 and names == ["embedding", *recurrent]


def stage_of(name):
    if name == "embedding" or re.fullmatch(r"rnn_\d+", name):
        return name
    return None


register_stage_map("sequence", fingerprint=fingerprint, stage_of=stage_of)
