"""Tests for kerasft.backbones.hub and the keras-hub stage maps."""

import os

import keras
import numpy as np
import pytest

import kerasft
from kerasft._src.backbones import hub
from kerasft.callbacks import UnfreezeSchedule

keras_hub = pytest.importorskip("keras_hub")

BERT_STAGES = ["embeddings", "transformer_layer_0", "transformer_layer_1"]


def _backbone(name="tiny_bert"):
    return keras_hub.models.BertBackbone(
        vocabulary_size=100,
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=16,
        name=name,
    )


def _classifier():
    model = keras_hub.models.BertTextClassifier(
        backbone=_backbone(), num_classes=2, preprocessor=None
    )
    return model


def _compile(model):
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )


def _data(n=16, length=8, seed=0):
    rng = np.random.default_rng(seed)
    x = {
        "token_ids": rng.integers(1, 100, (n, length)).astype("int32"),
        "segment_ids": np.zeros((n, length), "int32"),
        "padding_mask": np.ones((n, length), "int32"),
    }
    y = rng.integers(0, 2, (n,)).astype("int32")
    return x, y


def _values(model):
    return {v.path: keras.ops.convert_to_numpy(v).copy() for v in model.weights}


def _stage_values(model, name):
    (stage,) = kerasft.resolve_stages(model, name)
    return {
        v.path: keras.ops.convert_to_numpy(v).copy() for v in stage.variables
    }


def _same(before, after):
    return all(np.array_equal(before[k], after[k]) for k in before)


def _all_moved(before, after):
    return all(not np.array_equal(before[k], after[k]) for k in before)


def test_bert_backbone_stages():
    backbone = _backbone()
    names = [s.name for s in kerasft.stages(backbone)]
    assert names == BERT_STAGES + ["pooler"]
    embeddings = kerasft.stages(backbone)[0]
    assert [x.name for x in embeddings.layers][:3] == [
        "token_embedding",
        "position_embedding",
        "segment_embedding",
    ]
    total = sum(s.count_params() for s in kerasft.stages(backbone))
    assert total == backbone.count_params()


def test_text_classifier_stages_add_head():
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "film"]
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer, sequence_length=8
    )
    model = keras_hub.models.BertTextClassifier(
        backbone=_backbone(), num_classes=2, preprocessor=preprocessor
    )
    # The preprocessor runs outside the functional graph: no stage holds it.
    leaves = [x for s in kerasft.stages(model) for x in s.layers]
    assert not any(x is preprocessor or x is tokenizer for x in leaves)
    assert model.predict(["a film"], verbose=0).shape == (1, 2)
    stages = kerasft.stages(model)
    assert [s.name for s in stages] == BERT_STAGES + ["pooler", "head"]
    assert [x.name for x in stages[-1].layers] == [
        "classifier_dropout",
        "logits",
    ]


def test_generic_rule_for_other_transformer_backbones():
    backbone = keras_hub.models.DistilBertBackbone(
        vocabulary_size=100,
        num_layers=3,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=16,
    )
    names = [s.name for s in kerasft.stages(backbone)]
    assert names == [
        "embeddings",
        "transformer_layer_0",
        "transformer_layer_1",
        "transformer_layer_2",
    ]


def test_freeze_until_trains_only_later_layers():
    model = _classifier()
    trainable = kerasft.freeze_until(model, "transformer_layer_0")
    assert [x.name for x in trainable] == [
        "transformer_layer_1",
        "pooled_dense",
        "logits",
    ]
    rows = kerasft.summary(model, print_fn=False)
    assert [r["trains"] for r in rows] == ["no", "no", "yes", "yes", "yes"]
    _compile(model)
    frozen = {
        name: _stage_values(model, name)
        for name in ("embeddings", "transformer_layer_0")
    }
    trained = {
        name: _stage_values(model, name)
        for name in ("transformer_layer_1", "head")
    }
    x, y = _data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    for name, before in frozen.items():
        assert _same(before, _stage_values(model, name)), name
    for name, before in trained.items():
        assert not _same(before, _stage_values(model, name)), name


def test_unfreeze_schedule_on_bert_classifier():
    model = _classifier()
    kerasft.freeze_until(model, "head", inclusive=False)
    _compile(model)
    start = _values(model)
    after_epoch = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            after_epoch.append(_values(self.model))

    schedule = UnfreezeSchedule({1: "transformer_layer_1"})
    x, y = _data()
    history = model.fit(
        x, y, batch_size=8, epochs=2, verbose=0, callbacks=[schedule, Record()]
    )
    assert len(schedule.changes) == 1
    layer1 = [k for k in start if k.startswith("transformer_layer_1/")]
    layer0 = [k for k in start if k.startswith("transformer_layer_0/")]
    # Epoch 0: only the head trains.
    assert all(np.array_equal(start[k], after_epoch[0][k]) for k in layer1)
    # Epoch 1: transformer_layer_1 trains too; transformer_layer_0 never.
    assert any(
        not np.array_equal(after_epoch[0][k], after_epoch[1][k]) for k in layer1
    )
    assert all(np.array_equal(start[k], after_epoch[1][k]) for k in layer0)
    params = history.history["trainable_params"]
    assert params[1] > params[0]


