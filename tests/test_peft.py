"""Tests for kerasft.peft: LoRA and BitFit."""

import keras
import numpy as np
import pytest

import kerasft
from kerasft import peft


def _cnn(name="tiny_cnn"):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.Conv2D(4, 3, name="conv2")(x)
    x = keras.layers.DepthwiseConv2D(3, name="dw")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(2, name="head")(x)
    return keras.Model(inputs, outputs, name=name)


def _cnn_data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 8, 8, 3), dtype="float32")
    y = rng.integers(0, 2, (n,)).astype("int32")
    return x, y


def _bert_classifier():
    keras_hub = pytest.importorskip("keras_hub")
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=100,
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=16,
    )
    return keras_hub.models.BertTextClassifier(
        backbone=backbone, num_classes=2, preprocessor=None
    )


def _bert_data(n=16, length=8, seed=0):
    rng = np.random.default_rng(seed)
    x = {
        "token_ids": rng.integers(1, 100, (n, length)).astype("int32"),
        "segment_ids": np.zeros((n, length), "int32"),
        "padding_mask": np.ones((n, length), "int32"),
    }
    return x, rng.integers(0, 2, (n,)).astype("int32")


def _fit(model, x, y):
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)


def _snapshot(model):
    return {v.path: keras.ops.convert_to_numpy(v).copy() for v in model.weights}


def _check_only_trainable_moved(model, before):
    """Frozen variables are bit-identical; every trainable one moved."""
    trainable = {v.path for v in model.trainable_variables}
    after = _snapshot(model)
    for path, value in before.items():
        if path.endswith(("moving_mean", "moving_variance")):
            continue
        if path in trainable:
            assert not np.array_equal(value, after[path]), path
        else:
            assert np.array_equal(value, after[path]), path
    return trainable


def test_lora_on_cnn_trains_only_adapters_and_head():
    model = _cnn()
    adapted = peft.enable_lora(model, 2, target=["conv1", "conv2"])
    assert [x.name for x in adapted] == ["conv1", "conv2"]
    assert [x.name for x in peft.lora_layers(model)] == ["conv1", "conv2"]
    trainable = sorted(v.path for v in model.trainable_variables)
    assert trainable == [
        "conv1/lora_kernel_a",
        "conv1/lora_kernel_b",
        "conv2/lora_kernel_a",
        "conv2/lora_kernel_b",
        "head/bias",
        "head/kernel",
    ]
    x, y = _cnn_data()
    before = _snapshot(model)
    _fit(model, x, y)
    _check_only_trainable_moved(model, before)


def test_lora_default_target_skips_head_and_unsupported():
    model = _cnn()
    adapted = peft.enable_lora(model, 1, alpha=4.0)
    assert [x.name for x in adapted] == ["conv1", "conv2"]
    assert adapted[0].lora_rank == 1
    assert adapted[0].lora_alpha == 4.0


def test_lora_on_bert_by_stage_regex():
    model = _bert_classifier()
    rows_before = kerasft.summary(model, print_fn=False)
    adapted = peft.enable_lora(model, 2, target=r"transformer_layer_\d+")
    # query, key, value, attention output and the two feed-forward layers.
    assert len(adapted) == 12
    rows = kerasft.summary(model, print_fn=False)
    by_stage = {r["stage"]: r for r in rows}
    assert by_stage["embeddings"]["trainable_params"] == 0
    assert by_stage["pooler"]["trainable_params"] == 0
    assert by_stage["head"]["trainable_params"] == 34
    total = sum(r["trainable_params"] for r in rows)
    total_before = sum(r["trainable_params"] for r in rows_before)
    assert total < total_before / 3
    for v in model.trainable_variables:
        assert v.path.startswith("logits/") or "/lora_kernel_" in v.path
    x, y = _bert_data()
    before = _snapshot(model)
    _fit(model, x, y)
    _check_only_trainable_moved(model, before)


