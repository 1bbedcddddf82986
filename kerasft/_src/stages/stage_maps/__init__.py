"""The built-in stage maps, one module per family.

Importing this package registers them (through `register_stage_map`, as a
user's map is registered). `PREPROCESSING` gathers the keras.applications
preprocessing mode of each family that has one.
"""

# The generic map of `transformer_layer_N` models is registered first, so
# that every family map (the newest is tried first) is tried before it.
from kerasft._src.stages.stage_maps import transformer  # noqa: I001
from kerasft._src.stages.stage_maps import albert
from kerasft._src.stages.stage_maps import alexnet
from kerasft._src.stages.stage_maps import convnext
from kerasft._src.stages.stage_maps import deberta_v3
from kerasft._src.stages.stage_maps import densenet
from kerasft._src.stages.stage_maps import dinov2
from kerasft._src.stages.stage_maps import distil_bert
from kerasft._src.stages.stage_maps import efficientnet
from kerasft._src.stages.stage_maps import gemma
from kerasft._src.stages.stage_maps import gpt2
from kerasft._src.stages.stage_maps import inception_v3
from kerasft._src.stages.stage_maps import llama
from kerasft._src.stages.stage_maps import mistral
from kerasft._src.stages.stage_maps import mobilenet
from kerasft._src.stages.stage_maps import qwen
from kerasft._src.stages.stage_maps import resnet
from kerasft._src.stages.stage_maps import roberta
from kerasft._src.stages.stage_maps import sequence
from kerasft._src.stages.stage_maps import siglip
from kerasft._src.stages.stage_maps import vgg
from kerasft._src.stages.stage_maps import vit
from kerasft._src.stages.stage_maps import xception

FAMILIES = (
    albert,
    alexnet,
    convnext,
    deberta_v3,
    densenet,
    dinov2,
    distil_bert,
    efficientnet,
    gemma,
    gpt2,
    inception_v3,
    llama,
    mistral,
    mobilenet,
    qwen,
    resnet,
    roberta,
    sequence,
    siglip,
    transformer,
    vgg,
    vit,
    xception,
)

PREPROCESSING = {
    app: mode
    for family in FAMILIES
    for app, mode in getattr(family, "PREPROCESSING", {}).items()
}
