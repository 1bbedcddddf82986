"""Tests for kerasft.callbacks.UnfreezeSchedule."""

import importlib.util

import keras
import numpy as np
import pytest

import kerasft.callbacks as kc
from kerasft.callbacks import UnfreezeSchedule

BACKEND = keras.backend.backend()
TORCH_COMPILE_REASON = (
    "torch.compile costs ~40 s on 2 CPU cores; a rebuild under torch.compile "
    "is covered once by tests/optimizers/test_rebuild.py"
)
SPE_REASON = "Keras' torch trainer requires steps_per_execution=1."
STAGES = ("d0", "d1", "head")


def _model(jit_compile=False, steps_per_execution=1, optimizer=None):
    inputs = keras.Input((4,))
    x = keras.layers.Dense(8, name="d0")(inputs)
    x = keras.layers.Dense(8, name="d1")(x)
    outputs = keras.layers.Dense(2, name="head")(x)
    model = keras.Model(inputs, outputs, name="tiny")
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(0.01),
        loss="mse",
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    return model


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 4), dtype="float32")
    y = rng.random((n, 2), dtype="float32")
    return x, y


def _kernels(model):
    return {n: model.get_layer(n).kernel.numpy().copy() for n in STAGES}


class _Recorder(keras.callbacks.Callback):
    """Records every stage's kernel after each step and each epoch."""

    def on_train_begin(self, logs=None):
        self.start = _kernels(self.model)
        self.steps = []
        self.epochs = []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(_kernels(self.model))

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(_kernels(self.model))


def _changed(before, after, name):
    return bool(np.any(before[name] != after[name]))


def _variant(jit_compile, steps_per_execution):
    marks = []
    if jit_compile and BACKEND == "torch":
        marks.append(pytest.mark.skipif(True, reason=TORCH_COMPILE_REASON))
    if steps_per_execution > 1 and BACKEND == "torch":
        marks.append(pytest.mark.skipif(True, reason=SPE_REASON))
    return pytest.param(
        jit_compile,
        steps_per_execution,
        marks=marks,
        id=f"jit{int(jit_compile)}-spe{steps_per_execution}",
    )


# (a) weights change only from the epoch or step of the unfreeze.


@pytest.mark.parametrize(
    "jit_compile, steps_per_execution",
    [_variant(False, 1), _variant(True, 1), _variant(False, 2)],
)
def test_epoch_schedule_weights(jit_compile, steps_per_execution):
    model = _model(jit_compile, steps_per_execution)
    x, y = _data()
    recorder = _Recorder()
    schedule = UnfreezeSchedule({0: "head", 2: "d1"})
    model.fit(
        x, y, batch_size=8, epochs=4, callbacks=[schedule, recorder], verbose=0
    )
    start, ends = recorder.start, recorder.epochs
    # d0 is never unfrozen: bit-identical.
    np.testing.assert_array_equal(ends[-1]["d0"], start["d0"])
    # d1 is frozen during epochs 0-1 and trains from epoch 2.
    np.testing.assert_array_equal(ends[1]["d1"], start["d1"])
    assert _changed(ends[1], ends[2], "d1")
    assert _changed(ends[2], ends[3], "d1")
    assert _changed(start, ends[0], "head")


@pytest.mark.parametrize(
    "jit_compile, steps_per_execution",
    [_variant(False, 1), _variant(True, 2)],
)
def test_step_schedule_weights(jit_compile, steps_per_execution):
    model = _model(jit_compile, steps_per_execution)
    x, y = _data()
    recorder = _Recorder()
    # 4 steps per epoch; step 6 is epoch 1, batch 2 (an execution start
    # for steps_per_execution=2 as well).
    schedule = UnfreezeSchedule({0: "head", 6: "d1"}, unit="step")
    model.fit(
        x, y, batch_size=8, epochs=2, callbacks=[schedule, recorder], verbose=0
    )
    per_call = steps_per_execution
    steps = recorder.steps  # one entry per execution
    first_trained = 6 // per_call  # index of the execution starting at 6
    np.testing.assert_array_equal(
        steps[first_trained - 1]["d1"], recorder.start["d1"]
    )
    assert _changed(steps[first_trained - 1], steps[first_trained], "d1")
    np.testing.assert_array_equal(steps[-1]["d0"], recorder.start["d0"])
    assert [c["step"] for c in schedule.changes] == [0, 6]


