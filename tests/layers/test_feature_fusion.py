"""Tests for kerasft.layers.FeatureFusion."""

import keras
import numpy as np
import pytest

from kerasft.layers import FeatureFusion

WIDTHS = (12, 6, 8)


def _inputs(widths=WIDTHS):
    return [keras.Input((w,), name=f"branch_{i}") for i, w in enumerate(widths)]


def _data(widths=WIDTHS, batch=4, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(batch, w)).astype("float32") for w in widths]


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _randomize(layer, seed=1):
    """Non-zero weights everywhere so gates are not trivially uniform."""
    rng = np.random.default_rng(seed)
    for v in layer.weights:
        v.assign(rng.normal(scale=0.5, size=v.shape).astype(v.dtype))


SHAPE_CASES = (
    ("mean", {"units": 5}, 5),
    ("max", {"units": 5}, 5),
    ("concat", {}, sum(WIDTHS)),
    ("concat", {"units": 5}, 15),
    ("gated", {"units": 5}, 5),
    ("gated", {"units": 5, "gate_activation": "sigmoid"}, 5),
    ("attention", {"units": 6, "num_heads": 2}, 6),
)


def test_output_shapes():
    # Concrete outputs of every mode are checked in test_jit_matches_eager.
    for mode, kwargs, width in SHAPE_CASES:
        layer = FeatureFusion(mode, **kwargs)
        assert tuple(layer(_inputs()).shape) == (None, width), mode
        shapes = [(None, w) for w in WIDTHS]
        assert layer.compute_output_shape(shapes) == (None, width), mode
        if mode in ("gated", "attention"):
            layer = FeatureFusion(mode, return_gates=True, **kwargs)
            fused, gates = layer(_inputs())
            assert tuple(fused.shape) == (None, width)
            assert tuple(gates.shape) == (None, len(WIDTHS))


def test_equal_widths_need_no_projection():
    x = _data(widths=(4, 4))
    np.testing.assert_allclose(
        _np(FeatureFusion("mean")(x)), np.mean(x, axis=0), rtol=1e-6
    )
    np.testing.assert_allclose(
        _np(FeatureFusion("max")(x)), np.max(x, axis=0), rtol=1e-6
    )
    np.testing.assert_allclose(
        _np(FeatureFusion("concat")(x)), np.concatenate(x, axis=-1), rtol=1e-6
    )
    assert not FeatureFusion("mean").weights


@pytest.mark.parametrize(
    "mode, kwargs",
    [("gated", {"units": 5}), ("attention", {"units": 6, "num_heads": 3})],
)
def test_gates_sum_to_one(mode, kwargs):
    layer = FeatureFusion(mode, return_gates=True, **kwargs)
    fused, gates = layer(_data())
    assert tuple(gates.shape) == (4, len(WIDTHS))
    _randomize(layer)
    fused, gates = layer(_data())
    gates = _np(gates)
    np.testing.assert_allclose(gates.sum(axis=-1), 1.0, atol=1e-5)
    assert (gates > 0).all()
    # Gates depend on the input: two samples get different gates.
    assert not np.allclose(gates[0], gates[1])
    np.testing.assert_allclose(_np(layer.gates(_data())), gates, rtol=1e-5)


def test_gated_softmax_starts_uniform_and_mixes_projections():
    layer = FeatureFusion("gated", units=5, return_gates=True)
    fused, gates = layer(_data())
    np.testing.assert_allclose(_np(gates), 1 / 3, atol=1e-6)
    _randomize(layer)
    x = _data()
    fused, gates = layer(x)
    projected = [_np(p(xi)) for p, xi in zip(layer._projections, x)]
    gates = _np(gates)
    expected = sum(gates[:, i : i + 1] * projected[i] for i in range(3))
    np.testing.assert_allclose(_np(fused), expected, rtol=1e-4, atol=1e-5)


def test_sigmoid_gates_are_independent():
    layer = FeatureFusion(
        "gated", units=5, gate_activation="sigmoid", return_gates=True
    )
    _, gates = layer(_data())
    np.testing.assert_allclose(_np(gates), 0.5, atol=1e-6)
    _randomize(layer)
    _, gates = layer(_data())
    gates = _np(gates)
    assert ((gates > 0) & (gates < 1)).all()
    assert not np.allclose(gates.sum(axis=-1), 1.0)


