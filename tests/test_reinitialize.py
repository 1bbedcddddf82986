"""Re-initialization of chosen stages with each layer's own initializers."""

import importlib.util

import keras
import numpy as np
import pytest

from kerasft.regularizers import reinitialize

HAS_HUB = importlib.util.find_spec("keras_hub") is not None


def _np(v):
    return keras.ops.convert_to_numpy(v).copy()


def _snapshot(model):
    return {v.path: _np(v) for v in model.weights}


def _conv_model(name="convnet"):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.DepthwiseConv2D(3, name="depthwise")(x)
    x = keras.layers.SeparableConv2D(4, 1, name="separable")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(3, bias_initializer="ones", name="head")(x)
    return keras.Model(inputs, outputs, name=name)


def _perturb(model, seed=0):
    rng = np.random.default_rng(seed)
    for v in model.weights:
        v.assign(_np(v) + rng.normal(size=v.shape).astype(v.dtype) + 0.5)


def test_only_the_target_changes_and_seed_reproduces():
    model = _conv_model()
    _perturb(model)
    before = _snapshot(model)
    changed = reinitialize(model, ["bn", "depthwise", "separable"], seed=7)
    after = _snapshot(model)
    changed_paths = {v.path for v in changed}
    assert changed_paths == {
        v.path
        for name in ("bn", "depthwise", "separable")
        for v in model.get_layer(name).weights
    }
    for path, value in before.items():
        if path in changed_paths:
            assert not np.array_equal(after[path], value), path
        else:
            np.testing.assert_array_equal(after[path], value)
    bn = model.get_layer("bn")
    np.testing.assert_array_equal(_np(bn.gamma), 1.0)
    np.testing.assert_array_equal(_np(bn.beta), 0.0)
    np.testing.assert_array_equal(_np(bn.moving_mean), 0.0)
    np.testing.assert_array_equal(_np(bn.moving_variance), 1.0)
    np.testing.assert_array_equal(_np(model.get_layer("separable").bias), 0.0)

    # The same seed on a separately built model gives the same values.
    other = _conv_model("convnet_2")
    reinitialize(other, ["bn", "depthwise", "separable"], seed=7)
    for name in ("depthwise", "separable"):
        for a, b in zip(
            model.get_layer(name).weights, other.get_layer(name).weights
        ):
            np.testing.assert_array_equal(_np(a), _np(b))
    # A different seed gives different kernels.
    reinitialize(other, "depthwise", seed=8)
    assert not np.array_equal(
        _np(other.get_layer("depthwise").kernel),
        _np(model.get_layer("depthwise").kernel),
    )


def test_uses_each_layers_own_initializer():
    model = _conv_model()
    _perturb(model)
    reinitialize(model, "head", seed=0)
    head = model.get_layer("head")
    np.testing.assert_array_equal(_np(head.bias), 1.0)
    # glorot_uniform limit for a 4 -> 3 kernel
    limit = np.sqrt(6 / (4 + 3))
    kernel = _np(head.kernel)
    assert np.all(np.abs(kernel) <= limit) and np.std(kernel) > 0
    expected = keras.initializers.GlorotUniform(seed=0)
    assert not np.array_equal(kernel, _np(expected((4, 3))))  # own seeds


def test_sublayers_of_rnn_attention_and_embedding():
    inputs = keras.Input((5,), dtype="int32")
    x = keras.layers.Embedding(11, 4, name="embed")(inputs)
    x = keras.layers.LSTM(3, return_sequences=True, name="lstm")(x)
    x = keras.layers.MultiHeadAttention(2, 2, name="mha")(x, x)
    x = keras.layers.EinsumDense("abc,cd->abd", (None, 2), name="einsum")(x)
    model = keras.Model(inputs, x, name="seq")
    _perturb(model)
    before = _snapshot(model)
    changed = reinitialize(model, ["embed", "lstm", "mha", "einsum"], seed=1)
    assert len(changed) == len(model.weights)
    for v in model.weights:
        assert not np.array_equal(_np(v), before[v.path]), v.path
    cell = model.get_layer("lstm").cell
    bias = _np(cell.bias)
    # LSTM bias [input, forget, cell, output]: forget gate starts at 1.
    np.testing.assert_array_equal(bias[:3], 0.0)
    np.testing.assert_array_equal(bias[3:6], 1.0)
    np.testing.assert_array_equal(bias[6:], 0.0)
    # The recurrent kernel is orthogonal.
    recurrent = _np(cell.recurrent_kernel)
    gram = recurrent @ recurrent.T
    np.testing.assert_allclose(gram, np.eye(3), atol=1e-5)


@pytest.mark.skipif(not HAS_HUB, reason="keras-hub is not installed")
def test_keras_hub_transformer_encoder():
    import keras_hub

    inputs = keras.Input((4, 8))
    x = keras_hub.layers.TransformerEncoder(16, 2, name="transformer_layer_0")(
        inputs
    )
    x = keras_hub.layers.TransformerEncoder(16, 2, name="transformer_layer_1")(
        x
    )
    model = keras.Model(inputs, x, name="encoder")
    _perturb(model)
    before = _snapshot(model)
    changed = reinitialize(model, "transformer_layer_1", seed=3)
    top = model.get_layer("transformer_layer_1")
    assert {v.path for v in changed} == {v.path for v in top.weights}
    assert len(changed) > 10
    for v in model.get_layer("transformer_layer_0").weights:
        np.testing.assert_array_equal(_np(v), before[v.path])
    for v in top.weights:
        assert not np.array_equal(_np(v), before[v.path]), v.path
        if v.name == "gamma":
            np.testing.assert_array_equal(_np(v), 1.0)


class _NoInitializer(keras.layers.Layer):
    def build(self, input_shape):
        self.scale = self.add_weight(shape=(), initializer="ones", name="scale")

    def call(self, x):
        return x * self.scale


def test_errors():
    model = _conv_model()
    with pytest.raises(ValueError, match="Did you mean 'head'"):
        reinitialize(model, "haed")
    with pytest.raises(ValueError, match="without weights.*'pool'"):
        reinitialize(model, "pool")
    with pytest.raises(TypeError, match="Received: seed=1.5"):
        reinitialize(model, "head", seed=1.5)
    with pytest.raises(ValueError, match="Received: seed=-1"):
        reinitialize(model, "head", seed=-1)
    with pytest.raises(ValueError, match="not built yet"):
        reinitialize(keras.Sequential([keras.layers.Dense(2)]), 0)

    inputs = keras.Input((3,))
    outputs = _NoInitializer(name="custom")(inputs)
    custom = keras.Model(inputs, outputs)
    before = _np(custom.get_layer("custom").scale)
    with pytest.raises(ValueError, match="no initializer for 'scale'"):
        reinitialize(custom, "custom")
    np.testing.assert_array_equal(_np(custom.get_layer("custom").scale), before)


def test_without_seed_each_call_draws_new_values():
    model = _conv_model()
    original = _np(model.get_layer("head").kernel)
    reinitialize(model, "head")
    first = _np(model.get_layer("head").kernel)
    reinitialize(model, "head")
    second = _np(model.get_layer("head").kernel)
    # An unseeded Keras initializer repeats its values; these do not.
    assert not np.array_equal(first, original)
    assert not np.array_equal(first, second)
