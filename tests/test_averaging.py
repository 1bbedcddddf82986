"""Tests for kerasft.callbacks.EMA, kerasft.callbacks.SWA and
kerasft.recompute_bn_statistics."""

import os

import keras
import numpy as np
import pytest

import kerasft
from kerasft.callbacks import EMA
from kerasft.callbacks import SWA
from kerasft.callbacks import UnfreezeSchedule

FIT = dict(batch_size=8, shuffle=False, verbose=0)


def _model(optimizer=None, bn=False):
    inputs = keras.Input((4,))
    x = keras.layers.Dense(8, name="d0")(inputs)
    if bn:
        x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Dense(8, name="d1")(x)
    outputs = keras.layers.Dense(2, name="head")(x)
    model = keras.Model(inputs, outputs, name="tiny")
    model.compile(optimizer=optimizer or keras.optimizers.SGD(0.1), loss="mse")
    return model


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 4), dtype="float32")
    y = rng.random((n, 2), dtype="float32")
    return x, y


def _weights(model):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in model.weights]


class _Recorder(keras.callbacks.Callback):
    """Records the weights at each epoch start, step end, epoch end, test."""

    def on_train_begin(self, logs=None):
        self.begins, self.steps, self.ends, self.tests = [], [], [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.begins.append(_weights(self.model))
        self.steps.append([])

    def on_train_batch_end(self, batch, logs=None):
        self.steps[-1].append(_weights(self.model))

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append(_weights(self.model))

    def on_test_begin(self, logs=None):
        self.tests.append(_weights(self.model))


def _ema_reference(recorder, decay, start_epoch, every=1, warmup=False):
    """The EMA of the recorded weights, in float32 like the callback."""
    average = [w.copy() for w in recorder.begins[start_epoch]]
    history = []  # The average after each epoch.
    updates = steps = 0
    for epoch_steps in recorder.steps[start_epoch:]:
        for weights in epoch_steps:
            steps += 1
            if steps % every:
                continue
            d = decay
            if warmup:
                d = min(decay, (1 + updates) / (10 + updates))
            rate = np.float32(1.0 - d)
            average = [a + (w - a) * rate for a, w in zip(average, weights)]
            updates += 1
        history.append(average)
    return history, updates


def _assert_equal(actual, expected):
    assert len(actual) == len(expected)
    for a, b in zip(actual, expected):
        np.testing.assert_array_equal(a, b)


# EMA: the numbers.


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(decay=0.9),
        dict(decay=0.8, start_epoch=1, every_n_steps=3),
        dict(decay=0.99, warmup=True),
    ],
    ids=["every_step", "start_and_every_3", "warmup"],
)
def test_ema_matches_numpy_reference(kwargs):
    x, y = _data()
    model = _model()
    recorder = _Recorder()
    ema = EMA(**kwargs)
    model.fit(x, y, epochs=3, callbacks=[recorder, ema], **FIT)
    history, updates = _ema_reference(
        recorder,
        kwargs["decay"],
        kwargs.get("start_epoch", 0),
        kwargs.get("every_n_steps", 1),
        kwargs.get("warmup", False),
    )
    assert ema.updates == updates > 0
    _assert_equal(_weights(model), history[-1])
    # The average is not the last weights.
    assert np.any(_weights(model)[0] != recorder.ends[-1][0])


def test_ema_inside_unfreeze_schedule():
    # d0 never trains, d1 starts frozen and joins at epoch 2; Adam's slots
    # are rebuilt at each change.
    x, y = _data()
    model = _model(keras.optimizers.Adam(0.01))
    start = _weights(model)
    recorder = _Recorder()
    ema = EMA(decay=0.9)
    schedule = UnfreezeSchedule({0: "head", 2: "d1"})
    model.fit(x, y, epochs=4, callbacks=[schedule, recorder, ema], **FIT)
    history, _ = _ema_reference(recorder, 0.9, 0)
    final = _weights(model)
    _assert_equal(final, history[-1])
    d0 = [i for i, v in enumerate(model.weights) if v.path.startswith("d0")]
    d1 = [i for i, v in enumerate(model.weights) if v.path.startswith("d1")]
    for i in d0:  # Frozen throughout: bit-identical.
        np.testing.assert_array_equal(final[i], start[i])
    for i in d1:  # Frozen at first, then trained: averaged.
        assert np.any(final[i] != start[i])
        assert np.any(final[i] != recorder.ends[-1][i])


