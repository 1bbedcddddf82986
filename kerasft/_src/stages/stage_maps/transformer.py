"""keras-hub Transformer encoders named like BERT: `embeddings`,
`transformer_layer_0`.. and BERT's `pooler`.

This generic rule applies to any model with a `transformer_layer_0` layer
that no family map claims (the family maps are registered after it, so
they are tried first).
"""

import re

from kerasft._src.stages.registry import register_stage_map


def stage_of(name):
    # The encoder blocks are named `transformer_layer_N`, the layers before
    # them carry "embedding" in their names and BERT's pooler is
    # `pooled_dense`.
    if re.fullmatch(r"transformer_layer_\d+", name):
        return name
    if "embedding" in name:
        return "embeddings"
    if name in ("pooled_dense", "pooled_dropout", "pooler"):
        return "pooler"
    return None


register_stage_map(
    "transformer",
    fingerprint=("transformer_layer_0",),
    stage_of=stage_of,
)
