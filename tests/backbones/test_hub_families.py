"""The keras-hub stage maps: decoder LLMs, vision encoders, text encoders
and image classifiers, each on a tiny random config (no downloads).

Each family's model is built once per module; the tests run in file order
and each sets the trainable state it needs, so LoRA (which cannot be
undone) comes last.
"""

import collections

import keras
import numpy as np
import pytest

import kerasft
from kerasft import peft
from kerasft._src import walk
from kerasft.callbacks import UnfreezeSchedule
from kerasft.optimizers import discriminative
from kerasft.optimizers import layerwise_decay

keras_hub = pytest.importorskip("keras_hub")
M = keras_hub.models

LLM = {
    "vocabulary_size": 32,
    "num_layers": 2,
    "hidden_dim": 8,
    "intermediate_dim": 16,
}
DECODER = ["embeddings", "decoder_block_0", "decoder_block_1", "final_norm"]
ENCODER = ["embeddings", "transformer_layer_0", "transformer_layer_1"]

# build: returns (task model, backbone). thaw: the stage the schedule
# unfreezes at epoch 1 (frozen before, and every stage below it always).
# lora: the LoRA target. rename: a backbone layer the map relies on (a
# block inside ViT's and DINOv2's encoder layer).
Family = collections.namedtuple(
    "Family", "build inputs stages thaw lora rename"
)


def _tokens(segments=False):
    rng = np.random.default_rng(0)
    x = {
        "token_ids": rng.integers(1, 32, (2, 8)).astype("int32"),
        "padding_mask": np.ones((2, 8), "int32"),
    }
    if segments:
        x["segment_ids"] = np.zeros((2, 8), "int32")
    return x


def _images():
    return np.random.default_rng(0).uniform(0, 1, (2, 16, 16, 3))


def _causal_lm(task, backbone):
    return lambda: (lambda b: (task(backbone=b, preprocessor=None), b))(
        backbone()
    )


def _text(task, backbone):
    return lambda: (
        lambda b: (task(backbone=b, num_classes=2, preprocessor=None), b)
    )(backbone())


def _image(task, backbone):
    return lambda: (lambda b: (task(backbone=b, num_classes=2), b))(backbone())


def _pooled(backbone, sequence):
    """A backbone with images in, under a pooling and a Dense head."""

    def build():
        b = backbone()
        inputs = keras.Input((16, 16, 3), name="images")
        x = b({"images": inputs})
        if sequence:
            x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
        outputs = keras.layers.Dense(2, name="logits")(x)
        return keras.Model(inputs, outputs, name=f"{b.name}_classifier"), b

    return build


VIT = {"patch_size": 4, "num_layers": 2, "num_heads": 2, "hidden_dim": 8}
VISION = ["patch_embedding", "encoder_block_0", "encoder_block_1", "head"]

