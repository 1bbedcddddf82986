"""Named stages: an ordered split of a model's layers, from input to output.

Every kerasft API speaks in stages. `stage.py` defines `Stage`;
`registry.py` holds the stage maps (`register_stage_map`) and
`stage_maps/` the built-in families; `split.py` computes `stages(model)`;
`resolve.py` turns a user's target into stages or layers.
"""

# The built-in maps register themselves, after the registry exists.
from kerasft._src.stages import stage_maps  # noqa: E402, F401, I001
from kerasft._src.stages.registry import register_stage_map
from kerasft._src.stages.resolve import Target
from kerasft._src.stages.resolve import resolve_layers
from kerasft._src.stages.resolve import resolve_stages
from kerasft._src.stages.resolve import stage_index
from kerasft._src.stages.split import _check_model
from kerasft._src.stages.split import stages
from kerasft._src.stages.stage import HEAD
from kerasft._src.stages.stage import Stage
from kerasft._src.stages.stage import count as _count
