"""Tests for kerasft.peft's named adapters, merge, unload and adapter files.

Each test builds its model from a module-scoped config and weights (a toy
Conv/Dense model, a tiny random keras-hub BERT), so the models are cheap
and every test starts from the same base weights.
"""

import copy
import json

import keras
import numpy as np
import pytest

import kerasft
from kerasft import peft


def _toy_model():
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(3, 3, name="conv")(inputs)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dense(5, name="dense1")(x)
    x = keras.layers.Dense(4, name="dense2")(x)
    outputs = keras.layers.Dense(2, name="head")(x)
    return keras.Model(inputs, outputs, name="toy")


def _tiny_bert():
    keras_hub = pytest.importorskip("keras_hub")
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=32,
        num_layers=2,
        hidden_dim=8,
        num_heads=2,
        intermediate_dim=16,
        max_sequence_length=8,
    )
    return keras_hub.models.BertTextClassifier(
        backbone=backbone, num_classes=2, preprocessor=None
    )


class _Kind:
    """A model family: its config and base weights, built once."""

    def __init__(self, build, x):
        model = build()
        self.cls = type(model)
        self.config = model.get_config()
        self.weights = model.get_weights()
        self.x = x

    def fresh(self):
        model = self.cls.from_config(copy.deepcopy(self.config))
        model.set_weights(self.weights)
        return model


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(0)
    return _Kind(_toy_model, rng.random((4, 6, 6, 2), dtype="float32"))


@pytest.fixture(scope="module")
def bert():
    rng = np.random.default_rng(0)
    x = {
        "token_ids": rng.integers(1, 32, (4, 8)).astype("int32"),
        "segment_ids": np.zeros((4, 8), "int32"),
        "padding_mask": np.ones((4, 8), "int32"),
    }
    return _Kind(_tiny_bert, x)


@pytest.fixture(params=["toy", "bert"])
def kind(request):
    return request.getfixturevalue(request.param)


def _predict(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def _values(model):
    return {v.path: keras.ops.convert_to_numpy(v).copy() for v in model.weights}


def _flags(model):
    return [v.trainable for v in model.weights]


def _randomize(variables, seed):
    """Gives trained-looking values (non-zero `B`s) to `variables`."""
    rng = np.random.default_rng(seed)
    for v in variables:
        v.assign(0.3 * rng.standard_normal(v.shape).astype(v.dtype))


def _lora_paths(model):
    return sorted(v.path for v in model.weights if "/lora_" in v.path)


_Y = np.array([0, 1, 1, 0], "int32")


def _fit(model, x, steps=2):
    """Two steps: a LoRA `A` moves from the second one (`B` starts at 0)."""
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x, _Y, batch_size=4, epochs=steps, verbose=0)


def test_named_adapters_switch_exactly(toy):
    model = toy.fresh()
    base = _predict(model, toy.x)
    peft.add_adapter(model, "a", 2)
    assert peft.list_adapters(model) == ["a"]
    _randomize(model.trainable_variables, 1)
    out_a = _predict(model, toy.x)
    peft.add_adapter(model, "b", 2, target="dense1", alpha=8.0)
    assert peft.list_adapters(model) == ["a", "b"]
    assert peft.active_adapter(model) == "b"
    # A new adapter starts from the base model, head included.
    np.testing.assert_array_equal(_predict(model, toy.x), base)
    assert sorted(v.path for v in model.trainable_variables) == [
        "dense1/lora_kernel_a",
        "dense1/lora_kernel_b",
        "head/bias",
        "head/kernel",
    ]
    _randomize(model.trainable_variables, 2)
    out_b = _predict(model, toy.x)
    b_values = _values(model)
    peft.set_active_adapter(model, "a")
    np.testing.assert_array_equal(_predict(model, toy.x), out_a)
    assert model.get_layer("dense1").lora_alpha == 2
    assert len(model.trainable_variables) == 8
    peft.set_active_adapter(model, "b")
    np.testing.assert_array_equal(_predict(model, toy.x), out_b)
    after = _values(model)
    for path, value in b_values.items():
        np.testing.assert_array_equal(after[path], value, err_msg=path)


def test_delete_adapter_and_errors(toy):
    model = toy.fresh()
    peft.add_adapter(model, "a", 2)
    peft.add_adapter(model, "b", 2, target="dense1")
    with pytest.raises(ValueError, match="'b' is the active adapter"):
        peft.delete_adapter(model, "b")
    with pytest.raises(ValueError, match=r"adapters are \['a', 'b'\]"):
        peft.set_active_adapter(model, "c")
    with pytest.raises(ValueError, match="already has an adapter 'a'"):
        peft.add_adapter(model, "a", 2)
    with pytest.raises(ValueError, match=r"dense1 \(rank 2\).*rank=3"):
        peft.add_adapter(model, "c", 3, target="dense1")
    with pytest.raises(ValueError, match="add_adapter"):
        peft.enable_lora(model, 2, target="head", head=None)
    assert peft.list_adapters(model) == ["a", "b"]
    peft.delete_adapter(model, "a")
    assert peft.list_adapters(model) == ["b"]
    # Only `b`'s layer keeps LoRA factors.
    assert [x.name for x in peft.lora_layers(model)] == ["dense1"]
    assert _lora_paths(model) == [
        "dense1/lora_kernel_a",
        "dense1/lora_kernel_b",
    ]


