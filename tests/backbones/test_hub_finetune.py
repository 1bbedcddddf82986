"""Fine-tuning keras-hub Transformers with kerasft: freezing, gradual
unfreezing inside `fit`, layer-wise decayed rates, and the exact-GELU switch
across `model.save` / `keras.saving.load_model`.

All but the `pretrained` test use a tiny random `BertTextClassifier`.
"""

import keras
import numpy as np
import pytest

import kerasft
from kerasft._src.backbones import hub
from kerasft.callbacks import UnfreezeSchedule
from kerasft.optimizers import discriminative
from kerasft.optimizers import layerwise_decay

keras_hub = pytest.importorskip("keras_hub")

STAGES = [
    "embeddings",
    "transformer_layer_0",
    "transformer_layer_1",
    "pooler",
    "head",
]


def _classifier(dropout=0.0):
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=60,
        num_layers=2,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=8,
        dropout=dropout,
    )
    return keras_hub.models.BertTextClassifier(
        backbone, num_classes=2, preprocessor=None, dropout=dropout
    )


def _data(n=16, length=8, seed=0):
    rng = np.random.default_rng(seed)
    x = {
        "token_ids": rng.integers(1, 60, (n, length)).astype("int32"),
        "segment_ids": np.zeros((n, length), "int32"),
        "padding_mask": np.ones((n, length), "int32"),
    }
    return x, (x["token_ids"][:, 0] % 2).astype("int32")