def test_use_exact_gelu():
    backbone = _backbone()
    x, _ = _data(n=2)
    approximate = keras.ops.convert_to_numpy(backbone(x)["sequence_output"])
    changed = hub.use_exact_gelu(backbone)
    assert len(changed) == 2
    assert all(d.activation is keras.activations.gelu for d in changed)
    exact = keras.ops.convert_to_numpy(backbone(x)["sequence_output"])
    assert not np.array_equal(approximate, exact)
    np.testing.assert_allclose(approximate, exact, atol=1e-2)


def test_use_exact_gelu_without_transformer():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs), name="mlp")
    with pytest.raises(ValueError, match="feedforward_intermediate_dense"):
        hub.use_exact_gelu(model)


def test_missing_folder_has_offline_hint(tmp_path):
    missing = str(tmp_path / "no_such_model")
    with pytest.raises(ValueError, match="does not exist.*provision_minilm"):
        hub.load_hub_backbone(missing)
    with pytest.raises(ValueError, match="does not exist"):
        hub.load_hub_tokenizer(missing)


def test_unknown_preset_name_has_offline_hint():
    with pytest.raises(ValueError, match="Did you mean 'bert_tiny_en_uncased'"):
        hub.load_hub_backbone("bert_tiny_en_uncasd")
    with pytest.raises(ValueError, match="local preset folder"):
        hub.load_hub_backbone("no_such_preset_anywhere")


def test_bad_argument_types():
    with pytest.raises(TypeError, match="preset_or_dir"):
        hub.load_hub_backbone(3)
    with pytest.raises(TypeError, match="exact_gelu"):
        hub.load_hub_backbone("x/y", exact_gelu="yes")
    with pytest.raises(ValueError, match="num_classes"):
        hub.load_hub_text_classifier("x/y", 0)


def test_minilm_dir_in_cache(tmp_path):
    folder = hub.minilm_dir(str(tmp_path))
    assert folder == os.path.join(str(tmp_path), hub.MINILM_DIRNAME)
    assert not hub.is_minilm_provisioned(str(tmp_path))


def _mean_pooled(backbone, tokenizer, sentences):
    packer = keras_hub.layers.StartEndPacker(
        sequence_length=32,
        start_value=tokenizer.cls_token_id,
        end_value=tokenizer.sep_token_id,
        pad_value=tokenizer.pad_token_id,
    )
    token_ids = keras.ops.convert_to_numpy(packer(tokenizer(sentences)))
    mask = token_ids != tokenizer.pad_token_id
    outputs = backbone(
        {
            "token_ids": token_ids,
            "segment_ids": np.zeros_like(token_ids),
            "padding_mask": mask,
        }
    )["sequence_output"]
    outputs = keras.ops.convert_to_numpy(outputs)
    pooled = (outputs * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


@pytest.mark.pretrained
@pytest.mark.skipif(
    not hub.is_minilm_provisioned(),
    reason="all-MiniLM-L6-v2 is not provisioned; run "
    "`python -c 'import kerasft.backbones.hub as h; h.provision_minilm()'`",
)
def test_minilm_related_pair_scores_far_above_unrelated():
    folder = hub.minilm_dir()
    backbone = hub.load_hub_backbone(folder)
    tokenizer = hub.load_hub_tokenizer(folder)
    assert tokenizer.strip_accents
    assert tokenizer.detokenize(tokenizer(["Café crème"]))[0] == "cafe creme"
    assert [s.name for s in kerasft.stages(backbone)][:2] == [
        "embeddings",
        "transformer_layer_0",
    ]
    assert len(kerasft.stages(backbone)) == 8  # embeddings, 6 layers, pooler
    emb = _mean_pooled(
        backbone,
        tokenizer,
        [
            "A man is playing a guitar.",
            "Someone plays an acoustic guitar.",
            "The stock market fell sharply today.",
            "Preheat the oven before baking the bread.",
        ],
    )
    similarity = emb @ emb.T
    related = similarity[0, 1]
    unrelated = max(similarity[0, 2], similarity[0, 3], similarity[1, 2])
    assert related > 0.6
    assert unrelated < 0.2
    assert related - unrelated > 0.5


@pytest.mark.pretrained
@pytest.mark.skipif(
    not hub.is_minilm_provisioned(),
    reason="all-MiniLM-L6-v2 is not provisioned; run "
    "`python -c 'import kerasft.backbones.hub as h; h.provision_minilm()'`",
)
def test_minilm_text_classifier_has_stages_and_preprocessor():
    model = hub.load_hub_text_classifier(
        hub.minilm_dir(), 2, sequence_length=16
    )
    assert isinstance(model, keras_hub.models.BertTextClassifier)
    assert model.preprocessor.tokenizer.strip_accents
    names = [s.name for s in kerasft.stages(model)]
    assert names[0] == "embeddings" and names[-2:] == ["pooler", "head"]
    assert len(names) == 9
    kerasft.freeze_until(model, "transformer_layer_4")
    assert model.predict(["a fine film", "Café"], verbose=0).shape == (2, 2)