def test_ema_with_discriminative_rates_inside_a_schedule():
    x, y = _data()
    model = _model()
    optimizer = kerasft.optimizers.discriminative(
        keras.optimizers.SGD(0.1), model, {"d1": 0.1}
    )
    model.compile(optimizer=optimizer, loss="mse")
    recorder = _Recorder()
    ema = EMA(decay=0.9)
    schedule = UnfreezeSchedule({0: "head", 1: 0})
    model.fit(x, y, epochs=2, callbacks=[schedule, recorder, ema], **FIT)
    history, _ = _ema_reference(recorder, 0.9, 0)
    _assert_equal(_weights(model), history[-1])


def test_logs_to_the_kerasft_logger(caplog):
    x, y = _data()
    model = _model()
    with caplog.at_level("INFO", logger="kerasft"):
        model.fit(x, y, epochs=1, callbacks=[EMA(decay=0.5)], **FIT)
    messages = [r.getMessage() for r in caplog.records]
    assert any("EMA: averaging" in m for m in messages)
    assert any("EMA: wrote the average (4 updates" in m for m in messages)


def test_ema_swaps_the_average_in_for_validation():
    x, y = _data()
    model = _model()
    recorder = _Recorder()
    ema = EMA(decay=0.9)
    # The recorder after EMA sees what validation sees.
    model.fit(
        x,
        y,
        epochs=2,
        validation_data=(x[:8], y[:8]),
        callbacks=[ema, recorder],
        **FIT,
    )
    history, _ = _ema_reference(recorder, 0.9, 0)
    _assert_equal(recorder.tests[0], history[0])
    _assert_equal(recorder.tests[1], history[1])
    # Training continued from the raw weights.
    assert np.any(recorder.begins[1][0] != history[0][0])
    _assert_equal(recorder.begins[1], recorder.ends[0])

    plain = _model()
    plain.set_weights(recorder.begins[0])
    other = EMA(decay=0.9, swap_on_evaluate=False)
    plain.fit(
        x, y, epochs=2, validation_data=(x[:8], y[:8]), callbacks=[other], **FIT
    )
    _assert_equal(_weights(plain), _weights(model))


def test_ema_with_steps_per_execution():
    if keras.backend.backend() == "torch":
        pytest.skip("Keras' torch trainer requires steps_per_execution=1.")
    x, y = _data()
    model = _model()
    model.compile(
        optimizer=keras.optimizers.SGD(0.1), loss="mse", steps_per_execution=2
    )
    ema = EMA(decay=0.9, every_n_steps=4)
    model.fit(x, y, epochs=2, callbacks=[ema], **FIT)
    assert ema.updates == 2  # 8 steps, read at steps 2, 4, 6, 8.


def test_training_ending_before_start_warns_and_keeps_weights():
    x, y = _data()
    model = _model()
    recorder = _Recorder()
    with pytest.warns(UserWarning, match="before averaging started"):
        model.fit(
            x, y, epochs=2, callbacks=[recorder, EMA(start_epoch=2)], **FIT
        )
    _assert_equal(_weights(model), recorder.ends[-1])


def test_instance_is_reusable():
    x, y = _data()
    ema = EMA(decay=0.5)
    first = _model()
    first.fit(x, y, epochs=1, callbacks=[ema], **FIT)
    assert ema.updates == 4
    second = _model()
    recorder = _Recorder()
    second.fit(x, y, epochs=1, callbacks=[recorder, ema], **FIT)
    assert ema.updates == 4
    history, _ = _ema_reference(recorder, 0.5, 0)
    _assert_equal(_weights(second), history[-1])