def test_step_entry_between_executions_applies_at_next_start():
    if BACKEND == "torch":
        pytest.skip(SPE_REASON)
    model = _model(steps_per_execution=2)
    x, y = _data()
    schedule = UnfreezeSchedule({0: "head", 5: "d1"}, unit="step")
    model.fit(x, y, batch_size=8, epochs=2, callbacks=[schedule], verbose=0)
    assert [c["step"] for c in schedule.changes] == [0, 6]


# (b) optimizer state across an unfreeze, against a hand-carried reference.


def test_optimizer_state_matches_manual_reference():
    x, y = _data()
    keras.utils.set_random_seed(7)
    model = _model()
    model.fit(
        x,
        y,
        batch_size=8,
        epochs=4,
        shuffle=False,
        callbacks=[UnfreezeSchedule({0: "head", 2: "d1"})],
        verbose=0,
    )

    keras.utils.set_random_seed(7)
    reference = _model()
    reference.get_layer("d0").trainable = False
    reference.get_layer("d1").trainable = False
    reference.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    reference.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    state = {v.name: v.numpy() for v in reference.optimizer.variables}
    reference.get_layer("d1").trainable = True
    reference.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    reference.optimizer.build(reference.trainable_variables)
    for v in reference.optimizer.variables:
        if v.name in state:
            v.assign(state[v.name])
    reference.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)

    assert int(model.optimizer.iterations.numpy()) == 16
    for a, b in zip(model.weights, reference.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)
    ours = {v.name: v.numpy() for v in model.optimizer.variables}
    theirs = {v.name: v.numpy() for v in reference.optimizer.variables}
    assert ours.keys() == theirs.keys()
    for name in ours:
        np.testing.assert_allclose(
            ours[name], theirs[name], rtol=1e-6, atol=1e-7
        )


# (c) no slot variables for variables that never train.


def test_no_slots_for_never_unfrozen_variables():
    model = _model()
    x, y = _data()
    model.fit(
        x,
        y,
        batch_size=8,
        epochs=3,
        callbacks=[UnfreezeSchedule({0: "head", 1: "d1"})],
        verbose=0,
    )
    names = [v.name for v in model.optimizer.variables]
    assert not [n for n in names if n.startswith("d0_")]
    slots = [n for n in names if n.endswith(("_momentum", "_velocity"))]
    assert len(slots) == 2 * 4  # d1 and head kernels and biases
    assert len(names) == 2 + len(slots)


# (d) validation, evaluate and predict see the current weights.


def test_validation_evaluate_predict_see_current_weights():
    model = _model(jit_compile=BACKEND == "jax")
    x, y = _data()
    xv, yv = _data(16, seed=1)
    history = model.fit(
        x,
        y,
        batch_size=8,
        epochs=3,
        validation_data=(xv, yv),
        callbacks=[UnfreezeSchedule({0: "head", 1: 0}, unit="epoch")],
        verbose=0,
    )
    expected = float(np.mean((keras.ops.convert_to_numpy(model(xv)) - yv) ** 2))
    assert history.history["val_loss"][-1] == pytest.approx(expected, rel=1e-5)
    assert model.evaluate(xv, yv, verbose=0) == pytest.approx(
        expected, rel=1e-5
    )
    np.testing.assert_allclose(
        model.predict(xv, verbose=0),
        keras.ops.convert_to_numpy(model(xv)),
        rtol=1e-5,
        atol=1e-6,
    )


# (e) logs, History and verbose output.


def test_logs_history_and_verbose(capsys):
    model = _model()
    x, y = _data()
    schedule = UnfreezeSchedule({0: "head", 2: "d1", 3: 0}, verbose=1)
    history = model.fit(
        x, y, batch_size=8, epochs=4, callbacks=[schedule], verbose=0
    )
    assert history.history["trainable_params"] == [18, 18, 90, 130]
    assert history.history["first_trainable_stage"] == [2, 2, 1, 0]
    lines = [
        line
        for line in capsys.readouterr().out.splitlines()
        if "UnfreezeSchedule" in line
    ]
    assert len(lines) == 3
    assert lines[1].startswith("Epoch 3: UnfreezeSchedule set trainable")
    assert "['d1', 'head']" in lines[1] and "18 -> 90" in lines[1]
    assert [c["stages"] for c in schedule.changes] == [
        ["head"],
        ["d1", "head"],
        ["d0", "d1", "head"],
    ]


# (f) stock callbacks together.


