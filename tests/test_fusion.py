"""Tests for kerasft.build_fusion_model and kerasft.fusion_gates."""

import keras
import numpy as np
import pytest

from kerasft import build_fusion_model
from kerasft import freeze
from kerasft import fusion_gates
from kerasft import resolve_layers
from kerasft import stages
from kerasft.backbones import ResNet50
from kerasft.layers import FeatureFusion

SHAPE = (32, 32, 3)


def _images(n=4, shape=SHAPE, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, size=(n, *shape)).astype("float32")


def _tiny(name, shape=(8, 8, 3), width=4):
    """A small functional 'backbone' for argument checks."""
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(width, 3, name=f"{name}_conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name=f"{name}_gap")(x)
    return keras.Model(inputs, x, name=name)


def _values(variables):
    return [keras.ops.convert_to_numpy(v).copy() for v in variables]


def test_two_resnet50s_get_unique_names_and_per_branch_stages():
    model = build_fusion_model(
        [ResNet50(weights=None, input_shape=SHAPE) for _ in range(2)],
        fusion="concat",
        num_classes=3,
    )
    names = [layer.name for layer in model.layers]
    assert names[1:3] == ["resnet50", "resnet50_1"]
    assert len(set(names)) == len(names)
    stage_names = [s.name for s in stages(model)]
    for branch in ("resnet50", "resnet50_1"):
        for block in ("conv1", "conv2", "conv3", "conv4", "conv5"):
            assert f"{branch}/{block}" in stage_names
    assert stage_names[-1] == "head"
    assert model.output.shape == (None, 3)
    assert model.get_layer("fusion").output.shape == (None, 4096)

    freeze(model, "resnet50/conv4")
    first = model.get_layer("resnet50").get_layer("conv4_block1_1_conv")
    second = model.get_layer("resnet50_1").get_layer("conv4_block1_1_conv")
    assert not first.trainable
    assert second.trainable
    frozen = {id(x) for x in resolve_layers(model, "resnet50/conv4")}
    assert id(first) in frozen and id(second) not in frozen


def _tiny_bn(name, width=4):
    """A small backbone with BatchNormalization, for training checks."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Rescaling(1 / 255, name=f"{name}_rescale")(inputs)
    x = keras.layers.Conv2D(width, 3, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    x = keras.layers.ReLU(name=f"{name}_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name=f"{name}_gap")(x)
    return keras.Model(inputs, x, name=name)


def _fit(model, epochs=1):
    model.compile(keras.optimizers.SGD(0.1), "categorical_crossentropy")
    y = np.eye(3)[[0, 1, 2, 0]]
    x = _images(shape=(8, 8, 3))
    model.fit(x, y, epochs=epochs, batch_size=4, verbose=0)


def test_gradients_reach_every_branch():
    model = build_fusion_model(
        [_tiny_bn("a"), _tiny_bn("b", width=6)],
        fusion="gated",
        units=8,
        num_classes=3,
    )
    watched = [
        v
        for name in ("a", "b", "fusion", "predictions")
        for v in model.get_layer(name).trainable_weights
    ]
    assert len(watched) == len(model.trainable_weights)
    before = _values(watched)
    _fit(model)
    still = [
        v.path
        for v, b in zip(watched, before)
        if np.array_equal(b, keras.ops.convert_to_numpy(v))
    ]
    assert not still, f"no gradient reached {still}"


def test_frozen_branch_is_bit_identical_after_fit():
    model = build_fusion_model(
        [_tiny_bn("a"), _tiny_bn("b")], fusion="attention", num_classes=3
    )
    freeze(model, "b")
    frozen = model.get_layer("b").weights
    assert any("moving_mean" in v.path for v in frozen)
    frozen_before = _values(frozen)
    training = model.get_layer("a").trainable_weights
    assert training
    training_before = _values(training)
    _fit(model, epochs=2)
    for v, b in zip(frozen, frozen_before):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), b)
    for v, b in zip(training, training_before):
        assert not np.array_equal(keras.ops.convert_to_numpy(v), b), v.path


def test_keras_round_trip_with_duplicate_names(tmp_path):
    first, second = _tiny_bn("branch"), _tiny_bn("branch", width=6)
    model = build_fusion_model(
        [first, second],
        fusion=FeatureFusion("attention", units=8, num_heads=2, name="fusion"),
        num_classes=5,
        head="mlp",
        hidden_units=12,
        dropout=0.25,
        activation=None,
        name="fused",
    )
    assert [first.name, second.name] == ["branch", "branch_1"]
    layer = model.get_layer("fusion")
    rng = np.random.default_rng(3)
    for v in layer.weights:
        v.assign(rng.normal(scale=0.3, size=v.shape).astype("float32"))
    x = _images(shape=(8, 8, 3))
    expected = model.predict(x, verbose=0)
    gates = fusion_gates(model, x)
    path = tmp_path / "fused.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.name == "fused"
    assert [x.name for x in loaded.layers] == [x.name for x in model.layers]
    assert loaded.get_layer("fusion").get_config() == layer.get_config()
    assert loaded.get_layer("head_dropout").rate == 0.25
    assert loaded.get_layer("head_hidden").units == 12
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), expected)
    loaded_gates = fusion_gates(loaded, x)
    np.testing.assert_array_equal(loaded_gates, gates)
    assert loaded_gates.shape == (4, 2)
    np.testing.assert_allclose(loaded_gates.sum(axis=-1), 1.0, atol=1e-5)


def test_multiscale_taps_of_one_resnet50():
    backbone = ResNet50(weights=None, input_shape=SHAPE)
    model = build_fusion_model(
        backbone,
        taps=["conv3", "conv4", "conv5"],
        fusion="concat",
        pooling="max",
        num_classes=2,
    )
    fusion = model.get_layer("fusion")
    assert [tuple(t.shape) for t in fusion.input] == [
        (None, 512),
        (None, 1024),
        (None, 2048),
    ]
    assert isinstance(
        model.get_layer("resnet50_conv3_pool"),
        keras.layers.GlobalMaxPooling2D,
    )
    assert [s.name for s in stages(model)] == [
        "conv1",
        "conv2",
        "conv3",
        "conv4",
        "conv5",
        "head",
    ]
    assert model.output.shape == (None, 2)


def _tiny_deep(name):
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="stage1")(inputs)
    x = keras.layers.Conv2D(6, 3, name="stage2")(x)
    x = keras.layers.Conv2D(8, 3, name="stage3")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, x, name=name)


def test_multiscale_taps_keras_round_trip(tmp_path):
    model = build_fusion_model(
        _tiny_deep("deep"),
        taps=["stage1", "stage2", "stage3"],
        fusion="gated",
        units=5,
        num_classes=3,
    )
    assert [tuple(t.shape) for t in model.get_layer("fusion").input] == [
        (None, 4),
        (None, 6),
        (None, 8),
    ]
    # The nested model stops at the deepest tap: `gap` is not in it.
    nested = model.get_layer("deep")
    assert [x.name for x in nested.layers][-1] == "stage3"
    x = _images(2, shape=(8, 8, 3))
    expected = model.predict(x, verbose=0)
    path = tmp_path / "taps.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), expected)
    gates = fusion_gates(loaded, x)
    assert gates.shape == (2, 3)
    np.testing.assert_allclose(gates.sum(axis=-1), 1.0, atol=1e-5)


def test_unknown_input_dims_reconcile():
    flexible = _tiny("tiny", shape=(None, None, 3))
    fixed = _tiny("tiny")
    model = build_fusion_model([flexible, fixed], fusion="max", num_classes=2)
    assert tuple(model.input.shape) == (None, 8, 8, 3)
    assert [flexible.name, fixed.name] == ["tiny", "tiny_1"]


def test_bad_branches():
    with pytest.raises(ValueError, match="two or more branches.*taps"):
        build_fusion_model(_tiny("a"), fusion="mean", num_classes=2)
    with pytest.raises(ValueError, match="exactly one backbone"):
        build_fusion_model(
            [_tiny("a"), _tiny("b")],
            taps=["a_conv", "b_conv"],
            fusion="mean",
            num_classes=2,
        )
    with pytest.raises(ValueError, match="two or more taps"):
        build_fusion_model(
            _tiny("a"), taps=["a_conv"], fusion="mean", num_classes=2
        )
    with pytest.raises(ValueError, match="No stage or layer.*conv9"):
        build_fusion_model(
            _tiny("a"), taps=["a_conv", "conv9"], fusion="mean", num_classes=2
        )
    with pytest.raises(TypeError, match="list of stage or layer names"):
        build_fusion_model(
            _tiny("a"), taps="a_conv", fusion="mean", num_classes=2
        )
    tiny = _tiny("a")
    with pytest.raises(ValueError, match="same backbone instance"):
        build_fusion_model([tiny, tiny], fusion="mean", num_classes=2)
    with pytest.raises(TypeError, match="Backbone 1 is a str"):
        build_fusion_model([tiny, "vgg16"], fusion="mean", num_classes=2)


def test_unreconcilable_input_shapes():
    with pytest.raises(ValueError, match="cannot be reconciled.*each dim"):
        build_fusion_model(
            [_tiny("a"), _tiny("b", shape=(16, 16, 3))],
            fusion="mean",
            num_classes=2,
        )
    inputs = keras.Input((8, 3))
    seq = keras.Model(
        inputs, keras.layers.GlobalAveragePooling1D()(inputs), name="seq"
    )
    with pytest.raises(ValueError, match="cannot be reconciled.*ranks"):
        build_fusion_model([_tiny("a"), seq], fusion="mean", num_classes=2)


def test_bad_options():
    def build(**kwargs):
        args = {"fusion": "mean", "num_classes": 2}
        args.update(kwargs)
        return build_fusion_model([_tiny("a"), _tiny("b")], **args)

    with pytest.raises(
        ValueError, match="`fusion` must be one of.*Received: fusion='sum'"
    ):
        build(fusion="sum")
    with pytest.raises(TypeError, match="mode name.*fusion=3"):
        build(fusion=3)
    with pytest.raises(ValueError, match="not to build_fusion_model"):
        build(fusion=FeatureFusion("gated"), units=4)
    with pytest.raises(ValueError, match="fusion_gates"):
        build(fusion=FeatureFusion("gated", return_gates=True))
    with pytest.raises(ValueError, match=r"\['linear', 'mlp'\].*head='deep'"):
        build(head="deep")
    with pytest.raises(ValueError, match="pooling='sum'"):
        build(pooling="sum")
    with pytest.raises(ValueError, match="num_classes=0"):
        build(num_classes=0)
    with pytest.raises(TypeError, match="num_classes='3'"):
        build(num_classes="3")
    with pytest.raises(ValueError, match="dropout=1.5"):
        build(dropout=1.5)
    with pytest.raises(ValueError, match="hidden_units=0"):
        build(head="mlp", hidden_units=0)


def test_units_missing_for_different_branch_widths():
    first, second = _tiny("a"), _tiny("a", width=6)
    with pytest.raises(ValueError, match=r"\[4, 6\].*`units` is required"):
        build_fusion_model([first, second], fusion="gated", num_classes=2)
    # A failed build leaves the backbones' names as they were.
    assert [first.name, second.name] == ["a", "a"]


def test_fusion_gates_needs_a_gated_fusion():
    model = build_fusion_model(
        [_tiny("a"), _tiny("b")], fusion="concat", num_classes=2
    )
    with pytest.raises(ValueError, match="Mode 'concat' has no gates"):
        fusion_gates(model, _images(1, shape=(8, 8, 3)))
    with pytest.raises(ValueError, match="exactly one top-level"):
        fusion_gates(_tiny("c"), _images(1, shape=(8, 8, 3)))


@pytest.mark.slow
def test_fused_model_exports_for_serving(tmp_path):
    """A gated fusion of two branches exports and verifies (export issue)."""
    from kerasft.export import tf_serving

    model = build_fusion_model(
        [_tiny("left"), _tiny("right", width=6)],
        fusion="gated",
        units=5,
        num_classes=3,
    )
    path = tf_serving(
        model,
        tmp_path,
        "fused",
        sample_inputs=_images(2, shape=(8, 8, 3)),
    )
    assert path.endswith("1")
    assert (tmp_path / "fused" / "1" / "saved_model.pb").exists()
