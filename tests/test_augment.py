"""Tests for kerasft.augment."""

import keras
import numpy as np
import pytest

import kerasft
from kerasft import augment


def _images(n=4, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (n, size, size, 3)).astype("float32")


def _classes(layer):
    return [type(x).__name__ for x in layer.layers]


def test_kinds_build_keras_preprocessing_layers():
    light = augment.augmentation("light")
    standard = augment.augmentation("standard")
    assert isinstance(light, keras.layers.Pipeline)
    assert light.name == "augmentation"
    assert _classes(light) == ["RandomFlip", "RandomRotation", "RandomZoom"]
    assert _classes(standard) == [
        "RandomFlip",
        "RandomRotation",
        "RandomZoom",
        "RandomTranslation",
        "RandomContrast",
    ]
    no_flip = augment.augmentation("standard", flip=None, name="aug")
    assert "RandomFlip" not in _classes(no_flip)
    assert no_flip.name == "aug"
    assert augment.KINDS == ("light", "standard", "randaugment", "augmix")


@pytest.mark.parametrize(
    "kind, policy",
    [("randaugment", "RandAugment"), ("augmix", "AugMix")],
)
def test_strong_policies_are_keras_layers(kind, policy):
    layer = augment.augmentation(kind, erasing=0.25, seed=4)
    assert _classes(layer) == ["RandomFlip", policy, "RandomErasing"]
    assert [x.seed for x in layer.layers] == [4, 5, 6]
    erasing = layer.layers[-1]
    assert tuple(erasing.factor) == (0.25, 0.25)
    assert tuple(erasing.value_range) == (0, 255)
    no_flip = augment.augmentation(kind, flip=None, value_range=(0, 1))
    assert _classes(no_flip) == [policy]
    assert tuple(no_flip.layers[0].value_range) == (0, 1)


def test_erasing_replaces_a_rectangle_of_every_image():
    layer = augment.augmentation("light", flip=None, erasing=1.0, seed=0)
    assert _classes(layer)[-1] == "RandomErasing"
    erase_only = augment.Augmentation([layer.layers[-1]])
    x = np.full((4, 16, 16, 3), 128.0, "float32")
    out = keras.ops.convert_to_numpy(erase_only(x, training=True))
    changed = (out != x).any(axis=-1).mean(axis=(1, 2))
    assert (changed > 0).all() and (changed < 0.5).all()
    assert out.min() >= 0.0 and out.max() <= 255.0


def test_strong_policies_serialize_and_keep_the_shape():
    layer = augment.augmentation("randaugment", erasing=0.5, seed=2, name="ra")
    config = keras.saving.serialize_keras_object(layer)
    restored = keras.saving.deserialize_keras_object(config)
    assert isinstance(restored, augment.Augmentation)
    assert restored.name == "ra"
    assert _classes(restored) == _classes(layer)
    for a, b in zip(restored.layers, layer.layers, strict=True):
        assert a.get_config() == b.get_config()
    x = _images(2, 16)
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    assert out.shape == x.shape
    assert out.min() >= 0.0 and out.max() <= 255.0


def test_training_changes_images_inference_passes_them_through():
    layer = augment.augmentation("standard", seed=3)
    x = _images()
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    assert out.shape == x.shape
    assert np.abs(out - x).max() > 1.0
    # Contrast clips to the value range.
    assert out.min() >= 0.0 and out.max() <= 255.0
    same = keras.ops.convert_to_numpy(layer(x, training=False))
    np.testing.assert_array_equal(same, x)


def test_seed_makes_the_pipeline_reproducible():
    x = _images()
    first = augment.augmentation("standard", seed=7)(x, training=True)
    second = augment.augmentation("standard", seed=7)(x, training=True)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(first),
        keras.ops.convert_to_numpy(second),
        atol=1e-4,
    )
    seeds = [x.seed for x in augment.augmentation("standard", seed=7).layers]
    assert seeds == [7, 8, 9, 10, 11]


