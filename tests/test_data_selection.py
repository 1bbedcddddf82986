"""Tests for kerasft.data_selection."""

import keras
import numpy as np
import pytest

from kerasft import data_selection


def _model(compile_loss="sparse_categorical_crossentropy"):
    """A fixed linear classifier: class = argmax(x), with confidence."""
    inputs = keras.Input((3,))
    dense = keras.layers.Dense(3, activation="softmax", name="probs")
    model = keras.Model(inputs, dense(inputs))
    dense.set_weights([np.eye(3, dtype="float32") * 4.0, np.zeros(3)])
    if compile_loss is not None:
        model.compile("sgd", compile_loss)
    return model


def _data(n=30, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = np.eye(3, dtype="float32")[y] + rng.uniform(0, 0.2, (n, 3))
    x = x.astype("float32")
    noisy = np.array([2, 7, 19])
    y_noisy = y.copy()
    y_noisy[noisy] = (y[noisy] + 1) % 3  # wrong labels
    return x, y_noisy, noisy


def test_per_sample_loss_matches_crossentropy():
    x, y, noisy = _data()
    model = _model()
    losses = data_selection.per_sample_loss(model, x, y, batch_size=7)
    probs = model.predict(x, verbose=0)
    expected = -np.log(probs[np.arange(len(y)), y])
    assert losses.shape == (30,)
    assert losses.dtype == np.float64
    np.testing.assert_allclose(losses, expected, rtol=1e-4)
    assert set(np.argsort(losses)[-3:]) == set(noisy)


def test_drop_returns_kept_indices_without_the_noisy_labels():
    x, y, noisy = _data()
    keep = data_selection.select_by_loss(
        _model(), x, y, drop_fraction=0.1, batch_size=8
    )
    assert keep.dtype == np.int64
    np.testing.assert_array_equal(keep, np.setdiff1d(np.arange(30), noisy))
    everything = data_selection.select_by_loss(
        _model(), x, y, drop_fraction=0.0
    )
    np.testing.assert_array_equal(everything, np.arange(30))


def test_weight_mode_down_weights_the_noisy_labels():
    x, y, noisy = _data()
    weights = data_selection.select_by_loss(
        _model(), x, y, drop_fraction=0.1, mode="weight", down_weight=0.25
    )
    assert weights.dtype == np.float32 and weights.shape == (30,)
    expected = np.ones(30, "float32")
    expected[noisy] = 0.25
    np.testing.assert_array_equal(weights, expected)
    model = _model()
    model.fit(x, y, sample_weight=weights, epochs=1, verbose=0)


def test_per_class_flags_the_fraction_within_each_class():
    x, y, _ = _data()
    # With per_class, each of the 3 classes loses round(0.2 * 10) = 2.
    keep = data_selection.select_by_loss(
        _model(), x, y, drop_fraction=0.2, per_class=True
    )
    dropped = np.setdiff1d(np.arange(30), keep)
    assert len(dropped) == 6
    assert np.bincount(y[dropped], minlength=3).tolist() == [2, 2, 2]
    # One-hot labels give the same classes.
    one_hot = np.eye(3, dtype="float32")[y]
    keep_one_hot = data_selection.select_by_loss(
        _model("categorical_crossentropy"),
        x,
        one_hot,
        drop_fraction=0.2,
        per_class=True,
    )
    np.testing.assert_array_equal(keep_one_hot, keep)


def test_loss_argument_name_object_and_function():
    x, y, noisy = _data()
    model = _model(compile_loss=None)
    by_name = data_selection.per_sample_loss(
        model, x, y, loss="sparse_categorical_crossentropy"
    )
    by_object = data_selection.per_sample_loss(
        model, x, y, loss=keras.losses.SparseCategoricalCrossentropy()
    )
    np.testing.assert_allclose(by_object, by_name, rtol=1e-5)

    def margin(y_true, y_pred):
        return 1.0 - keras.ops.max(y_pred, axis=-1)

    by_function = data_selection.per_sample_loss(model, x, y, loss=margin)
    assert by_function.shape == (30,)


def test_nan_losses_rank_highest():
    x, y, _ = _data()

    def loss_with_nan(y_true, y_pred):
        value = keras.ops.sum(y_pred, axis=-1)
        return keras.ops.where(keras.ops.equal(y_true, 0), float("nan"), value)

    keep = data_selection.select_by_loss(
        _model(None),
        x[:3],
        np.array([1, 0, 2]),
        drop_fraction=0.3,
        loss=loss_with_nan,
    )
    np.testing.assert_array_equal(keep, [0, 2])


def test_errors():
    x, y, _ = _data()
    model = _model()
    select = data_selection.select_by_loss
    with pytest.raises(ValueError, match="drop_fraction=1.0"):
        select(model, x, y, drop_fraction=1.0)
    with pytest.raises(ValueError, match="drop_fraction=-0.1"):
        select(model, x, y, drop_fraction=-0.1)
    with pytest.raises(TypeError, match="drop_fraction='0.1'"):
        select(model, x, y, drop_fraction="0.1")
    with pytest.raises(ValueError, match="mode='keep'"):
        select(model, x, y, mode="keep")
    with pytest.raises(ValueError, match="down_weight=1"):
        select(model, x, y, mode="weight", down_weight=1)
    with pytest.raises(TypeError, match="per_class='yes'"):
        select(model, x, y, per_class="yes")
    with pytest.raises(ValueError, match="30 inputs and 29 targets"):
        data_selection.per_sample_loss(model, x, y[:-1])
    with pytest.raises(ValueError, match="not compiled with a loss"):
        data_selection.per_sample_loss(_model(None), x, y)
    with pytest.raises(ValueError, match="loss='no_such_loss'"):
        data_selection.per_sample_loss(model, x, y, loss="no_such_loss")
    with pytest.raises(TypeError, match="loss=3"):
        data_selection.per_sample_loss(model, x, y, loss=3)
    with pytest.raises(TypeError, match="batch_size=0.5"):
        data_selection.per_sample_loss(model, x, y, batch_size=0.5)
    with pytest.raises(ValueError, match="batch_size=0"):
        data_selection.per_sample_loss(model, x, y, batch_size=0)
    with pytest.raises(TypeError, match="keras.Model"):
        data_selection.per_sample_loss("model", x, y)
    with pytest.raises(ValueError, match="one loss per sample"):
        data_selection.per_sample_loss(
            model, x, y, loss=lambda t, p: keras.ops.mean(p)
        )

    inputs = keras.Input((3,))
    two = keras.Model(
        inputs, [keras.layers.Dense(3)(inputs), keras.layers.Dense(3)(inputs)]
    )
    with pytest.raises(ValueError, match="one output"):
        data_selection.per_sample_loss(two, x, y, loss="mse")