# SWA.


def test_swa_is_the_mean_of_epoch_end_weights():
    x, y = _data()
    model = _model(keras.optimizers.Adam(0.01))
    recorder = _Recorder()
    swa = SWA(start_epoch=1)
    schedule = UnfreezeSchedule({0: "head", 2: 0})
    model.fit(x, y, epochs=4, callbacks=[schedule, recorder, swa], **FIT)
    assert swa.averaged == 3
    ends = recorder.ends[1:]
    reference = [w.copy() for w in ends[0]]
    for n, weights in enumerate(ends[1:], start=2):
        reference = [
            a + (w - a) * np.float32(1 / n) for a, w in zip(reference, weights)
        ]
    final = _weights(model)
    _assert_equal(final, reference)
    for i, value in enumerate(final):
        mean = np.mean([e[i].astype("float64") for e in ends], axis=0)
        np.testing.assert_allclose(value, mean, rtol=1e-6, atol=1e-7)


def test_swa_swap_on_evaluate_includes_the_current_epoch():
    x, y = _data()
    model = _model()
    recorder = _Recorder()
    swa = SWA(start_epoch=1, swap_on_evaluate=True)
    model.fit(
        x,
        y,
        epochs=3,
        validation_data=(x[:8], y[:8]),
        callbacks=[swa, recorder],
        **FIT,
    )
    assert swa.averaged == 2
    # Epoch 0 validates the raw weights, epoch 1 the average of {1}, and
    # epoch 2 the mean of the ends of epochs 1 and 2.
    _assert_equal(recorder.tests[0], recorder.ends[0])
    _assert_equal(recorder.tests[1], recorder.ends[1])
    mean = [a + (b - a) * np.float32(0.5) for a, b in zip(*recorder.ends[1:])]
    _assert_equal(recorder.tests[2], mean)
    _assert_equal(_weights(model), mean)


def _bn_input_means(model, x, batch_size):
    """The per-batch mean and variance of the inputs of layer "bn"."""
    features = keras.Model(model.input, model.get_layer("bn").input)
    outputs = [
        np.asarray(
            keras.ops.convert_to_numpy(features(x[i : i + batch_size]))
        ).astype("float64")
        for i in range(0, len(x), batch_size)
    ]
    mean = np.mean([o.mean(axis=0) for o in outputs], axis=0)
    variance = np.mean([o.var(axis=0) for o in outputs], axis=0)
    return mean, variance


def test_swa_recomputes_batch_norm_statistics():
    x, y = _data()
    model = _model(bn=True)
    swa = SWA(start_epoch=1, bn_data=x, bn_batch_size=16)
    model.fit(x, y, epochs=3, callbacks=[swa], **FIT)
    bn = model.get_layer("bn")
    assert bn.momentum == 0.99
    mean, variance = _bn_input_means(model, x, 16)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(bn.moving_mean), mean, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(bn.moving_variance),
        variance,
        rtol=1e-4,
        atol=1e-6,
    )


def test_swa_without_bn_data_warns_when_bn_trained():
    x, y = _data()
    model = _model(bn=True)
    with pytest.warns(UserWarning, match="recompute_bn_statistics"):
        model.fit(x, y, epochs=2, callbacks=[SWA(start_epoch=0)], **FIT)


def test_swa_with_frozen_bn_does_not_warn(recwarn):
    x, y = _data()
    model = _model(bn=True)
    kerasft.freeze(model, "bn")
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, epochs=2, callbacks=[SWA(start_epoch=0)], **FIT)
    assert not [w for w in recwarn if "BatchNorm" in str(w.message)]


# recompute_bn_statistics.


def _non_bn_weights(model):
    return [
        w
        for v, w in zip(model.weights, _weights(model))
        if not v.path.startswith("bn")
    ]