ALL_MODES = (
    ("mean", {"units": 4}),
    ("max", {"units": 4}),
    ("concat", {"units": 4}),
    ("gated", {"units": 4}),
    ("attention", {"units": 4, "num_heads": 2}),
)


def _all_modes_model(modes=ALL_MODES):
    """One model with a fusion layer per mode, so one compile covers all."""
    inputs = _inputs()
    layers = [FeatureFusion(m, name=m, **kw) for m, kw in modes]
    outputs = [layer(inputs) for layer in layers]
    return inputs, layers, outputs


def test_gradients_reach_every_branch():
    inputs, layers, fused = _all_modes_model()
    heads = [keras.layers.Dense(2)(f) for f in fused]
    model = keras.Model(inputs, keras.layers.Add()(heads))
    model.compile(keras.optimizers.SGD(0.1), "mse")
    variables = [v for layer in layers for v in layer.trainable_weights]
    before = [_np(v) for v in variables]
    model.fit(_data(), np.ones((4, 2)), epochs=1, verbose=0)
    changed = {
        v.path: not np.array_equal(b, _np(v)) for b, v in zip(before, variables)
    }
    for layer in layers:
        # Every branch's projection trains, in every mode.
        for i in range(len(WIDTHS)):
            assert changed[layer._projections[i].kernel.path], layer.mode
    # Adding a constant to every key leaves the softmax unchanged, so the
    # key bias of attention gets an exactly zero gradient by construction.
    unchanged = [p for p, c in changed.items() if not c]
    assert all(p.endswith("key/bias") for p in unchanged), unchanged


def test_keras_round_trip_non_default_args(tmp_path):
    inputs = _inputs()
    layer = FeatureFusion(
        "attention",
        units=6,
        num_heads=3,
        return_gates=True,
        kernel_initializer="he_normal",
        name="my_fusion",
        dtype="bfloat16",
    )
    fused, gates = layer(inputs)
    model = keras.Model(inputs, [keras.layers.Dense(3)(fused), gates])
    _randomize(layer)
    x = _data()
    expected = model.predict(x, verbose=0)
    path = tmp_path / "fusion.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    restored = loaded.get_layer("my_fusion")
    assert restored.get_config() == layer.get_config()
    assert restored.dtype_policy.name == "bfloat16"
    for got, want in zip(loaded.predict(x, verbose=0), expected):
        np.testing.assert_array_equal(got, want)


def test_config_has_every_constructor_arg():
    layer = FeatureFusion(
        "gated",
        units=7,
        gate_activation="sigmoid",
        return_gates=True,
        kernel_initializer="zeros",
        name="g",
        trainable=False,
    )
    config = layer.get_config()
    for key in (
        "mode",
        "units",
        "gate_activation",
        "num_heads",
        "return_gates",
        "kernel_initializer",
    ):
        assert key in config
    clone = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert isinstance(clone, FeatureFusion)
    assert clone.get_config() == config
    assert keras.saving.get_registered_name(FeatureFusion) == (
        "kerasft>FeatureFusion"
    )