def test_shared_variable_paths_are_refused():
    def block(name):
        inputs = keras.Input((3,))
        outputs = keras.layers.Dense(3, name="d")(inputs)
        return keras.Model(inputs, outputs, name=name)

    inputs = keras.Input((3,))
    model = keras.Model(inputs, block("b2")(block("b1")(inputs)))
    with pytest.raises(ValueError, match=r"share the paths \['d/bias'"):
        peft.add_adapter(model, "a", 2, head=None)
    assert peft.list_adapters(model) == []
    assert not peft.lora_layers(model)


def test_enable_lora_is_the_default_adapter(toy):
    model = toy.fresh()
    assert peft.list_adapters(model) == []
    assert peft.active_adapter(model) is None
    peft.enable_lora(model, 2, target="conv")
    peft.enable_lora(model, 2, target="dense1")
    assert peft.list_adapters(model) == ["default"]
    assert len(model.trainable_variables) == 6  # 2 x (A, B) and the head
    peft.add_adapter(model, "other", 2, target="dense2")
    peft.set_active_adapter(model, "default")
    assert [x.name for x in peft.lora_layers(model)] == [
        "conv",
        "dense1",
        "dense2",
    ]


def test_switch_keeps_functions_and_trains(toy):
    model = toy.fresh()
    peft.add_adapter(model, "a", 2)
    peft.add_adapter(model, "b", 2)
    _fit(model, toy.x)
    predict_function = model.predict_function
    optimizer = model.optimizer
    b_trained = _values(model)
    peft.set_active_adapter(model, "a")
    # Same layers, rank and alpha: same variables, no new trace.
    assert model.predict_function is predict_function
    assert model.optimizer is optimizer
    before = _values(model)
    model.fit(toy.x, _Y, epochs=2, verbose=0)
    after = _values(model)
    trainable = {v.path for v in model.trainable_variables}
    for path, value in before.items():
        moved = not np.array_equal(value, after[path])
        assert moved == (path in trainable), path
    peft.set_active_adapter(model, "b")
    for path, value in _values(model).items():
        np.testing.assert_array_equal(value, b_trained[path], err_msg=path)