def test_recompute_bn_statistics_forms_of_data():
    x, _ = _data()
    model = _model(bn=True)
    # Some training so the statistics are not the initial ones.
    model.fit(x, _data()[1], epochs=1, **FIT)
    bn = model.get_layer("bn")
    others = _non_bn_weights(model)
    paths = kerasft.recompute_bn_statistics(model, x, batch_size=8)
    assert paths == [bn.path]
    mean, _ = _bn_input_means(model, x, 8)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(bn.moving_mean), mean, rtol=1e-5, atol=1e-6
    )
    _assert_equal(_non_bn_weights(model), others)

    batches = [(x[i : i + 8], None) for i in range(0, 32, 8)]
    bn.moving_mean.assign(np.zeros(8, "float32"))
    kerasft.recompute_bn_statistics(model, iter(batches))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(bn.moving_mean), mean, rtol=1e-5, atol=1e-6
    )

    # `steps` stops early: the first batch alone.
    kerasft.recompute_bn_statistics(model, x, batch_size=8, steps=1)
    first, _ = _bn_input_means(model, x[:8], 8)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(bn.moving_mean), first, rtol=1e-5, atol=1e-6
    )


def test_recompute_bn_statistics_leaves_frozen_layers():
    x, _ = _data()
    model = _model(bn=True)
    bn = model.get_layer("bn")
    bn.trainable = False
    before = _weights(model)
    assert kerasft.recompute_bn_statistics(model, x) == []
    _assert_equal(_weights(model), before)


def test_recompute_bn_statistics_refuses_empty_data():
    model = _model(bn=True)
    before = _weights(model)
    with pytest.raises(ValueError, match="gave no batch"):
        kerasft.recompute_bn_statistics(model, iter([]))
    with pytest.raises(ValueError, match="at least one sample"):
        kerasft.recompute_bn_statistics(model, np.zeros((0, 4), "float32"))
    _assert_equal(_weights(model), before)


# Resume with BackupAndRestore.


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 3:
            raise RuntimeError("interrupted")


def _averaging(kind):
    if kind == "ema":
        return EMA(decay=0.8, every_n_steps=3, warmup=True)
    return SWA(start_epoch=1)


def _resume_callbacks(kind, backup_dir, order, interrupt):
    callbacks = [
        UnfreezeSchedule({0: "head", 2: "d1", 4: 0}),
        _averaging(kind),
    ]
    if backup_dir is not None:
        if order == "kerasft_backup":
            backup = kerasft.callbacks.BackupAndRestore(backup_dir)
        else:
            backup = keras.callbacks.BackupAndRestore(backup_dir)
        callbacks.insert(0 if order != "backup_last" else 2, backup)
    if interrupt:
        callbacks.append(_Interrupt())
    return callbacks


def _resume_model():
    keras.utils.set_random_seed(3)
    return _model(keras.optimizers.Adam(0.01))


@pytest.mark.parametrize(
    "order", ["backup_first", "backup_last", "kerasft_backup"]
)
@pytest.mark.parametrize("kind", ["ema", "swa"])
def test_resume_with_backup_and_restore_is_exact(tmp_path, kind, order):
    x, y = _data()
    reference = _resume_model()
    callbacks = _resume_callbacks(kind, None, order, False)
    reference.fit(x, y, epochs=6, callbacks=callbacks, **FIT)
    expected = _weights(reference)

    backup_dir = str(tmp_path / "backup")
    model = _resume_model()
    with pytest.raises(RuntimeError, match="interrupted"):
        callbacks = _resume_callbacks(kind, backup_dir, order, True)
        model.fit(x, y, epochs=6, callbacks=callbacks, **FIT)
    assert any(
        name.startswith(f"kerasft_{kind}") for name in os.listdir(backup_dir)
    )

    resumed = _resume_model()
    callbacks = _resume_callbacks(kind, backup_dir, order, False)
    history = resumed.fit(x, y, epochs=6, callbacks=callbacks, **FIT)
    assert len(history.history["loss"]) == 3
    _assert_equal(_weights(resumed), expected)
    assert not os.path.exists(backup_dir)