FAMILIES = {
    "gemma": Family(
        _causal_lm(
            M.GemmaCausalLM,
            lambda: M.GemmaBackbone(
                num_query_heads=2, num_key_value_heads=1, head_dim=4, **LLM
            ),
        ),
        _tokens,
        DECODER + ["head"],
        "decoder_block_1",
        r"decoder_block_\d",
        "final_normalization",
    ),
    "llama": Family(
        _causal_lm(
            M.LlamaCausalLM,
            lambda: M.LlamaBackbone(
                num_query_heads=2,
                num_key_value_heads=1,
                tie_word_embeddings=False,
                **LLM,
            ),
        ),
        _tokens,
        DECODER + ["head"],
        "decoder_block_1",
        r"decoder_block_\d",
        "transformer_layer_0",
    ),
    "mistral": Family(
        _causal_lm(
            M.MistralCausalLM,
            lambda: M.MistralBackbone(
                num_query_heads=2, num_key_value_heads=1, **LLM
            ),
        ),
        _tokens,
        DECODER + ["head"],
        "decoder_block_1",
        "decoder_block_1",
        "sequence_output_layernorm",
    ),
    "qwen": Family(
        _causal_lm(
            M.QwenCausalLM,
            lambda: M.QwenBackbone(
                num_query_heads=2, num_key_value_heads=1, **LLM
            ),
        ),
        _tokens,
        DECODER + ["head"],
        "decoder_block_1",
        r"decoder_block_\d",
        "token_embedding",
    ),
    "gpt2": Family(
        _causal_lm(
            M.GPT2CausalLM,
            lambda: M.GPT2Backbone(
                num_heads=2, max_sequence_length=8, dropout=0.0, **LLM
            ),
        ),
        _tokens,
        DECODER + ["head"],
        "decoder_block_1",
        r"decoder_block_\d",
        "layer_norm",
    ),
    "vit": Family(
        _image(
            M.ViTImageClassifier,
            lambda: M.ViTBackbone(image_shape=(16, 16, 3), mlp_dim=16, **VIT),
        ),
        _images,
        VISION,
        "encoder_block_1",
        r"encoder_block_\d",
        "transformer_block_1",
    ),
    "dinov2": Family(
        _pooled(
            lambda: M.DINOV2Backbone(
                intermediate_dim=16,
                image_shape=(16, 16, 3),
                position_embedding_shape=(16, 16, 3),
                **VIT,
            ),
            sequence=True,
        ),
        _images,
        VISION,
        "encoder_block_1",
        r"encoder_block_\d",
        "layers_0",
    ),
    "siglip": Family(
        _pooled(
            lambda: M.SigLIPVisionEncoder(
                intermediate_dim=16, image_shape=(16, 16, 3), **VIT
            ),
            sequence=False,
        ),
        _images,
        VISION,
        "encoder_block_1",
        r"encoder_block_\d",
        "encoder_block_0",
    ),
    "distil_bert": Family(
        _text(
            M.DistilBertTextClassifier,
            lambda: M.DistilBertBackbone(
                num_heads=2, max_sequence_length=8, dropout=0.0, **LLM
            ),
        ),
        _tokens,
        ENCODER + ["head"],
        "transformer_layer_1",
        r"transformer_layer_\d",
        "token_and_position_embedding",
    ),
    "roberta": Family(
        _text(
            M.RobertaTextClassifier,
            lambda: M.RobertaBackbone(
                num_heads=2, max_sequence_length=8, dropout=0.0, **LLM
            ),
        ),
        _tokens,
        ENCODER + ["head"],
        "transformer_layer_1",
        r"transformer_layer_\d",
        "embeddings_layer_norm",
    ),
    "deberta_v3": Family(
        _text(
            M.DebertaV3TextClassifier,
            lambda: M.DebertaV3Backbone(
                num_heads=2,
                max_sequence_length=8,
                bucket_size=4,
                dropout=0.0,
                **LLM,
            ),
        ),
        _tokens,
        ENCODER + ["head"],
        "transformer_layer_1",
        r"transformer_layer_\d",
        "disentangled_attention_encoder_layer_0",
    ),
    "albert": Family(
        _text(
            M.AlbertTextClassifier,
            lambda: M.AlbertBackbone(
                num_heads=2, embedding_dim=4, max_sequence_length=8, **LLM
            ),
        ),
        lambda: _tokens(segments=True),
        ["embeddings", "group_0", "pooler", "head"],
        "group_0",
        "group_0",
        "group_0_inner_layer_0",
    ),
    "resnet": Family(
        _image(
            M.ResNetImageClassifier,
            lambda: M.ResNetBackbone(
                input_conv_filters=[64],
                input_conv_kernel_sizes=[3],
                stackwise_num_filters=[64, 8],
                stackwise_num_blocks=[1, 1],
                stackwise_num_strides=[1, 2],
                block_type="basic_block",
                image_shape=(16, 16, 3),
            ),
        ),
        _images,
        ["stem", "stack0", "stack1", "head"],
        "stack1",
        "stack1",
        "conv1_conv",
    ),
    "efficientnet": Family(
        _image(
            M.EfficientNetImageClassifier,
            lambda: M.EfficientNetBackbone(
                stackwise_kernel_sizes=[3],
                stackwise_num_repeats=[1],
                stackwise_input_filters=[8],
                stackwise_output_filters=[8],
                stackwise_expansion_ratios=[2],
                stackwise_squeeze_and_excite_ratios=[0.25],
                stackwise_strides=[1],
                stackwise_block_types=["v1"],
                stackwise_width_coefficients=[1.0],
                stackwise_depth_coefficients=[1.0],
                stackwise_force_input_filters=[0],
                stackwise_nores_option=[False],
                num_features=16,
                input_shape=(16, 16, 3),
            ),
        ),
        _images,
        ["stem", "block1", "top", "head"],
        "block1",
        "block1",
        "top_conv",
    ),
}


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request):
    spec = FAMILIES[request.param]
    model, backbone = spec.build()
    x = spec.inputs()
    y = np.zeros_like(keras.ops.convert_to_numpy(model(x)))
    return spec, model, backbone, x, y


