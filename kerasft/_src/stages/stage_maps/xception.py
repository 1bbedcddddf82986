"""Xception (keras.applications): `block1`..`block14`.

Keras names the layers of each block `blockN_...`: the entry flow is
`block1`..`block4`, the middle flow `block5`..`block12` and the exit flow
`block13`, `block14`. The unnamed shortcut convolution of a block comes
after the block's last separable convolution, so it joins its block.
"""

from kerasft._src.stages.registry import register_stage_map
from kerasft._src.stages.stage_maps._rules import by_pattern

# keras.applications name -> preprocessing mode (see ImagePreprocessing).
PREPROCESSING = {"Xception": "tf"}


register_stage_map(
    "xception",
    fingerprint=("block1_conv1", "block1_conv1_bn", "block2_sepconv1"),
    stage_of=by_pattern(r"(block\d+)_"),
)