def test_merge_matches_and_saves_plain(kind, tmp_path):
    model = kind.fresh()
    peft.enable_lora(model, 2, alpha=4.0)
    _randomize([v for v in model.weights if "/lora_" in v.path] + [], seed=3)
    expected = _predict(model, kind.x)
    merged = peft.merge_adapters(model)
    assert merged and not peft.lora_layers(model)
    assert _lora_paths(model) == []
    assert peft.list_adapters(model) == []
    np.testing.assert_allclose(
        _predict(model, kind.x), expected, rtol=1e-5, atol=1e-5
    )
    path = str(tmp_path / "merged.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert _lora_paths(loaded) == []
    assert not peft.lora_layers(loaded)
    np.testing.assert_allclose(
        _predict(loaded, kind.x), expected, rtol=1e-5, atol=1e-5
    )


def test_unload_gives_base_back_bit_exact(kind):
    model = kind.fresh()
    kerasft.freeze_until(model, -1)
    base = _values(model)
    flags = _flags(model)
    out = _predict(model, kind.x)
    peft.add_adapter(model, "a", 2)
    _randomize(model.trainable_variables, 8)  # as if trained
    peft.add_adapter(model, "b", 2)
    _randomize(model.trainable_variables, 9)
    assert not np.array_equal(_predict(model, kind.x), out)
    peft.unload_adapters(model)
    assert _lora_paths(model) == []
    assert _flags(model) == flags
    after = _values(model)
    assert list(after) == list(base)
    for path, value in base.items():
        np.testing.assert_array_equal(after[path], value, err_msg=path)
    np.testing.assert_array_equal(_predict(model, kind.x), out)
    with pytest.raises(ValueError, match="has no LoRA layers"):
        peft.unload_adapters(model)


def test_lora_then_bitfit_on_tiny_bert(bert):
    """Adapters, merged, then BitFit on the merged model (training LoRA and
    BitFit on BERT is in tests/test_peft.py)."""
    model = bert.fresh()
    adapted = peft.add_adapter(model, "a", 2, target=r"transformer_layer_\d+")
    assert len(adapted) == 12
    for v in model.trainable_variables:
        assert v.path.startswith("logits/") or "/lora_kernel_" in v.path
    peft.merge_adapters(model)
    biases = peft.bitfit(model)
    assert len(biases) == 13  # 6 per encoder layer and the pooler
    for v in model.trainable_variables:
        assert v.path.startswith("logits/") or v.path.endswith("/bias")


def _quantized(toy):
    model = toy.fresh()
    try:
        model.quantize("int8")
    except (NotImplementedError, ValueError) as error:
        pytest.skip(f"Keras cannot quantize here: {error}")
    return model


def test_lora_on_int8_quantized_base(toy):
    model = _quantized(toy)
    base = _values(model)
    out = _predict(model, toy.x)
    adapted = peft.enable_lora(model, 2, target=["dense1", "dense2"])
    assert [x.quantization_mode for x in adapted] == ["int8", "int8"]
    _fit(model, toy.x)
    lora = _predict(model, toy.x)
    assert not np.allclose(lora, out)
    peft.unload_adapters(model)
    np.testing.assert_array_equal(_predict(model, toy.x), out)
    for path, value in _values(model).items():
        np.testing.assert_array_equal(value, base[path], err_msg=path)
    model = _quantized(toy)
    peft.enable_lora(model, 2, target=["dense1", "dense2"])
    _randomize([v for v in model.weights if "/lora_" in v.path], seed=4)
    lora = _predict(model, toy.x)
    peft.merge_adapters(model)
    assert model.get_layer("dense1").quantization_mode == "int8"
    # Keras quantizes the merged kernel again: equal to its int8 step.
    scale = np.abs(lora).max()
    np.testing.assert_allclose(_predict(model, toy.x), lora, atol=0.05 * scale)


# ---------------------------------------------------------------------------
# Adapter files.


def _adapted(toy, rank=2, alpha=None, target=("dense1", "dense2")):
    model = toy.fresh()
    peft.add_adapter(model, "a", rank, target=list(target), alpha=alpha)
    return model


def test_adapter_file_keyed_by_path_not_position(toy, tmp_path):
    path = str(tmp_path / "a.npz")
    model = _adapted(toy)
    _randomize(model.trainable_variables, 5)
    written = peft.save_adapter_weights(model, path)
    with np.load(path) as data:
        meta = json.loads(str(data["__kerasft_adapter__"]))
    assert meta["lora"]["dense1/lora_kernel_a"] == {"rank": 2, "alpha": 2.0}
    # Another model where the adapted layers sit at other positions.
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(3, 3, name="conv")(inputs)
    x = keras.layers.Conv2D(3, 1, padding="same", name="extra")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dense(5, name="dense1")(x)
    x = keras.layers.Dense(4, name="dense2")(x)
    other = keras.Model(inputs, keras.layers.Dense(2, name="head")(x))
    peft.add_adapter(other, "a", 2, target=["dense1", "dense2"])
    assert peft.load_adapter_weights(other, path) == written
    saved = _values(model)
    loaded = _values(other)
    for key in written:
        np.testing.assert_array_equal(loaded[key], saved[key], err_msg=key)


@pytest.mark.parametrize(
    "build, message",
    [
        (
            lambda toy: _adapted(toy, target=["dense1"]),
            r"'dense2/lora_kernel_a': not in the model",
        ),
        (
            lambda toy: _adapted(toy, rank=3),
            r"'dense2/lora_kernel_a': shape \(5, 2\) in the file, "
            r"\(5, 3\) in the model",
        ),
        (
            lambda toy: _adapted(toy, alpha=4.0),
            r"'dense1/lora_kernel_a': rank 2, alpha 2.0 in the file, "
            r"rank 2, alpha 4.0 in the model",
        ),
        (
            lambda toy: _adapted(toy, target=["conv", "dense1", "dense2"]),
            r"'conv/lora_kernel_a': trains in the model, not in the file",
        ),
    ],
    ids=["missing-path", "rank", "alpha", "missing-in-file"],
)
def test_adapter_file_mismatch_changes_nothing(toy, tmp_path, build, message):
    path = str(tmp_path / "a.npz")
    model = _adapted(toy)
    _randomize(model.trainable_variables, 6)
    peft.save_adapter_weights(model, path)
    other = build(toy)
    before = _values(other)
    with pytest.raises(ValueError, match=message) as info:
        peft.load_adapter_weights(other, path)
    assert "a.npz" in str(info.value)
    after = _values(other)
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)


def test_adapter_file_without_description_and_damaged(toy, tmp_path):
    model = _adapted(toy)
    _randomize(model.trainable_variables, 7)
    arrays = {
        v.path: keras.ops.convert_to_numpy(v) for v in model.trainable_variables
    }
    plain = str(tmp_path / "plain.npz")
    np.savez(plain, **arrays)
    other = _adapted(toy)
    assert sorted(peft.load_adapter_weights(other, plain)) == sorted(arrays)
    np.testing.assert_array_equal(
        _predict(other, toy.x), _predict(model, toy.x)
    )
    damaged = str(tmp_path / "damaged.npz")
    np.savez(damaged, **arrays, __kerasft_adapter__=np.array("{not json"))
    with pytest.raises(ValueError, match="damaged.npz.*description"):
        peft.load_adapter_weights(other, damaged)
