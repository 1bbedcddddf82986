"""Tests for kerasft.callbacks.FreezeUntil."""

import keras
import numpy as np
import pytest

import kerasft.callbacks as kc
from kerasft.callbacks import FreezeUntil

STAGES = ("d0", "d1", "head")


def _model():
    inputs = keras.Input((4,))
    x = keras.layers.Dense(8, name="d0")(inputs)
    x = keras.layers.Dense(8, name="d1")(x)
    outputs = keras.layers.Dense(2, name="head")(x)
    model = keras.Model(inputs, outputs, name="tiny")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model


def _data():
    rng = np.random.default_rng(0)
    return (
        rng.random((32, 4), dtype="float32"),
        rng.random((32, 2), dtype="float32"),
    )


def _kernels(model):
    return {n: model.get_layer(n).kernel.numpy().copy() for n in STAGES}


@pytest.mark.parametrize(
    "inclusive, trained", [(True, ["head"]), (False, ["d1", "head"])]
)
def test_freeze_until_takes_effect_before_training(inclusive, trained):
    model = _model()
    x, y = _data()
    start = _kernels(model)
    callback = FreezeUntil("d1", inclusive=inclusive)
    history = model.fit(
        x, y, batch_size=8, epochs=2, callbacks=[callback], verbose=0
    )
    end = _kernels(model)
    assert [n for n in STAGES if np.any(start[n] != end[n])] == trained
    assert [c["epoch"] for c in callback.changes] == [0]
    names = [v.name for v in model.optimizer.variables]
    assert not [n for n in names if n.startswith("d0_")]
    assert (
        history.history["first_trainable_stage"]
        == [STAGES.index(trained[0])] * 2
    )


def test_removed_factory_names_the_class():
    # `kerasft.callbacks.freeze_until` would read like the top-level
    # `kerasft.freeze_until`, which freezes at once; the callback is the class.
    with pytest.raises(AttributeError, match=r"FreezeUntil\(target"):
        kc.freeze_until  # noqa: B018
    with pytest.raises(AttributeError, match=r"UnfreezeSchedule\(schedule"):
        kc.unfreeze_schedule  # noqa: B018


def test_freeze_until_resume_with_backup_and_restore(tmp_path):
    x, y = _data()
    args = dict(batch_size=8, epochs=4, shuffle=False, verbose=0)
    keras.utils.set_random_seed(5)
    reference = _model()
    reference.fit(x, y, callbacks=[FreezeUntil("d0")], **args)

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise RuntimeError("interrupted")

    backup = str(tmp_path / "backup")
    keras.utils.set_random_seed(5)
    model = _model()
    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(
            x,
            y,
            callbacks=[
                keras.callbacks.BackupAndRestore(backup),
                FreezeUntil("d0"),
                Interrupt(),
            ],
            **args,
        )
    keras.utils.set_random_seed(5)
    resumed = _model()
    resumed.fit(
        x,
        y,
        callbacks=[keras.callbacks.BackupAndRestore(backup), FreezeUntil("d0")],
        **args,
    )
    for a, b in zip(resumed.weights, reference.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(resumed.optimizer.iterations.numpy()) == 16


def test_freeze_until_bad_input():
    with pytest.raises(TypeError, match="`inclusive` must be True or False"):
        FreezeUntil("d1", inclusive="yes")
    with pytest.raises(TypeError, match="Received: target=None"):
        FreezeUntil(None)
    with pytest.raises(ValueError, match="Received: bn='always'"):
        FreezeUntil("d1", bn="always")
    model = _model()
    x, y = _data()
    with pytest.raises(ValueError, match=r"Did you mean 'head'\?"):
        model.fit(x, y, epochs=1, callbacks=[FreezeUntil("heads")], verbose=0)


def test_public_surface():
    assert sorted(kc.__all__) == [
        "BackupAndRestore",
        "EMA",
        "FreezeUntil",
        "SWA",
        "UnfreezeSchedule",
        "only",
    ]
    for name in kc.__all__:
        assert getattr(kc, name) is not None
