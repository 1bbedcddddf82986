"""kerasft.plotting: learning-rate and history plots written as PNG files."""

import os

import keras
import numpy as np
import pytest

import kerasft
from kerasft import plotting

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path):
    assert os.path.isfile(path)
    assert os.path.getsize(path) > 1000
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC


def _tiny_model():
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, name="feat")(inputs)
    outputs = keras.layers.Dense(2, name="clf")(x)
    return keras.Model(inputs, outputs, name="tiny")


def test_learning_rates_of_discriminative_optimizer(tmp_path):
    model = _tiny_model()
    schedule = kerasft.schedules.OneCycle(1e-3, total_steps=20)
    optimizer = kerasft.optimizers.discriminative(
        keras.optimizers.Adam(schedule), model, {"feat": 0.1}
    )
    path = os.fspath(tmp_path / "plots" / "lr.png")
    out = plotting.plot_learning_rates(
        optimizer, 20, path, events=[(10, "unfreeze feat")]
    )
    assert out == path
    _assert_png(path)


def test_learning_rates_of_schedule_with_stage_factors_and_changes(tmp_path):
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-2, 5, 0.5)
    changes = [
        {"epoch": 0, "step": None, "target": "from 'head'"},
        {"epoch": 2, "step": None, "target": "from 'block5'"},
    ]
    path = os.fspath(tmp_path / "lr.png")
    plotting.plot_learning_rates(
        schedule,
        list(range(0, 40, 2)),
        path,
        events=changes,
        stage_factors={"block5": 0.1, "head": 1.0},
        steps_per_epoch=10,
    )
    _assert_png(path)


def test_learning_rates_of_several_schedules_and_a_float(tmp_path):
    path = os.fspath(tmp_path / "lr.png")
    plotting.plot_learning_rates(
        {
            "one cycle": kerasft.schedules.OneCycle(1e-3, total_steps=10),
            "adam": keras.optimizers.Adam(3e-4),
            "constant": 1e-4,
        },
        10,
        path,
    )
    _assert_png(path)


def test_learning_rates_errors(tmp_path):
    path = os.fspath(tmp_path / "lr.png")
    with pytest.raises(ValueError, match="Received: steps=0"):
        plotting.plot_learning_rates(1e-3, 0, path)
    with pytest.raises(TypeError, match="Received: optimizer_or_schedules"):
        plotting.plot_learning_rates("adam", 5, path)
    with pytest.raises(ValueError, match="must be a finite number > 0"):
        plotting.plot_learning_rates(1e-3, 5, path, stage_factors={"head": 0.0})
    with pytest.raises(ValueError, match="steps_per_epoch"):
        plotting.plot_learning_rates(
            1e-3, 5, path, events=[{"epoch": 1, "step": None}]
        )
    with pytest.raises(ValueError, match="not to a dict or list"):
        plotting.plot_learning_rates(
            [1e-3, 1e-4], 5, path, stage_factors={"head": 1.0}
        )
    with pytest.raises(ValueError, match="is a folder"):
        plotting.plot_learning_rates(1e-3, 5, os.fspath(tmp_path))
    assert not os.path.exists(path)


def test_history_with_stage_rates_and_events(tmp_path):
    nan = float("nan")
    history = {
        "loss": [1.2, 0.9, 0.7, 0.6],
        "accuracy": [0.5, 0.6, 0.7, 0.75],
        "val_loss": [1.1, 0.95, 0.8, 0.7],
        "val_accuracy": [0.55, 0.6, 0.68, 0.7],
        "lr/block5": [nan, nan, 1e-4, 1e-4],
        "lr/head": [3e-3, 3e-3, 1e-4, 1e-4],
    }
    path = os.fspath(tmp_path / "history.png")
    plotting.plot_history(
        history, path, events=[(2, "block5 + head")], title="run"
    )
    _assert_png(path)


def test_history_of_fit_with_unfreeze_schedule(tmp_path):
    model = _tiny_model()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    schedule = kerasft.callbacks.UnfreezeSchedule({0: "clf", 1: 0})
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    history = model.fit(
        x,
        y,
        epochs=2,
        batch_size=8,
        verbose=0,
        callbacks=[
            schedule,
            keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr),
        ],
    )
    assert len(schedule.changes) == 2
    path = os.fspath(tmp_path / "history.png")
    plotting.plot_history(history, path, events=schedule)
    _assert_png(path)


def test_history_errors(tmp_path):
    path = os.fspath(tmp_path / "history.png")
    with pytest.raises(TypeError, match="Received: history=3"):
        plotting.plot_history(3, path)
    with pytest.raises(ValueError, match="history` is empty"):
        plotting.plot_history({}, path)
    with pytest.raises(ValueError, match="same length"):
        plotting.plot_history({"loss": [1.0, 0.5], "val_loss": [1.0]}, path)
    with pytest.raises(ValueError, match="nothing to plot"):
        plotting.plot_history({"trainable_params": [3, 4]}, path)
    with pytest.raises(TypeError, match="Each event"):
        plotting.plot_history({"loss": [1.0]}, path, events=[(1, 2, 3)])
    assert not os.path.exists(path)