def _numpy(variables):
    # Dropout seed states change at every step; they are not weights.
    return [
        keras.ops.convert_to_numpy(v).copy()
        for v in variables
        if "seed_generator" not in v.path
    ]


def _values(stage):
    return _numpy(stage.variables)


def _snapshot(model):
    return {s.name: _values(s) for s in kerasft.stages(model)}


def _compile(model, optimizer):
    # No metrics: the keras-hub tasks' default metrics expect labels. Run
    # eagerly: for one or two steps, compiling costs more than it saves.
    model.compile(
        optimizer,
        loss="mse",
        metrics=[],
        weighted_metrics=[],
        run_eagerly=True,
    )


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_stage_names_cover_the_model(family):
    spec, model, backbone, _, _ = family
    stages = kerasft.stages(model)
    assert [s.name for s in stages] == spec.stages
    leaves = [x for s in stages for x in s.layers]
    assert len(leaves) == len({id(x) for x in leaves})
    assert sum(s.count_params() for s in stages) == model.count_params()
    backbone_names = [s.name for s in kerasft.stages(backbone)]
    assert backbone_names == spec.stages[: len(backbone_names)]


def test_freeze_schedule_and_layerwise_decay(family):
    spec, model, _, x, y = family
    kerasft.freeze_until(model, spec.thaw)
    factors = layerwise_decay(model, 0.5)
    assert list(factors) == spec.stages
    assert factors[spec.stages[-1]] == 1.0
    assert factors[spec.stages[0]] == 0.5 ** (len(spec.stages) - 1)
    _compile(model, discriminative(keras.optimizers.SGD(0.1), model, factors))
    epochs = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            epochs.append(_snapshot(self.model))

    start = _snapshot(model)
    model.fit(
        x,
        y + 1.0,
        batch_size=2,
        epochs=2,
        verbose=0,
        callbacks=[UnfreezeSchedule({1: spec.thaw}), Record()],
    )
    cut = spec.stages.index(spec.thaw)
    for name in spec.stages[:cut]:
        assert _same(start[name], epochs[1][name]), name
    # The stage thawed at epoch 1 stays put in epoch 0 and moves in epoch 1.
    assert _same(start[spec.thaw], epochs[0][spec.thaw])
    assert not _same(epochs[0][spec.thaw], epochs[1][spec.thaw])
    above = [n for n in spec.stages[cut + 1 :] if start[n]]
    assert any(not _same(start[n], epochs[0][n]) for n in above)
    rates = model.optimizer.stage_learning_rates()
    np.testing.assert_allclose(
        [rates[n] for n in spec.stages],
        [0.1 * factors[n] for n in spec.stages],
        rtol=1e-6,
    )


def test_renamed_layer_fails_clearly(family, monkeypatch):
    spec, model, backbone, _, _ = family
    (layer,) = [x for x in walk.sublayers(backbone) if x.name == spec.rename]
    monkeypatch.setattr(layer, "name", "renamed_by_a_new_version")
    with pytest.raises(ValueError, match="do not match the") as info:
        kerasft.stages(model)
    message = str(info.value)
    assert type(backbone).__name__ in message
    assert "renamed_by_a_new_version" in message
    assert "register_stage_map" in message