def test_runs_in_a_tf_data_pipeline_on_every_backend():
    tf = pytest.importorskip("tensorflow")
    layer = augment.augmentation("standard", seed=1)
    x = _images(8)
    y = np.arange(8)
    dataset = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .batch(4)
        .map(lambda a, b: (layer(a, training=True), b))
    )
    batches = [(a.numpy(), b.numpy()) for a, b in dataset]
    assert [a.shape for a, _ in batches] == [(4, 16, 16, 3)] * 2
    assert np.abs(batches[0][0] - x[:4]).max() > 1.0
    np.testing.assert_array_equal(batches[1][1], y[4:])


@pytest.mark.parametrize("kind", ["randaugment", "augmix"])
def test_strong_policies_run_in_tf_data_and_in_a_model(kind):
    tf = pytest.importorskip("tensorflow")
    layer = augment.augmentation(kind, erasing=0.25, seed=1)
    x, y = _images(8), np.arange(8) % 3
    dataset = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .batch(4)
        .map(lambda a, b: (layer(a, training=True), b))
    )
    batches = [a.numpy() for a, _ in dataset]
    assert [a.shape for a in batches] == [(4, 16, 16, 3)] * 2
    assert np.abs(np.concatenate(batches) - x).max() > 1.0

    inputs = keras.Input((16, 16, 3))
    features = augment.augmentation(kind, erasing=0.25, seed=1)(inputs)
    features = keras.layers.GlobalAveragePooling2D()(features)
    outputs = keras.layers.Dense(3, activation="softmax")(features)
    model = keras.Model(inputs, outputs)
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    np.testing.assert_array_equal(
        model.predict(x, verbose=0), model.predict(x, verbose=0)
    )


def _tiny_vgg():
    """A few-layer model with VGG layer names, so it gets VGG stages."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="block1_conv1")(x)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="block1_conv2")(x)
    x = keras.layers.MaxPooling2D(name="block1_pool")(x)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="block2_conv1")(x)
    x = keras.layers.MaxPooling2D(name="block2_pool")(x)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, outputs, name="tiny_vgg")


def _augmented_classifier():
    backbone = _tiny_vgg()
    inputs = keras.Input((16, 16, 3))
    features = backbone(augment.augmentation("light", seed=0)(inputs))
    outputs = keras.layers.Dense(3, activation="softmax")(features)
    return keras.Model(inputs, outputs)


def test_inside_a_model_keeps_stages_and_trains(tmp_path):
    model = _augmented_classifier()
    names = [s.name for s in kerasft.stages(model)]
    assert names == ["augmentation", "block1", "block2", "head"]
    kerasft.freeze_until(model, "block1")
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y = _images(8, 16), np.arange(8) % 3
    frozen = model.get_layer("tiny_vgg").get_layer("block1_conv1")
    trained = model.get_layer("tiny_vgg").get_layer("block2_conv1")
    frozen_before = frozen.get_weights()[0].copy()
    trained_before = trained.get_weights()[0].copy()
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    np.testing.assert_array_equal(frozen.get_weights()[0], frozen_before)
    assert not np.allclose(trained.get_weights()[0], trained_before)

    # predict does not augment: two calls agree exactly.
    np.testing.assert_array_equal(
        model.predict(x, verbose=0), model.predict(x, verbose=0)
    )
    path = tmp_path / "augmented.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert _classes(restored.get_layer("augmentation")) == _classes(
        model.get_layer("augmentation")
    )
    np.testing.assert_allclose(
        restored.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"kind": "heavy"}, ValueError, "'light', 'standard', 'randaugment'"),
        ({"kind": "augmx"}, ValueError, "Did you mean 'augmix'"),
        ({"erasing": 1.5}, ValueError, "erasing=1.5"),
        ({"erasing": "0.25"}, TypeError, "erasing='0.25'"),
        ({"flip": "diagonal"}, ValueError, "flip='diagonal'"),
        ({"value_range": (255, 0)}, ValueError, "value_range=\\(255, 0\\)"),
        ({"value_range": (0,)}, ValueError, "two numbers"),
        ({"seed": 1.5}, TypeError, "seed=1.5"),
        ({"name": ""}, TypeError, "name=''"),
    ],
)
def test_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        augment.augmentation(**kwargs)
