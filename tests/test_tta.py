"""kerasft.tta_predict: test-time augmentation."""

import keras
import numpy as np
import pytest

import kerasft


def _images(count=5, size=8):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(count, size, size, 3)).astype("uint8")


def _model(pooled=False, activation="softmax"):
    """A tiny image classifier on raw pixels (it rescales them itself)."""
    layers = [keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255)]
    if pooled:  # averaging over positions: a mirror image changes nothing
        layers.append(keras.layers.GlobalAveragePooling2D())
    else:
        layers.append(keras.layers.Flatten())
    layers.append(keras.layers.Dense(3, activation=activation))
    return keras.Sequential(layers)


@pytest.fixture(autouse=True)
def _channels_last():
    if keras.config.image_data_format() != "channels_last":
        pytest.skip("the images here are channels_last")


def test_one_view_is_predict():
    model, x = _model(), _images()
    expected = model.predict(x, verbose=0)
    got = kerasft.tta_predict(model, x, n=1, batch_size=2)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_flip_invariant_model_gives_predict():
    model, x = _model(pooled=True), _images()
    expected = model.predict(x, verbose=0)
    got = kerasft.tta_predict(model, x, n=2, policy="flip")
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_flip_averages_the_image_and_its_mirror():
    model, x = _model(), _images()
    mirror = x[:, :, ::-1, :]
    expected = (
        model.predict(x, verbose=0) + model.predict(mirror, verbose=0)
    ) / 2
    got = kerasft.tta_predict(model, x, n=2, policy="flip", batch_size=3)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_logits_are_turned_into_probabilities():
    model, x = _model(activation=None), _images()
    logits = model.predict(x, verbose=0)
    got = kerasft.tta_predict(model, x, n=1, from_logits=True)
    expected = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("policy", ["flip_crop", "flip_shift"])
def test_random_views_are_reproducible_with_a_seed(policy):
    model, x = _model(), _images()
    first = kerasft.tta_predict(model, x, n=3, policy=policy, seed=3)
    again = kerasft.tta_predict(model, x, n=3, policy=policy, seed=3)
    np.testing.assert_array_equal(first, again)
    assert first.shape == (5, 3)
    np.testing.assert_allclose(first.sum(axis=-1), 1.0, rtol=1e-5)
    assert not np.allclose(first, model.predict(x, verbose=0))


def test_a_layer_as_policy():
    model, x = _model(), _images()
    policy = keras.layers.RandomFlip("vertical", seed=1)
    got = kerasft.tta_predict(model, x, n=3, policy=policy)
    assert got.shape == (5, 3)


def test_bad_arguments():
    model, x = _model(), _images()
    with pytest.raises(ValueError, match="'flip_crop'"):
        kerasft.tta_predict(model, x, policy="flip_crap")
    with pytest.raises(TypeError, match="policy"):
        kerasft.tta_predict(model, x, policy=3)
    with pytest.raises(ValueError, match="`n` must be 1 or 2"):
        kerasft.tta_predict(model, x, n=3)
    with pytest.raises(ValueError, match="`n`"):
        kerasft.tta_predict(model, x, n=0)
    with pytest.raises(TypeError, match="from_logits"):
        kerasft.tta_predict(model, x, from_logits=1)
    with pytest.raises(ValueError, match="4 dimensions"):
        kerasft.tta_predict(model, x[0])
    with pytest.raises(TypeError, match="array of images"):
        kerasft.tta_predict(model, [1, 2])
    with pytest.raises(TypeError, match="keras.Model"):
        kerasft.tta_predict("model", x)


def test_a_serving_function_as_model():
    model, x = _model(), _images()

    def serve(images):  # what a reloaded SavedModel's endpoint looks like
        return model(keras.ops.convert_to_tensor(images, "float32"))

    expected = kerasft.tta_predict(model, x, n=2)
    got = kerasft.tta_predict(serve, x, n=2)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