def test_with_stock_callbacks(tmp_path):
    model = _model()
    x, y = _data()
    xv, yv = _data(16, seed=1)
    checkpoint = str(tmp_path / "best.keras")
    callbacks = [
        UnfreezeSchedule({0: "head", 1: "d1", 2: 0}),
        keras.callbacks.ModelCheckpoint(checkpoint),
        keras.callbacks.EarlyStopping(patience=10, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(
            factor=0.5, patience=0, min_delta=10.0, min_lr=1e-6
        ),
        keras.callbacks.CSVLogger(str(tmp_path / "log.csv")),
    ]
    history = model.fit(
        x,
        y,
        batch_size=8,
        epochs=4,
        validation_data=(xv, yv),
        callbacks=callbacks,
        verbose=0,
    )
    # ReduceLROnPlateau halves the rate every epoch; the schedule's rebuilds
    # keep the reduced rate.
    # (logged before that epoch's reduction).
    assert history.history["learning_rate"] == pytest.approx(
        [0.01, 0.01, 0.005, 0.0025]
    )
    assert float(model.optimizer.learning_rate) == pytest.approx(0.00125)
    loaded = keras.models.load_model(checkpoint)
    assert [loaded.get_layer(n).trainable for n in STAGES] == [True] * 3
    assert "trainable_params" in open(tmp_path / "log.csv").readline()


@pytest.mark.skipif(
    importlib.util.find_spec("tensorboard") is None,
    reason="keras.callbacks.TensorBoard needs the `tensorboard` package, "
    "which is not installed",
)
def test_with_tensorboard(tmp_path):
    model = _model()
    x, y = _data()
    model.fit(
        x,
        y,
        batch_size=8,
        epochs=2,
        callbacks=[
            UnfreezeSchedule({0: "head", 1: 0}),
            keras.callbacks.TensorBoard(str(tmp_path / "logs")),
        ],
        verbose=0,
    )
    assert any((tmp_path / "logs").rglob("events.out.tfevents*"))


# Resume with BackupAndRestore.


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 3:
            raise RuntimeError("interrupted")


def _schedule_run(backup_dir, order, interrupt):
    schedule = UnfreezeSchedule({0: "head", 2: "d1", 4: 0})
    backup = keras.callbacks.BackupAndRestore(backup_dir)
    callbacks = (
        [schedule, backup]
        if order == "schedule_first"
        else [
            backup,
            schedule,
        ]
    )
    if interrupt:
        callbacks.append(_Interrupt())
    return callbacks


RESUME_FIT = dict(batch_size=8, epochs=6, shuffle=False, verbose=0)


@pytest.fixture(scope="module")
def uninterrupted():
    """Weights and optimizer state of an uninterrupted 6-epoch schedule."""
    x, y = _data()
    keras.utils.set_random_seed(3)
    reference = _model()
    reference.fit(
        x,
        y,
        callbacks=[UnfreezeSchedule({0: "head", 2: "d1", 4: 0})],
        **RESUME_FIT,
    )
    return (
        [v.numpy() for v in reference.weights],
        [v.numpy() for v in reference.optimizer.variables],
    )


@pytest.mark.parametrize("order", ["schedule_first", "backup_first"])
def test_resume_with_backup_and_restore(tmp_path, order, uninterrupted):
    x, y = _data()
    fit_args = RESUME_FIT

    backup_dir = str(tmp_path / "backup")
    keras.utils.set_random_seed(3)
    model = _model()
    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(
            x, y, callbacks=_schedule_run(backup_dir, order, True), **fit_args
        )

    # A fresh process would rebuild the model from scratch.
    keras.utils.set_random_seed(3)
    resumed = _model()
    callbacks = _schedule_run(backup_dir, order, False)
    history = resumed.fit(x, y, callbacks=callbacks, **fit_args)
    assert len(history.history["loss"]) == 3
    schedule = callbacks[0] if order == "schedule_first" else callbacks[1]
    assert schedule.changes[0]["resumed"]
    assert int(resumed.optimizer.iterations.numpy()) == 24
    weights, optimizer_state = uninterrupted
    assert len(resumed.optimizer.variables) == len(optimizer_state)
    for a, b in zip(resumed.weights, weights):
        np.testing.assert_array_equal(a.numpy(), b)
    for a, b in zip(resumed.optimizer.variables, optimizer_state):
        np.testing.assert_array_equal(a.numpy(), b)


def test_resume_step_schedule(tmp_path):
    # 4 steps per epoch; the checkpoint after epoch 2 was written with the
    # entry of step 6 in force, and step 13 applies after the resume.
    x, y = _data()

    def callbacks(backup_dir=None, interrupt=False):
        out = [UnfreezeSchedule({0: "head", 6: "d1", 13: 0}, unit="step")]
        if backup_dir:
            out.insert(0, keras.callbacks.BackupAndRestore(backup_dir))
        return out + ([_Interrupt()] if interrupt else [])

    keras.utils.set_random_seed(3)
    reference = _model()
    reference.fit(x, y, callbacks=callbacks(), **RESUME_FIT)
    backup_dir = str(tmp_path / "backup")
    keras.utils.set_random_seed(3)
    with pytest.raises(RuntimeError, match="interrupted"):
        _model().fit(x, y, callbacks=callbacks(backup_dir, True), **RESUME_FIT)
    keras.utils.set_random_seed(3)
    resumed = _model()
    resumed.fit(x, y, callbacks=callbacks(backup_dir), **RESUME_FIT)
    for a, b in zip(resumed.weights, reference.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_resume_mismatched_checkpoint_warns(tmp_path):
    x, y = _data()
    backup_dir = str(tmp_path / "backup")
    model = _model()
    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(
            x,
            y,
            batch_size=8,
            epochs=6,
            verbose=0,
            callbacks=[
                keras.callbacks.BackupAndRestore(backup_dir),
                _Interrupt(),
            ],
        )
    resumed = _model()
    with pytest.warns(UserWarning, match="matches no schedule state"):
        resumed.fit(
            x,
            y,
            batch_size=8,
            epochs=4,
            verbose=0,
            callbacks=[
                keras.callbacks.BackupAndRestore(backup_dir),
                UnfreezeSchedule({0: "head"}),
            ],
        )


@pytest.mark.parametrize("order", ["schedule_first", "backup_first"])
def test_mid_epoch_backups_are_refused(tmp_path, order):
    # Keras restarts an interrupted epoch from its first batch with the
    # mid-epoch weights: no schedule can resume that exactly.
    x, y = _data()
    model = _model()
    weights = [v.numpy().copy() for v in model.weights]
    flags = [layer.trainable for layer in model.layers]
    backup_dir = tmp_path / "backup"
    callbacks = [
        UnfreezeSchedule({0: "head", 1: 0}),
        keras.callbacks.BackupAndRestore(str(backup_dir), save_freq=2),
    ]
    if order == "backup_first":
        callbacks.reverse()
    with pytest.raises(ValueError, match=r"Received: save_freq=2"):
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=callbacks)
    for a, b in zip(model.weights, weights):
        np.testing.assert_array_equal(a.numpy(), b)
    assert [layer.trainable for layer in model.layers] == flags
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 0
    assert not backup_dir.exists()


def test_freeze_until_accepts_mid_epoch_backups(tmp_path):
    # FreezeUntil sets one trainable set for the whole fit, so the resume
    # is what Keras itself gives for a mid-epoch checkpoint.
    x, y = _data()
    model = _model()
    backup = keras.callbacks.BackupAndRestore(str(tmp_path), save_freq=2)
    model.fit(
        x,
        y,
        batch_size=8,
        epochs=1,
        verbose=0,
        callbacks=[kc.FreezeUntil("d1"), backup],
    )
    assert not model.get_layer("d1").trainable


def test_save_and_load_mid_schedule(tmp_path):
    model = _model()
    x, y = _data()
    path = str(tmp_path / "mid.keras")

    class Save(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                self.model.save(path)

    model.fit(
        x,
        y,
        batch_size=8,
        epochs=4,
        callbacks=[UnfreezeSchedule({0: "head", 2: "d1", 3: 0}), Save()],
        verbose=0,
    )
    loaded = keras.models.load_model(path)
    assert [loaded.get_layer(n).trainable for n in STAGES] == [
        False,
        True,
        True,
    ]
    assert int(loaded.optimizer.iterations.numpy()) == 12
    assert len(loaded.optimizer.variables) == 2 + 2 * 4
    loaded.fit(x, y, batch_size=8, epochs=1, verbose=0)


# Named constructors and aliases.


def test_gradual():
    model = _model()
    x, y = _data()
    schedule = UnfreezeSchedule.gradual(every=1)
    model.fit(x, y, batch_size=8, epochs=3, callbacks=[schedule], verbose=0)
    assert schedule.schedule == {0: -1, 1: -2, 2: -3}
    assert [(c["epoch"], c["stages"]) for c in schedule.changes] == [
        (0, ["head"]),
        (1, ["d1", "head"]),
        (2, ["d0", "d1", "head"]),
    ]
    # Stage indices are reported by name.
    assert [c["target"] for c in schedule.changes] == [
        "from 'head'",
        "from 'd1'",
        "from 'd0'",
    ]


def test_gradual_limited_stages():
    model = _model()
    x, y = _data(8)
    schedule = UnfreezeSchedule.gradual(every=3, stages=2)
    with pytest.warns(UserWarning, match=r"epochs \[3\] .* never apply"):
        model.fit(x, y, batch_size=8, epochs=1, callbacks=[schedule], verbose=0)
    assert schedule.schedule == {0: -1, 3: -2}


def test_chain_thaw_trains_each_stage_alone():
    model = _model()
    x, y = _data()
    recorder = _Recorder()
    schedule = UnfreezeSchedule.chain_thaw(every=1)
    model.fit(
        x, y, batch_size=8, epochs=5, callbacks=[schedule, recorder], verbose=0
    )
    assert [c["stages"] for c in schedule.changes] == [
        ["head"],
        ["d0"],
        ["d1"],
        ["d0", "d1", "head"],
    ]
    assert [c["target"] for c in schedule.changes] == [
        "only 'head'",
        "only 'd0'",
        "only 'd1'",
        "from 'd0'",
    ]
    ends = [recorder.start] + recorder.epochs
    trained = [
        [n for n in STAGES if _changed(ends[e], ends[e + 1], n)]
        for e in range(5)
    ]
    assert trained == [["head"], ["d0"], ["d1"], list(STAGES), list(STAGES)]


def test_lp_ft():
    model = _model()
    x, y = _data()
    schedule = UnfreezeSchedule.lp_ft(head_epochs=2)
    model.fit(x, y, batch_size=8, epochs=3, callbacks=[schedule], verbose=0)
    assert schedule.schedule == {0: -1, 2: 0}
    assert [c["stages"] for c in schedule.changes] == [
        ["head"],
        ["d0", "d1", "head"],
    ]
    assert [c["target"] for c in schedule.changes] == [
        "from 'head'",
        "from 'd0'",
    ]


def test_targets_given_as_indices_are_reported_by_name(capsys):
    model = _model()
    x, y = _data()
    schedule = UnfreezeSchedule(
        {0: -1, 1: kc.only([0, -1]), 2: "d1"}, verbose=1
    )
    model.fit(x, y, batch_size=8, epochs=3, callbacks=[schedule], verbose=0)
    assert [c["target"] for c in schedule.changes] == [
        "from 'head'",
        "only ['d0', 'head']",
        "from 'd1'",
    ]
    out = capsys.readouterr().out
    assert "Epoch 2: UnfreezeSchedule set trainable only ['d0', 'head']" in (
        out
    )


def test_only():
    model = _model()
    x, y = _data()
    schedule = kc.UnfreezeSchedule({0: kc.only("d1")})
    assert isinstance(schedule, UnfreezeSchedule)
    model.fit(x, y, batch_size=8, epochs=1, callbacks=[schedule], verbose=0)
    assert [model.get_layer(n).trainable for n in STAGES] == [
        False,
        True,
        False,
    ]


def test_instance_is_reusable():
    x, y = _data(8)
    schedule = UnfreezeSchedule({0: "head"})
    for _ in range(2):
        model = _model()
        model.fit(x, y, batch_size=8, epochs=1, callbacks=[schedule], verbose=0)
        assert len(schedule.changes) == 1
        assert [model.get_layer(n).trainable for n in STAGES] == [
            False,
            False,
            True,
        ]


def test_multi_optimizer_schedule():
    optimizer = keras.optimizers.MultiOptimizer(
        keras.optimizers.OptimizerMap(
            keras.optimizers.Adam(0.01),
            {"head/.*": keras.optimizers.SGD(0.1, momentum=0.9)},
        )
    )
    model = _model(optimizer=optimizer)
    x, y = _data()
    start = _kernels(model)
    model.fit(
        x,
        y,
        batch_size=8,
        epochs=2,
        callbacks=[UnfreezeSchedule({0: "head", 1: "d1"})],
        verbose=0,
    )
    end = _kernels(model)
    np.testing.assert_array_equal(end["d0"], start["d0"])
    assert _changed(start, end, "d1")
    assert isinstance(model.optimizer, keras.optimizers.MultiOptimizer)


# Bad input.


BAD_SCHEDULES = [
    ([(0, "head")], TypeError, "must be a dict"),
    ({}, ValueError, "at least one entry"),
    ({"0": "head"}, TypeError, "keys must be int epochs"),
    ({True: "head"}, TypeError, "keys must be int epochs"),
    ({-1: "head"}, ValueError, "must be >= 0"),
    ({2: "head", 1: 0}, ValueError, "strictly increasing"),
    ({0: None}, TypeError, "target for epoch 0 is None"),
]


def test_bad_schedules():
    # One test for all cases: the per-test session reset is slow on torch.
    for schedule, error, match in BAD_SCHEDULES:
        with pytest.raises(error, match=match):
            UnfreezeSchedule(schedule)


def test_bad_arguments():
    with pytest.raises(ValueError, match="`unit` must be one of"):
        UnfreezeSchedule({0: "head"}, unit="batch")
    with pytest.raises(ValueError, match="Received: bn='sometimes'"):
        UnfreezeSchedule({0: "head"}, bn="sometimes")
    with pytest.raises(ValueError, match="`verbose` must be 0 or 1"):
        UnfreezeSchedule({0: "head"}, verbose=3)
    with pytest.raises(ValueError, match="`every` must be an int >= 1"):
        UnfreezeSchedule.gradual(every=0)
    with pytest.raises(ValueError, match="`stages` must be an int >= 1"):
        UnfreezeSchedule.gradual(stages=0)
    with pytest.raises(TypeError, match="`every` must be an int >= 1"):
        UnfreezeSchedule.chain_thaw(every=1.5)
    with pytest.raises(ValueError, match="`head_epochs` must be an int >= 1"):
        UnfreezeSchedule.lp_ft(head_epochs=0)
    with pytest.raises(TypeError, match="`only` takes"):
        kc.only(None)


def test_unknown_target_raises_before_training():
    model = _model()
    x, y = _data()
    start = _kernels(model)
    with pytest.raises(ValueError, match=r"bad target for epoch 2.*'conv5'"):
        model.fit(
            x,
            y,
            epochs=3,
            callbacks=[UnfreezeSchedule({0: "head", 2: "conv5"})],
            verbose=0,
        )
    with pytest.raises(ValueError, match=r"Valid stage names: \['d0'"):
        model.fit(
            x, y, epochs=3, callbacks=[UnfreezeSchedule({0: "nope"})], verbose=0
        )
    end = _kernels(model)
    for n in STAGES:
        np.testing.assert_array_equal(start[n], end[n])
    # The failed fit leaves no interception of optimizer loading behind.
    assert "load_own_variables" not in vars(model.optimizer)


def test_entries_beyond_epochs_warn():
    model = _model()
    x, y = _data()
    with pytest.warns(UserWarning, match=r"schedule epochs \[5\]"):
        model.fit(
            x,
            y,
            batch_size=8,
            epochs=2,
            callbacks=[UnfreezeSchedule({0: "head", 5: 0})],
            verbose=0,
        )


def test_uncompiled_model_raises():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    schedule = UnfreezeSchedule({0: 0})
    schedule.set_model(model)
    schedule.set_params({"epochs": 1, "steps": 1, "verbose": 0})
    with pytest.raises(ValueError, match="is not compiled with an optimizer"):
        schedule.on_train_begin()


@pytest.mark.filterwarnings("ignore:The object being serialized includes")
def test_unrebuildable_optimizer_raises():
    optimizer = keras.optimizers.MultiOptimizer(
        lambda variable: keras.optimizers.Adam()
    )
    model = _model(optimizer=optimizer)
    x, y = _data()
    with pytest.raises(TypeError, match="Cannot rebuild optimizer"):
        model.fit(
            x, y, epochs=1, callbacks=[UnfreezeSchedule({0: 0})], verbose=0
        )


def test_step_unit_needs_known_steps():
    model = _model()
    schedule = UnfreezeSchedule({0: "head"}, unit="step")
    schedule.set_model(model)
    schedule.set_params({"epochs": 1, "steps": None, "verbose": 0})
    with pytest.raises(ValueError, match="Pass `steps_per_epoch` to `fit`"):
        schedule.on_train_begin()
