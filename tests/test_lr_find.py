"""kerasft.lr_find: the range test leaves the model exactly as it was."""

import keras
import numpy as np
import pytest

import kerasft
from kerasft._src.lr_find import suggest


def _data(count=256):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(count, 4)).astype("float32")
    w = np.array([1.0, -2.0, 3.0, 0.5], dtype="float32")
    return x, (x @ w)[:, None]


def _model(optimizer=None):
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, name="hidden"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Dense(1, name="head"),
        ]
    )
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(1e-3),
        loss="mse",
        metrics=["mae"],
    )
    return model


def _state(model):
    variables = (
        model.variables + model.optimizer.variables + model.metrics_variables
    )
    return [keras.ops.convert_to_numpy(v).copy() for v in variables]


def _assert_same(before, after):
    assert len(before) == len(after)
    for a, b in zip(before, after):
        assert np.array_equal(a, b)


def test_model_and_optimizer_unchanged_and_suggestions_in_range():
    x, y = _data()
    model = _model()
    model.layers[0].trainable = False
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)  # slots are non-zero
    before = _state(model)
    trainable = [v.trainable for v in model.weights]

    result = kerasft.lr_find(
        model, x, y, batch_size=16, start_lr=1e-4, end_lr=100.0, num_steps=40
    )

    _assert_same(before, _state(model))
    assert [v.trainable for v in model.weights] == trainable
    assert result.diverged_at is not None
    assert len(result.learning_rates) == len(result.losses) <= 40
    rates = result.learning_rates
    assert rates[0] == pytest.approx(1e-4)
    assert np.all(np.diff(rates) > 0)
    for name, rate in result.suggestions.items():
        assert rates[0] / 10 <= rate < result.diverged_at, name
    # The model trains on normally afterwards.
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)


def test_unbuilt_optimizer_is_built_with_its_initial_state():
    x, y = _data(64)
    model = _model()
    weights = [keras.ops.convert_to_numpy(v).copy() for v in model.weights]
    kerasft.lr_find(model, x, y, num_steps=5, end_lr=1e-2)
    _assert_same(
        weights, [keras.ops.convert_to_numpy(v) for v in model.weights]
    )
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 0
    for v in model.optimizer.variables + model.metrics_variables:
        if "learning_rate" not in v.path:
            assert not np.any(keras.ops.convert_to_numpy(v)), v.path


def test_discriminative_sweeps_the_base_rate_and_keeps_factors(monkeypatch):
    x, y = _data(128)
    model = _model()
    optimizer = kerasft.optimizers.discriminative(
        keras.optimizers.SGD(0.01), model, {"hidden": 0.1}
    )
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(x, y, epochs=1, verbose=0)
    before = _state(model) + [
        keras.ops.convert_to_numpy(o.learning_rate).copy()
        for o in optimizer.sub_optimizers
    ]
    seen = []
    rate = type(optimizer).learning_rate

    def record(self, value):
        rate.fset(self, value)
        seen.append(
            {f: o.learning_rate for f, o in self._factor_optimizers.items()}
        )
        seen[-1] = {
            f: float(keras.ops.convert_to_numpy(r)) for f, r in seen[-1].items()
        }

    monkeypatch.setattr(
        type(optimizer), "learning_rate", property(rate.fget, record)
    )
    kerasft.lr_find(model, x, y, num_steps=6, start_lr=1e-3, end_lr=1e-1)
    monkeypatch.undo()

    _assert_same(
        before,
        _state(model)
        + [
            keras.ops.convert_to_numpy(o.learning_rate)
            for o in optimizer.sub_optimizers
        ],
    )
    assert seen[-1][1.0] == pytest.approx(1e-1)
    assert seen[-1][0.1] == pytest.approx(1e-2)


def test_datasets_batches_and_plot(tmp_path):
    x, y = _data(64)
    model = _model()
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]
    # Four batches are reused from the start for ten steps.
    result = kerasft.lr_find(model, batches, num_steps=10, end_lr=1e-2)
    assert len(result.losses) == 10

    class Data(keras.utils.PyDataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return batches[i]

    result = kerasft.lr_find(model, Data(), num_steps=6, end_lr=1e-2)
    assert len(result.losses) == 6

    # A one-shot generator ends the test when it runs out.
    result = kerasft.lr_find(
        model, (b for b in batches[:3]), num_steps=6, end_lr=1e-2
    )
    assert len(result.losses) == 3

    path = result.plot(tmp_path / "out" / "lr.png")
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_valley_and_suggestions_on_a_known_curve():
    rates = list(np.geomspace(1e-5, 1.0, 50))
    losses = (
        [2.0] * 10
        + list(np.linspace(2.0, 0.5, 30))
        + [0.5 + i for i in range(10)]
    )
    found = suggest(rates, losses)
    lowest = rates[int(np.argmin(losses))]
    assert found["minimum"] == pytest.approx(lowest / 10)
    assert rates[10] <= found["valley"] <= rates[40]
    assert rates[10] <= found["steep"] <= rates[40]


_BAD_ARGUMENTS = [
    ({"start_lr": 0.0}, ValueError, "start_lr"),
    ({"start_lr": 1.0, "end_lr": 0.1}, ValueError, "end_lr"),
    ({"num_steps": 1}, ValueError, "num_steps"),
    ({"num_steps": 2.5}, TypeError, "num_steps"),
    ({"beta": 1.0}, ValueError, "beta"),
    ({"diverge": 1.0}, ValueError, "diverge"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"seed": "a"}, TypeError, "seed"),
    ({"y": None}, ValueError, "`y` is required"),
]


def test_bad_arguments_change_nothing():
    x, y = _data(32)
    model = _model()
    model.fit(x, y, epochs=1, verbose=0)
    before = _state(model)
    for kwargs, error, match in _BAD_ARGUMENTS:
        with pytest.raises(error, match=match):
            kerasft.lr_find(model, x, **{"y": y, **kwargs})
        _assert_same(before, _state(model))


def test_model_checks():
    x, y = _data(32)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="not compiled"):
        kerasft.lr_find(model, x, y)
    with pytest.raises(TypeError, match="keras.Model"):
        kerasft.lr_find("model", x, y)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse")
    with pytest.raises(ValueError, match="LearningRateSchedule"):
        kerasft.lr_find(model, x, y)
    optimizer = kerasft.optimizers.discriminative(
        keras.optimizers.SGD(schedule), model, {}
    )
    model.compile(optimizer=optimizer, loss="mse")
    with pytest.raises(ValueError, match="LearningRateSchedule"):
        kerasft.lr_find(model, x, y)
    with pytest.raises(ValueError, match="`y` must be None"):
        kerasft.lr_find(_model(), keras.utils.PyDataset(), y)
    with pytest.raises(TypeError, match="`x` must be"):
        kerasft.lr_find(_model(), 3)


def test_tf_data_dataset():
    tf = pytest.importorskip("tensorflow")
    x, y = _data(64)
    model = _model()
    before = [keras.ops.convert_to_numpy(v).copy() for v in model.weights]
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    result = kerasft.lr_find(model, dataset, num_steps=6, end_lr=1e-2)
    assert len(result.losses) == 6
    _assert_same(before, [keras.ops.convert_to_numpy(v) for v in model.weights])
    with pytest.raises(ValueError, match="`y` must be None"):
        kerasft.lr_find(model, dataset, y)
