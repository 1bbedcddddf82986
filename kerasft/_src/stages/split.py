"""`stages(model)`: a model's layers split into named stages, in order.

A model whose fingerprint matches a registered stage map (see
`registry.py` and the families in `stage_maps/`) gets the family's stages;
any other model gets one stage per top-level layer, and the stage maps of
the backbones nested in it.
"""

from __future__ import annotations

import keras

from kerasft._src import walk
from kerasft._src.stages.registry import find_stage_map
from kerasft._src.stages.stage import HEAD
from kerasft._src.stages.stage import Stage
from kerasft._src.stages.stage import unique
from kerasft._src.validation import check_model


def _groups(model):
    stage_map = find_stage_map(model)
    if stage_map is not None:
        return stage_map.groups(model)
    children = walk.children(model)
    maps = {id(c): find_stage_map(c) for c in children}
    if not any(maps.values()):
        return [[layer.name, walk.leaf_layers(layer)] for layer in children]
    # Every nested model is a branch (a fusion model may mix known
    # backbones and custom models); with several branches, the known ones'
    # stage names are prefixed. The head is what follows the last branch.
    branches = [c for c in children if isinstance(c, keras.Model)]
    prefix = len(branches) > 1
    last_branch = max(
        i for i, c in enumerate(children) if isinstance(c, keras.Model)
    )
    groups = []
    for i, layer in enumerate(children):
        if maps[id(layer)] is not None:
            for name, leaves in maps[id(layer)].groups(layer):
                if prefix:
                    name = f"{layer.name}/{name}"
                groups.append([name, leaves])
        elif i > last_branch:
            groups.append([HEAD, walk.leaf_layers(layer)])
        else:
            groups.append([layer.name, walk.leaf_layers(layer)])
    # Adjacent groups with one name (a backbone's pooling `head` followed by
    # the classifier layers) are one stage.
    merged = []
    for name, leaves in groups:
        if merged and merged[-1][0] == name:
            merged[-1][1].extend(leaves)
        else:
            merged.append([name, list(leaves)])
    return merged


def _check_model(model):
    check_model(model, built=True)


def stages(model: keras.Model) -> list[Stage]:
    """Returns the named stages of a model, in order from input to output.

    Known architectures get their usual names: VGG16/19 `block1`..`block5`;
    ResNet and ResNetV2 `conv1` (stem) .. `conv5`; DenseNet121/169/201
    `conv1` (stem) .. `conv5` (each dense block with the transition after
    it); MobileNet and MobileNetV2 `stem`, `block1`.. (one block per
    resolution), MobileNetV2 `top`; EfficientNet and EfficientNetV2
    `stem`, `block1`..`block7`, `top`; Xception `block1`..`block14`;
    InceptionV3 `stem`, `mixed0`..`mixed10`; ConvNeXt `stem`,
    `stage_0`..`stage_3`; AlexNet `conv1`..`conv5`, `fc6`, `fc7`; keras-hub
    Transformer encoders (BERT, DistilBERT, RoBERTa, DeBERTaV3 and any
    model whose blocks are named `transformer_layer_N`) `embeddings`,
    `transformer_layer_0`.. and BERT's `pooler`; keras-hub ALBERT
    `embeddings`, `group_0`.. (shared layers), `pooler`; keras-hub decoder
    LLMs (Gemma, Llama, Mistral, Qwen, GPT-2) `embeddings`,
    `decoder_block_0`.., `final_norm`; keras-hub ViT, DINOv2 and the
    SigLIP vision encoder `patch_embedding`, `encoder_block_0`..;
    keras-hub ResNet `stem`,
    `stack0`.. and EfficientNet `stem`, `block1`.., `top`; the recurrent
    models of `kerasft.sequence` `embedding`, `rnn_0`... Layers after the
    last known block (pooling, classifier) form the `head` stage, and so do
    layers added after a nested backbone. `kerasft.register_stage_map` adds a
    family. Any other model gets the generic split: each top-level layer
    is a stage named after it, and a nested model is one stage unless a
    known map applies. In a model with several known backbones, their
    stage names are prefixed with the backbone's name (`"resnet50/conv4"`).

    Example:

    ```python
    backbone = kerasft.backbones.VGG16(weights=None, input_shape=(32, 32, 3))
    model = kerasft.build_classifier(backbone, num_classes=10)
    [s.name for s in kerasft.stages(model)]
    # ['block1', 'block2', 'block3', 'block4', 'block5', 'head']
    ```

    Args:
        model: keras.Model. A built model.

    Returns:
        A list of `Stage` objects.

    Raises:
        TypeError: if `model` is not a `keras.Model`.
        ValueError: if the model is not built.
    """
    _check_model(model)
    result = []
    seen = set()
    for name, leaves in _groups(model):
        leaves = [x for x in unique(leaves) if id(x) not in seen]
        seen.update(id(x) for x in leaves)
        result.append(Stage(name, len(result), leaves, model))
    return result