def test_bitfit_on_bert_trains_biases_and_head():
    model = _bert_classifier()
    biases = peft.bitfit(model)
    assert len(biases) == 13  # 6 per encoder layer and the pooler
    for v in model.trainable_variables:
        assert v.path.startswith("logits/") or v.path.endswith("/bias")
    rows = kerasft.summary(model, print_fn=False)
    assert sum(r["trainable_params"] for r in rows) == 274
    x, y = _bert_data()
    before = _snapshot(model)
    _fit(model, x, y)
    _check_only_trainable_moved(model, before)


def test_bitfit_on_cnn_and_after_freeze():
    model = _cnn()
    kerasft.freeze(model)
    biases = peft.bitfit(model, head=None)
    assert sorted(v.path for v in biases) == [
        "conv1/bias",
        "conv2/bias",
        "dw/bias",
        "head/bias",
    ]
    assert not model.get_layer("bn1").trainable
    x, y = _cnn_data()
    before = _snapshot(model)
    _fit(model, x, y)
    _check_only_trainable_moved(model, before)


@pytest.mark.parametrize("rank", [0, -2])
def test_lora_rank_must_be_positive(rank):
    with pytest.raises(ValueError, match=f"Received: rank={rank}"):
        peft.enable_lora(_cnn(), rank)


def test_lora_bad_arguments():
    with pytest.raises(TypeError, match="rank"):
        peft.enable_lora(_cnn(), 2.5)
    with pytest.raises(ValueError, match="alpha"):
        peft.enable_lora(_cnn(), 2, alpha=0)
    with pytest.raises(ValueError, match="Did you mean 'conv1'"):
        peft.enable_lora(_cnn(), 2, target="conv11")


def test_lora_on_unsupported_layers_names_them():
    with pytest.raises(
        ValueError, match=r"bn1 \(BatchNormalization\).*dw \(DepthwiseConv2D\)"
    ):
        peft.enable_lora(_cnn(), 2, target=["bn1", "dw"])


def test_lora_twice_on_a_layer():
    model = _cnn()
    peft.enable_lora(model, 2, target="conv1")
    with pytest.raises(
        ValueError, match=r"already enabled on layers \['conv1'"
    ):
        peft.enable_lora(model, 2, target="conv1")


def test_bitfit_without_biases():
    inputs = keras.Input((4,))
    x = keras.layers.Dense(4, use_bias=False, name="d0")(inputs)
    outputs = keras.layers.Dense(2, name="head")(x)
    model = keras.Model(inputs, outputs, name="no_bias")
    with pytest.raises(ValueError, match="no bias variable"):
        peft.bitfit(model)


def test_save_and_load_only_adapter_weights(tmp_path):
    path = str(tmp_path / "adapters.npz")
    model = _cnn()
    peft.enable_lora(model, 2, target=["conv1", "conv2"])
    x, y = _cnn_data()
    _fit(model, x, y)
    written = peft.save_adapter_weights(model, path)
    assert len(written) == 6
    expected = model.predict(x, verbose=0)

    fresh = _cnn()
    for layer in ("conv1", "conv2", "bn1", "dw", "head"):
        fresh.get_layer(layer).set_weights(
            [
                keras.ops.convert_to_numpy(v)
                for v in model.get_layer(layer).weights
                if "lora" not in v.name
            ]
        )
    with pytest.raises(
        ValueError, match="'conv1/lora_kernel_a': not in the model"
    ):
        peft.load_adapter_weights(fresh, path)
    peft.enable_lora(fresh, 2, target=["conv1", "conv2"])
    assert peft.load_adapter_weights(fresh, path) == written
    np.testing.assert_allclose(
        fresh.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6
    )

    other_rank = _cnn()
    peft.enable_lora(other_rank, 3, target=["conv1", "conv2"])
    with pytest.raises(
        ValueError,
        match=r"'conv1/lora_kernel_a': shape \(3, 3, 3, 2\) in the file",
    ):
        peft.load_adapter_weights(other_rank, path)
    with pytest.raises(ValueError, match="must be a path ending in '.npz'"):
        peft.save_adapter_weights(model, str(tmp_path / "a.h5"))