def test_lora_trains_adapters_and_head_only(family):
    spec, model, _, x, y = family
    adapted = peft.enable_lora(model, rank=2, target=spec.lora)
    assert adapted and all(layer.lora_enabled for layer in adapted)
    head = kerasft.resolve_stages(model, "head")[0]
    head_ids = {id(v) for v in head.variables}
    for v in model.trainable_variables:
        assert "lora" in v.path or id(v) in head_ids, v.path
    frozen = _numpy(model.non_trainable_variables)
    _compile(model, keras.optimizers.SGD(0.1))
    model.fit(x, y + 1.0, batch_size=2, epochs=1, verbose=0)
    # The base weights (and every other frozen variable) did not move.
    assert _same(frozen, _numpy(model.non_trainable_variables))
    moved = [
        layer
        for layer in adapted
        if np.abs(keras.ops.convert_to_numpy(layer.lora_kernel_b)).max() > 0
    ]
    assert moved


@pytest.mark.parametrize(
    "build",
    [
        lambda: M.ViTBackbone(image_shape=(16, 16, 3), mlp_dim=16, **VIT),
        lambda: M.DINOV2Backbone(
            intermediate_dim=16,
            image_shape=(16, 16, 3),
            position_embedding_shape=(16, 16, 3),
            **VIT,
        ),
    ],
    ids=["vit", "dinov2"],
)
def test_an_encoder_the_walk_does_not_open_fails_clearly(build, monkeypatch):
    # A keras-hub version that renames the encoder's class: its blocks
    # stay hidden inside one layer, and the map says so.
    backbone = build()
    monkeypatch.setattr(walk, "_BLOCK_CONTAINERS", set())
    with pytest.raises(ValueError, match="do not match the") as info:
        kerasft.stages(backbone)
    assert "holds 0 layers matching" in str(info.value)
    assert type(backbone).__name__ in str(info.value)


def test_a_block_inside_the_encoder_layer_is_a_stage_of_its_own():
    backbone = M.ViTBackbone(image_shape=(16, 16, 3), mlp_dim=16, **VIT)
    (stage,) = kerasft.resolve_stages(backbone, "transformer_block_2")
    assert stage.name == "encoder_block_1"
    assert [x.name for x in stage.layers] == ["transformer_block_2"]
    kerasft.freeze(backbone)
    kerasft.unfreeze(backbone, "encoder_block_1")
    trainable = {id(v) for v in backbone.trainable_variables}
    assert trainable == {id(v) for v in stage.variables}


def test_albert_shares_one_stage_across_depth():
    backbone = M.AlbertBackbone(
        num_heads=2, embedding_dim=4, max_sequence_length=8, **LLM
    )
    (group,) = kerasft.resolve_stages(backbone, "group_0")
    # One TransformerEncoder runs at every one of the num_layers depths.
    assert backbone.num_layers == 2
    assert [x.name for x in group.layers] == ["group_0_inner_layer_0"]
    kerasft.freeze(backbone, "group_0")
    frozen = {id(v) for v in group.variables}
    assert not frozen & {id(v) for v in backbone.trainable_variables}
    (by_layer,) = kerasft.resolve_stages(backbone, "group_0_inner_layer_0")
    assert by_layer.name == "group_0"


@pytest.mark.parametrize(
    "build",
    [
        lambda: M.Gemma3Backbone(
            image_size=16,
            num_query_heads=2,
            num_key_value_heads=1,
            head_dim=4,
            **LLM,
        ),
        lambda: M.Llama3Backbone(
            num_query_heads=2, num_key_value_heads=1, **LLM
        ),
        lambda: M.Qwen3Backbone(
            num_query_heads=2, num_key_value_heads=1, head_dim=4, **LLM
        ),
    ],
    ids=["gemma3", "llama3", "qwen3"],
)
def test_later_versions_share_the_decoder_stages(build):
    assert [s.name for s in kerasft.stages(build())] == DECODER


def test_a_map_registered_later_is_tried_first(monkeypatch):
    from kerasft._src.stages import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    backbone = M.MistralBackbone(
        num_query_heads=2, num_key_value_heads=1, **LLM
    )
    backbone.get_layer("transformer_layer_0").name = "block_0"
    backbone.get_layer("transformer_layer_1").name = "block_1"
    with pytest.raises(ValueError, match="'mistral' stage map"):
        kerasft.stages(backbone)
    kerasft.register_stage_map(
        "mistral_renamed",
        fingerprint=("token_embedding", "block_0"),
        stage_of=lambda name: name if name.startswith("block_") else None,
    )
    names = [s.name for s in kerasft.stages(backbone)]
    assert names == ["block_0", "block_1", "head"]