def _loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _stage_values(model, name):
    (stage,) = kerasft.resolve_stages(model, name)
    return [keras.ops.convert_to_numpy(v).copy() for v in stage.variables]


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def _moved(a, b):
    return any(not np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_stages_and_freeze_until():
    model = _classifier()
    assert [s.name for s in kerasft.stages(model)] == STAGES
    kerasft.freeze_until(model, "transformer_layer_0")
    model.compile(keras.optimizers.Adam(0.01), _loss())
    before = {name: _stage_values(model, name) for name in STAGES}
    x, y = _data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    for name in STAGES[:2]:
        assert _same(before[name], _stage_values(model, name)), name
    for name in STAGES[2:]:
        assert _moved(before[name], _stage_values(model, name)), name


class _EpochSnapshots(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.values = [self._snapshot()]

    def on_epoch_end(self, epoch, logs=None):
        self.values.append(self._snapshot())

    def _snapshot(self):
        return {name: _stage_values(self.model, name) for name in STAGES}


def test_gradual_unfreezing_with_layerwise_decay_inside_fit():
    model = _classifier()
    factors = layerwise_decay(model, 0.5)
    model.compile(
        discriminative(keras.optimizers.Adam(0.01), model, factors), _loss()
    )
    snapshots = _EpochSnapshots()
    x, y = _data()
    model.fit(
        x,
        y,
        batch_size=8,
        epochs=3,
        verbose=0,
        callbacks=[UnfreezeSchedule.gradual(stages=3), snapshots],
    )
    v = snapshots.values
    # Epoch 0: head; epoch 1: + pooler; epoch 2: + transformer_layer_1.
    assert _moved(v[0]["head"], v[1]["head"])
    assert _same(v[0]["pooler"], v[1]["pooler"])
    assert _moved(v[1]["pooler"], v[2]["pooler"])
    assert _same(v[0]["transformer_layer_1"], v[2]["transformer_layer_1"])
    assert _moved(v[2]["transformer_layer_1"], v[3]["transformer_layer_1"])
    for name in ("embeddings", "transformer_layer_0"):
        assert _same(v[0][name], v[3][name]), name
    rates = model.optimizer.stage_learning_rates()
    np.testing.assert_allclose(
        [rates[name] for name in STAGES],
        [0.01 * 0.5**4, 0.01 * 0.5**3, 0.01 * 0.25, 0.01 * 0.5, 0.01],
        rtol=1e-6,
    )


def test_layerwise_decay_scales_each_stage_update():
    keras.utils.set_random_seed(3)
    model = _classifier()
    twin = _classifier()
    twin.set_weights(model.get_weights())
    factors = layerwise_decay(model, 0.5)
    assert list(factors.values()) == [0.0625, 0.125, 0.25, 0.5, 1.0]
    model.compile(
        discriminative(keras.optimizers.SGD(100.0), model, factors), _loss()
    )
    # A large rate: the gradients of a fresh tiny BERT are small, and the
    # updates must stand well above float32 rounding of the weights.
    twin.compile(keras.optimizers.SGD(100.0), _loss())
    x, y = _data()
    before = {name: _stage_values(model, name) for name in STAGES}
    model.train_on_batch(x, y)
    twin.train_on_batch(x, y)
    for name in STAGES:
        scaled = _stage_values(model, name)
        plain = _stage_values(twin, name)
        step = np.concatenate(
            [(s - b).ravel() for s, b in zip(scaled, before[name])]
        )
        reference = np.concatenate(
            [(p - b).ravel() for p, b in zip(plain, before[name])]
        )
        assert np.abs(reference).max() > 0, name
        # float32 noise aside, each stage moved `factor` times as far.
        np.testing.assert_allclose(
            step,
            factors[name] * reference,
            atol=1e-2 * np.abs(factors[name] * reference).max(),
        )


def test_exact_gelu_after_save_and_load(tmp_path):
    model = _classifier()
    dense = hub.use_exact_gelu(model)
    # Large feed-forward kernels put GELU's inputs where the tanh
    # approximation and the exact form differ visibly.
    for layer in dense:
        layer.kernel.assign(layer.kernel * 20.0)
    x, _ = _data(n=4)

    def features(m):
        # The encoder's output: the logits of a fresh head are too small
        # to show the difference.
        return keras.ops.convert_to_numpy(m.backbone(x)["sequence_output"])

    expected = features(model)
    path = str(tmp_path / "bert.keras")
    model.save(path)

    loaded = keras.saving.load_model(path, compile=False)
    # keras-hub rebuilds the backbone from its config, with its default
    # (tanh) GELU: the switch is not saved and must be applied again.
    approximate = features(loaded)
    assert np.abs(approximate - expected).max() > 1e-5
    changed = hub.use_exact_gelu(loaded)
    assert len(changed) == 2
    assert all(d.activation is keras.activations.gelu for d in changed)
    np.testing.assert_allclose(features(loaded), expected, atol=1e-6)
    assert [s.name for s in kerasft.stages(loaded)] == STAGES


@pytest.mark.pretrained
@pytest.mark.skipif(
    not hub.is_minilm_provisioned(),
    reason="all-MiniLM-L6-v2 is not provisioned: run "
    "`kerasft.backbones.provision_minilm()`",
)
def test_minilm_gradual_unfreezing_few_steps():
    model = hub.load_hub_text_classifier(
        hub.minilm_dir(), 2, sequence_length=16
    )
    names = [s.name for s in kerasft.stages(model)]
    assert names == (
        ["embeddings"]
        + [f"transformer_layer_{i}" for i in range(6)]
        + ["pooler", "head"]
    )
    model.compile(
        discriminative(
            keras.optimizers.Adam(1e-4), model, layerwise_decay(model, 0.8)
        ),
        _loss(),
    )
    texts = ["a warm, funny film", "dull and far too long"] * 2
    labels = np.array([1, 0, 1, 0], "int32")
    watched = ["pooler", "transformer_layer_5", "transformer_layer_4"]

    def values():
        return {n: _stage_values(model, n) for n in watched}

    before = values()
    model.fit(
        texts,
        labels,
        batch_size=4,
        epochs=2,
        verbose=0,
        callbacks=[UnfreezeSchedule({0: "pooler", 1: "transformer_layer_5"})],
    )
    after = values()
    assert _moved(before["pooler"], after["pooler"])
    assert _moved(before["transformer_layer_5"], after["transformer_layer_5"])
    assert _same(before["transformer_layer_4"], after["transformer_layer_4"])


def test_exact_gelu_backbone_survives_save_and_load(tmp_path):
    backbone = hub.exact_gelu_backbone(_classifier().backbone)
    model = keras_hub.models.BertTextClassifier(
        backbone, num_classes=2, preprocessor=None, dropout=0.0
    )
    for layer in hub.use_exact_gelu(model):
        layer.kernel.assign(layer.kernel * 20.0)
    x, _ = _data(n=4)
    expected = keras.ops.convert_to_numpy(model.backbone(x)["sequence_output"])
    path = str(tmp_path / "bert.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded.backbone(x)["sequence_output"]),
        expected,
        atol=1e-6,
    )
    assert [s.name for s in kerasft.stages(loaded)] == STAGES