@pytest.fixture
def mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_mixed_precision(mixed_precision):
    inputs, layers, fused = _all_modes_model()
    assert all(f.dtype == "float16" for f in fused)
    heads = [keras.layers.Dense(2, dtype="float32")(f) for f in fused]
    model = keras.Model(inputs, keras.layers.Add(dtype="float32")(heads))
    model.compile(keras.optimizers.SGD(0.01), "mse")
    history = model.fit(_data(), np.ones((4, 2)), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    for layer in layers:
        assert all(v.dtype == "float32" for v in layer.weights)
        if layer.mode in ("gated", "attention"):
            gates = layer.gates(_data())
            assert keras.backend.standardize_dtype(gates.dtype) == "float16"
            np.testing.assert_allclose(
                _np(gates).astype("float32").sum(-1),
                1.0,
                atol=1e-2,
            )


# torch.compile (inductor) on CPU takes minutes for the five-mode graph, so
# torch checks the most involved mode only (all five were checked by hand).
JIT_MODES = ALL_MODES[-1:] if keras.backend.backend() == "torch" else ALL_MODES


def test_jit_matches_eager():
    inputs, _, fused = _all_modes_model(JIT_MODES)
    model = keras.Model(inputs, fused)
    x = _data()
    model.compile(jit_compile=False)
    eager = model.predict(x, verbose=0)
    model.compile(jit_compile=True)
    jitted = model.predict(x, verbose=0)
    for got, want in zip(keras.tree.flatten(jitted), keras.tree.flatten(eager)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(
    keras.backend.backend() == "torch",
    reason="a torch.compile'd train step costs ~60 s on CPU, over the test "
    "budget; the jitted forward pass is tested above on torch.",
)
def test_jit_fit():
    inputs = _inputs()
    fused = FeatureFusion("attention", units=4, num_heads=2)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(fused))
    model.compile(keras.optimizers.SGD(0.1), "mse", jit_compile=True)
    history = model.fit(_data(), np.ones((4, 2)), epochs=2, verbose=0)
    assert history.history["loss"][1] < history.history["loss"][0]


CONSTRUCTOR_ERRORS = (
    (
        {"mode": "sum"},
        ValueError,
        "Unknown fusion mode.*Received: mode='sum'",
    ),
    ({"mode": "mean", "units": 0}, ValueError, "int >= 1.*units=0"),
    ({"mode": "mean", "units": 2.5}, TypeError, "units=2.5"),
    ({"mode": "mean", "units": True}, TypeError, "units=True"),
    (
        {"mode": "gated", "gate_activation": "tanh"},
        ValueError,
        r"\['softmax', 'sigmoid'\].*gate_activation='tanh'",
    ),
    (
        {"mode": "mean", "gate_activation": "sigmoid"},
        ValueError,
        "only applies to mode='gated'",
    ),
    (
        {"mode": "gated", "num_heads": 2},
        ValueError,
        "only applies to mode='attention'",
    ),
    ({"mode": "attention", "num_heads": 0}, ValueError, "num_heads=0"),
    (
        {"mode": "max", "return_gates": True},
        ValueError,
        "return_gates=True.*mode='max'",
    ),
    ({"mode": "gated", "return_gates": 1}, TypeError, "return_gates=1"),
)


def test_constructor_errors():
    for kwargs, error, match in CONSTRUCTOR_ERRORS:
        with pytest.raises(error, match=match):
            FeatureFusion(**kwargs)


def test_fewer_than_two_branches():
    with pytest.raises(ValueError, match="two or more branches.*1 input"):
        FeatureFusion("mean")([keras.Input((4,))])
    with pytest.raises(ValueError, match="expects a list of at least 2"):
        FeatureFusion("concat")(keras.Input((4,)))


def test_incompatible_rank():
    with pytest.raises(ValueError, match="rank-2.*Input 1 has rank 4"):
        FeatureFusion("concat")([keras.Input((4,)), keras.Input((2, 2, 4))])
    with pytest.raises(ValueError, match="rank-2.*Input 0 has rank 3"):
        FeatureFusion("mean")([keras.Input((3, 4)), keras.Input((3, 4))])


def test_units_missing_for_different_widths():
    for mode in ("mean", "max", "gated", "attention"):
        with pytest.raises(ValueError, match=r"\[4, 6\].*`units` is required"):
            FeatureFusion(mode)([keras.Input((4,)), keras.Input((6,))])


def test_unknown_width_and_heads_divisibility():
    with pytest.raises(ValueError, match="width.*of input 1 must be known"):
        FeatureFusion("concat")([keras.Input((4,)), keras.Input((None,))])
    with pytest.raises(ValueError, match="divisible by `num_heads`"):
        FeatureFusion("attention", units=5, num_heads=2)(_inputs())


def test_gates_method_needs_gated_mode():
    with pytest.raises(ValueError, match="Mode 'concat' has no gates"):
        FeatureFusion("concat").gates(_data())