def test_resume_without_saved_average_warns(tmp_path):
    x, y = _data()
    backup_dir = str(tmp_path / "backup")
    model = _model()
    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(
            x,
            y,
            epochs=6,
            callbacks=[
                keras.callbacks.BackupAndRestore(backup_dir),
                _Interrupt(),
            ],
            **FIT,
        )
    resumed = _model()
    ema = EMA(decay=0.5)
    with pytest.warns(UserWarning, match="no saved average"):
        resumed.fit(
            x,
            y,
            epochs=4,
            callbacks=[keras.callbacks.BackupAndRestore(backup_dir), ema],
            **FIT,
        )
    assert ema.updates == 4


def test_resume_with_a_broken_saved_average_warns(tmp_path):
    x, y = _data()
    backup_dir = str(tmp_path / "backup")
    with pytest.raises(RuntimeError, match="interrupted"):
        _resume_model().fit(
            x,
            y,
            epochs=6,
            callbacks=_resume_callbacks("ema", backup_dir, "last", True),
            **FIT,
        )
    with open(os.path.join(backup_dir, "kerasft_ema.npz"), "wb") as f:
        f.write(b"cut short")
    with pytest.warns(UserWarning, match="no saved average"):
        _resume_model().fit(
            x,
            y,
            epochs=6,
            callbacks=_resume_callbacks("ema", backup_dir, "last", False),
            **FIT,
        )


@pytest.mark.parametrize("make", [EMA, lambda: SWA(0)], ids=["ema", "swa"])
def test_mid_epoch_backups_are_refused(tmp_path, make):
    x, y = _data()
    model = _model()
    before = _weights(model)
    backup_dir = tmp_path / "backup"
    callbacks = [
        make(),
        keras.callbacks.BackupAndRestore(str(backup_dir), save_freq=2),
    ]
    with pytest.raises(ValueError, match=r"Received: save_freq=2"):
        model.fit(x, y, epochs=2, callbacks=callbacks, **FIT)
    _assert_equal(_weights(model), before)
    assert not backup_dir.exists()


# Refusals and configuration.


def test_optimizer_use_ema_is_refused():
    x, y = _data()
    model = _model(keras.optimizers.SGD(0.1, use_ema=True))
    before = _weights(model)
    with pytest.raises(ValueError, match="use_ema=True"):
        model.fit(x, y, epochs=1, callbacks=[EMA()], **FIT)
    _assert_equal(_weights(model), before)


def test_get_config_round_trip():
    ema = EMA(
        0.95,
        start_epoch=2,
        every_n_steps=5,
        warmup=True,
        swap_on_evaluate=False,
    )
    config = keras.saving.serialize_keras_object(ema)
    clone = keras.saving.deserialize_keras_object(config)
    assert isinstance(clone, EMA)
    assert (
        clone.get_config()
        == ema.get_config()
        == {
            "decay": 0.95,
            "start_epoch": 2,
            "every_n_steps": 5,
            "warmup": True,
            "swap_on_evaluate": False,
        }
    )
    swa = SWA(
        3, bn_data=np.zeros((4, 4)), bn_batch_size=7, swap_on_evaluate=True
    )
    clone = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(swa)
    )
    assert isinstance(clone, SWA)
    assert clone.bn_data is None
    assert (
        clone.get_config()
        == swa.get_config()
        == {
            "start_epoch": 3,
            "bn_batch_size": 7,
            "swap_on_evaluate": True,
        }
    )


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: EMA(1.0), ValueError, "Received: decay=1.0"),
        (lambda: EMA(every_n_steps=0), ValueError, "every_n_steps=0"),
        (lambda: SWA(-1), ValueError, "start_epoch=-1"),
        (lambda: SWA(0, bn_data="x"), TypeError, "bn_data='x'"),
        (
            lambda: SWA(0, bn_data=np.zeros((0, 4))),
            ValueError,
            "bn_data with shape",
        ),
    ],
)
def test_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()
