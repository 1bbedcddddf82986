"""Tests for kerasft.schedules."""

import math

import keras
import numpy as np
import pytest

from kerasft.schedules import OneCycle
from kerasft.schedules import Scaled
from kerasft.schedules import SlantedTriangular
from kerasft.schedules import WarmUp


def _value(schedule, step):
    return float(keras.ops.convert_to_numpy(schedule(step)))


def _stlr(step, max_lr, total, cut_frac, ratio):
    cut = math.floor(total * cut_frac)
    step = min(step, total)
    if step < cut:
        p = step / cut
    else:
        p = 1 - (step - cut) / (cut * (1 / cut_frac - 1))
    return max_lr * (1 + p * (ratio - 1)) / ratio


def _one_cycle(step, max_lr, total, pct, div, div_final):
    up = math.floor(total * pct)
    step = min(step, total)

    def cos(start, end, frac):
        return end + (start - end) / 2 * (1 + math.cos(math.pi * frac))

    if step < up:
        return cos(max_lr / div, max_lr, step / up)
    return cos(max_lr, max_lr / div_final, (step - up) / (total - up))


@pytest.mark.parametrize("step", [0, 1, 9, 10, 11, 50, 99, 100, 150])
def test_slanted_triangular_matches_formula(step):
    schedule = SlantedTriangular(0.01, total_steps=100, cut_frac=0.1, ratio=32)
    expected = _stlr(step, 0.01, 100, 0.1, 32)
    np.testing.assert_allclose(_value(schedule, step), expected, rtol=1e-5)


def test_slanted_triangular_key_points():
    schedule = SlantedTriangular(0.02, total_steps=200, cut_frac=0.2, ratio=10)
    np.testing.assert_allclose(_value(schedule, 0), 0.002, rtol=1e-5)
    np.testing.assert_allclose(_value(schedule, 40), 0.02, rtol=1e-5)
    np.testing.assert_allclose(_value(schedule, 200), 0.002, rtol=1e-5)


@pytest.mark.parametrize("step", [0, 1, 24, 25, 26, 60, 99, 100, 120])
def test_one_cycle_matches_formula(step):
    schedule = OneCycle(1e-3, total_steps=100)
    expected = _one_cycle(step, 1e-3, 100, 0.25, 25, 1e5)
    np.testing.assert_allclose(_value(schedule, step), expected, rtol=1e-4)


def test_one_cycle_key_points():
    schedule = OneCycle(
        0.5, total_steps=40, pct_start=0.5, div=10, div_final=100
    )
    np.testing.assert_allclose(_value(schedule, 0), 0.05, rtol=1e-5)
    np.testing.assert_allclose(_value(schedule, 20), 0.5, rtol=1e-5)
    np.testing.assert_allclose(_value(schedule, 40), 0.005, rtol=1e-4)


def test_warm_up_float():
    schedule = WarmUp(0.1, warmup_steps=10)
    np.testing.assert_allclose(_value(schedule, 0), 0.0, atol=1e-8)
    np.testing.assert_allclose(_value(schedule, 5), 0.05, rtol=1e-5)
    np.testing.assert_allclose(_value(schedule, 10), 0.1, rtol=1e-5)
    np.testing.assert_allclose(_value(schedule, 1000), 0.1, rtol=1e-5)


def test_warm_up_shifts_wrapped_schedule():
    decay = keras.optimizers.schedules.ExponentialDecay(
        0.1, decay_steps=10, decay_rate=0.5
    )
    schedule = WarmUp(decay, warmup_steps=4, initial_learning_rate=0.02)
    np.testing.assert_allclose(_value(schedule, 0), 0.02, rtol=1e-5)
    np.testing.assert_allclose(_value(schedule, 2), 0.06, rtol=1e-5)
    np.testing.assert_allclose(_value(schedule, 4), 0.1, rtol=1e-5)
    np.testing.assert_allclose(_value(schedule, 14), 0.05, rtol=1e-5)


def test_scaled():
    base = OneCycle(1e-2, total_steps=20)
    scaled = Scaled(base, 0.1)
    for step in (0, 5, 19):
        np.testing.assert_allclose(
            _value(scaled, step), 0.1 * _value(base, step), rtol=1e-6
        )
    np.testing.assert_allclose(_value(Scaled(0.5, 0.2), 3), 0.1, rtol=1e-6)


@pytest.mark.parametrize(
    "schedule",
    [
        SlantedTriangular(0.03, 50, cut_frac=0.3, ratio=8, name="stlr"),
        OneCycle(0.02, 60, pct_start=0.4, div=5, div_final=50, name="oc"),
        WarmUp(OneCycle(0.02, 60, name="inner"), 7, 0.001, name="wu"),
        WarmUp(0.3, 3, name="wu_float"),
        Scaled(SlantedTriangular(0.03, 50), 0.25, name="sc"),
    ],
    ids=["stlr", "one_cycle", "warm_up", "warm_up_float", "scaled"],
)
def test_serialization_round_trip(schedule):
    config = keras.saving.serialize_keras_object(schedule)
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is type(schedule)
    assert restored.get_config() == schedule.get_config()
    for step in (0, 4, 33, 70):
        np.testing.assert_allclose(
            _value(restored, step), _value(schedule, step), rtol=1e-6
        )


def test_saved_with_model(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    schedule = WarmUp(SlantedTriangular(0.03, 50, ratio=4), 5)
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse")
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    restored = loaded.optimizer._learning_rate
    assert isinstance(restored, WarmUp)
    assert isinstance(restored.schedule, SlantedTriangular)
    assert restored.schedule.ratio == 4.0


def test_in_fit_compiled():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    schedule = OneCycle(0.01, total_steps=8)
    model.compile(
        optimizer=keras.optimizers.SGD(schedule), loss="mse", jit_compile="auto"
    )
    x = np.ones((16, 3), "float32")
    model.fit(x, x[:, :1], batch_size=4, epochs=1, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 4


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: SlantedTriangular(0.01, 100, cut_frac=0.0), "cut_frac"),
        (lambda: SlantedTriangular(0.01, 100, cut_frac=1.0), "cut_frac"),
        (lambda: SlantedTriangular(0.01, 0), "total_steps"),
        (lambda: SlantedTriangular(0.01, -5), "total_steps"),
        (lambda: SlantedTriangular(-0.01, 100), "max_learning_rate"),
        (lambda: SlantedTriangular(0.01, 100, ratio=0.5), "ratio"),
        (lambda: SlantedTriangular(0.01, 5, cut_frac=0.1), "total_steps"),
        (lambda: OneCycle(0.01, 100, pct_start=1.5), "pct_start"),
        (lambda: OneCycle(0.01, 0), "total_steps"),
        (lambda: OneCycle(0.01, 100, div=0.5), "div"),
        (lambda: OneCycle(0.01, 100, div_final=0), "div_final"),
        (lambda: OneCycle(0.0, 100), "max_learning_rate"),
        (lambda: WarmUp(0.1, 0), "warmup_steps"),
        (lambda: WarmUp(-0.1, 5), "schedule"),
        (lambda: WarmUp(0.1, 5, initial_learning_rate=-1), "initial_learning"),
        (lambda: Scaled(0.1, 0), "factor"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=f"{match}.*Received"):
        make()


def test_non_int_steps():
    with pytest.raises(TypeError, match="total_steps"):
        OneCycle(0.01, 10.5)
