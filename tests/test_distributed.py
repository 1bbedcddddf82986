"""kerasft.distributed and kerasft.callbacks.BackupAndRestore in one process.

The two-process jobs are in tests/distribution/test_jax_multihost.py; here
the cluster is read from simulated environments, the process index is
simulated for sharding, and backups are torn by hand.
"""

import json
import os

import keras
import numpy as np
import pytest

import kerasft
from kerasft._src.distributed import backup as backup_module
from kerasft._src.distributed import cluster
from kerasft._src.distributed import refusals
from kerasft._src.distributed import shard as shard_module
from kerasft.callbacks import BackupAndRestore
from kerasft.callbacks import UnfreezeSchedule

# Cluster from the environment.


@pytest.mark.parametrize(
    "nodelist, host",
    [
        ("node07", "node07"),
        ("gpu[03-05,9]", "gpu03"),
        ("a[1,2],b[3-4]", "a1"),
        ("c1,c2", "c1"),
    ],
)
def test_first_slurm_host(nodelist, host):
    assert cluster.first_slurm_host(nodelist) == host


@pytest.mark.parametrize(
    "environ, expected",
    [
        (
            {
                "JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234",
                "JAX_NUM_PROCESSES": "4",
                "JAX_PROCESS_ID": "3",
            },
            ("10.0.0.1:1234", 4, 3),
        ),
        (
            {
                "KERAS_DISTRIBUTION_JOB_ADDRESSES": "h0:9,h1:9",
                "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
                "KERAS_DISTRIBUTION_PROCESS_ID": "1",
            },
            ("h0:9", 2, 1),
        ),
        (
            {
                "SLURM_PROCID": "5",
                "SLURM_NTASKS": "8",
                "SLURM_JOB_NODELIST": "gpu[12-15]",
            },
            (f"gpu12:{cluster.DEFAULT_PORT}", 8, 5),
        ),
        (
            # An indexed Kubernetes Job: the index from Kubernetes, the
            # rest from the Job's spec.
            {
                "JOB_COMPLETION_INDEX": "1",
                "JAX_COORDINATOR_ADDRESS": "train-0.train:1234",
                "JAX_NUM_PROCESSES": "2",
            },
            ("train-0.train:1234", 2, 1),
        ),
        ({}, (None, 1, 0)),
    ],
    ids=["jax", "keras", "slurm", "kubernetes", "none"],
)
def test_cluster_from_environment(monkeypatch, environ, expected):
    for name in list(os.environ):
        if name.startswith(("JAX_", "KERAS_DISTRIBUTION", "SLURM_", "JOB_")):
            monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    found = cluster.resolve_cluster()
    assert (
        found["coordinator_address"],
        found["num_processes"],
        found["process_id"],
    ) == expected


def test_arguments_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("JAX_NUM_PROCESSES", "4")
    monkeypatch.setenv("JAX_PROCESS_ID", "3")
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "h:1")
    found = cluster.resolve_cluster("x:2", 2, 0)
    assert found == {
        "coordinator_address": "x:2",
        "num_processes": 2,
        "process_id": 0,
    }


@pytest.mark.parametrize(
    "kwargs, environ, match",
    [
        ({"num_processes": 2}, {}, r"needs coordinator_address and "),
        ({"num_processes": 2, "process_id": 2, "coordinator_address": "h:1"},
         {}, r"process_id=2, num_processes=2"),
        ({}, {"JAX_NUM_PROCESSES": "two"}, r"JAX_NUM_PROCESSES='two'"),
    ],
)  # fmt: skip
def test_cluster_errors(monkeypatch, kwargs, environ, match):
    for name in list(os.environ):
        if name.startswith(("JAX_", "KERAS_DISTRIBUTION", "SLURM_", "JOB_")):
            monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=match):
        cluster.resolve_cluster(**kwargs)


def test_initialize_with_one_process_does_nothing(monkeypatch):
    monkeypatch.delenv("JAX_NUM_PROCESSES", raising=False)
    monkeypatch.delenv("SLURM_PROCID", raising=False)
    assert kerasft.distributed.initialize(num_processes=1) == {
        "coordinator_address": None,
        "num_processes": 1,
        "process_id": 0,
    }


# The launcher (`kerasft finetune --distribute jax`): a refusal before
# training, in one process, stops every process.


@pytest.mark.parametrize("process_id", [0, 1])
def test_a_refusal_in_one_process_stops_every_process(monkeypatch, process_id):
    from kerasft._src.run import distribute

    # Process 0 refuses; every process learns it from the collective.
    monkeypatch.setattr(
        distribute, "all_gather_ints", lambda values, width: [[1], [0]]
    )
    job = distribute.Job(process_id=process_id, num_processes=2)
    with pytest.raises(ValueError) as info:
        with job.together():
            if process_id == 0:
                raise ValueError("the run folder holds a run")
    if process_id == 0:
        assert str(info.value) == "the run folder holds a run"
    else:
        assert isinstance(info.value, kerasft.finetune.FinetuneError)
        assert str(info.value) == (
            "process 0 of the job refused the run (its log says why); "
            "every process stops"
        )


def test_no_refusal_lets_every_process_go_on(monkeypatch):
    from kerasft._src.run import distribute

    monkeypatch.setattr(
        distribute, "all_gather_ints", lambda values, width: [[0], [0]]
    )
    with distribute.Job(process_id=1, num_processes=2).together():
        pass


# Sharding.


def _as_process(monkeypatch, index, count):
    monkeypatch.setattr(shard_module, "process_index", lambda: index)
    monkeypatch.setattr(shard_module, "process_count", lambda: count)


def test_shard_arrays_gives_each_process_its_rows(monkeypatch):
    x = np.arange(16)
    data = {"a": x, "b": [x * 10]}
    parts = []
    for i in range(2):
        _as_process(monkeypatch, i, 2)
        parts.append(kerasft.distributed.shard(data, batch_size=8))
    np.testing.assert_array_equal(parts[0]["a"], [0, 1, 2, 3, 8, 9, 10, 11])
    np.testing.assert_array_equal(parts[1]["b"][0], [40, 50, 60, 70] + [
        120, 130, 140, 150])  # fmt: skip
    # Global batch b = process 0's part of it, then process 1's.
    global_batches = np.concatenate(
        [parts[0]["a"].reshape(2, 4), parts[1]["a"].reshape(2, 4)], axis=1
    )
    np.testing.assert_array_equal(global_batches.reshape(-1), x)


def test_shard_one_process_keeps_everything():
    x = np.arange(10)
    np.testing.assert_array_equal(
        kerasft.distributed.shard(x, batch_size=4, drop_remainder=True),
        np.arange(8),
    )


@pytest.mark.parametrize(
    "data, kwargs, error, match",
    [
        (np.arange(16), {"batch_size": 7}, ValueError, r"batch_size=7"),
        (np.arange(10), {"batch_size": 4}, ValueError,
         r"drop_remainder=True.*Received: 10 rows, batch_size=4"),
        ((np.arange(8), np.arange(6)), {"batch_size": 4}, ValueError,
         r"row counts \[6, 8\]"),
        (np.arange(8), {"batch_size": "4"}, TypeError, r"batch_size='4'"),
        (np.arange(8), {"batch_size": 4, "seed": 1.5}, TypeError,
         r"seed=1.5"),
    ],
)  # fmt: skip
def test_shard_errors(monkeypatch, data, kwargs, error, match):
    _as_process(monkeypatch, 0, 2)
    with pytest.raises(error, match=match):
        kerasft.distributed.shard(data, **kwargs)


def test_shard_dataset_same_shuffle_in_every_process(monkeypatch):
    tf = pytest.importorskip("tensorflow")
    dataset = tf.data.Dataset.from_tensor_slices(np.arange(16))
    epochs = []
    for i in range(2):
        _as_process(monkeypatch, i, 2)
        part = kerasft.distributed.shard(dataset, batch_size=8, seed=5)
        epochs.append(
            [np.concatenate([b.numpy() for b in part]) for _ in range(2)]
        )
    for epoch in range(2):
        joined = np.concatenate(
            [epochs[0][epoch].reshape(2, 4), epochs[1][epoch].reshape(2, 4)],
            axis=1,
        ).reshape(-1)
        # Each epoch, the two processes' parts form one permutation.
        assert sorted(joined.tolist()) == list(range(16))
    assert not np.array_equal(epochs[0][0], epochs[0][1])


def _epochs(batches, epochs=2):
    """Each epoch's batches, as `fit` reads them."""
    out = []
    for _ in range(epochs):
        out.append([batches[b] for b in range(len(batches))])
        batches.on_epoch_end()
    return out


@pytest.mark.parametrize(
    "rows, drop_remainder, sizes",
    # Rows per process and batch: 11 rows leave a global batch of 3, cut
    # to 2 (1 row sits out an epoch), or dropped.
    [(16, False, [4, 4]), (11, False, [4, 1]), (11, True, [4])],
)
def test_shard_arrays_with_a_seed_reshuffles_alike(
    monkeypatch, rows, drop_remainder, sizes
):
    x = np.arange(rows)
    runs = []
    for i in range(2):
        _as_process(monkeypatch, i, 2)
        batches = kerasft.distributed.shard(
            (x, x * 10), batch_size=8, seed=3, drop_remainder=drop_remainder
        )
        assert isinstance(batches, keras.utils.PyDataset)
        runs.append(_epochs(batches))
    orders = []
    for epoch in range(2):
        parts = [runs[i][epoch] for i in range(2)]
        assert [len(b[0]) for b in parts[0]] == sizes
        for part in parts:
            for features, labels in part:
                np.testing.assert_array_equal(labels, features * 10)
        # Global batch b: process 0's part of it, then process 1's.
        order = np.concatenate(
            [
                np.concatenate([p[b][0] for p in parts])
                for b in range(len(sizes))
            ]
        )
        assert len(set(order.tolist())) == sum(sizes) * 2
        orders.append(order)
    assert not np.array_equal(orders[0], orders[1])


def test_shard_arrays_with_a_seed_in_one_process():
    batches = kerasft.distributed.shard(np.arange(10), batch_size=4, seed=0)
    (epoch,) = _epochs(batches, epochs=1)
    assert [len(b) for b in epoch] == [4, 4, 2]
    assert sorted(np.concatenate(epoch).tolist()) == list(range(10))


def test_shard_arrays_with_a_seed_needs_a_shareable_batch(monkeypatch):
    _as_process(monkeypatch, 0, 2)
    with pytest.raises(ValueError, match=r"has 1 rows.*batch_size=4"):
        kerasft.distributed.shard(np.arange(1), batch_size=4, seed=0)


# BackupAndRestore.

EPOCHS = 4


def _model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    x = keras.layers.Dense(8, name="body")(inputs)
    outputs = keras.layers.Dense(2, name="head")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model


def _data():
    rng = np.random.default_rng(0)
    return rng.random((8, 4), "float32"), rng.random((8, 2), "float32")


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 3:
            raise RuntimeError("preempted")


def _fit(model, backup, interrupt=False):
    x, y = _data()
    schedule = UnfreezeSchedule({0: "head", 2: "body"})
    callbacks = [backup, schedule] + ([_Interrupt()] if interrupt else [])
    return model.fit(
        x, y, batch_size=4, epochs=EPOCHS, shuffle=False, verbose=0,
        callbacks=callbacks,
    )  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    model = _model()
    _fit(model, BackupAndRestore(str(tmp_path_factory.mktemp("b"))))
    return model.get_weights(), int(model.optimizer.iterations)


def _interrupted(folder):
    model = _model()
    with pytest.raises(RuntimeError, match="preempted"):
        _fit(model, BackupAndRestore(folder), interrupt=True)
    return sorted(os.listdir(folder))


def _assert_same(model, uninterrupted):
    weights, iterations = uninterrupted
    for a, b in zip(model.get_weights(), weights):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert int(model.optimizer.iterations) == iterations


def test_backup_files_are_written_whole(tmp_path):
    names = _interrupted(str(tmp_path))
    assert names == [
        f"epoch-00000{e}-batch-000000000.{kind}"
        for e in (2, 3)
        for kind in ("json", "weights.h5")
    ]
    with open(tmp_path / names[0]) as f:
        meta = json.load(f)
    assert meta["epoch"] == 2 and meta["num_processes"] == 1


def test_resumes_like_an_uninterrupted_run(tmp_path, uninterrupted):
    _interrupted(str(tmp_path))
    backup = BackupAndRestore(str(tmp_path))
    model = _model()
    history = _fit(model, backup)
    assert backup.restored == {"epoch": 3, "batch": 0}
    assert len(history.history["loss"]) == 1
    _assert_same(model, uninterrupted)
    assert not tmp_path.exists()


def test_torn_backup_falls_back_to_the_previous_one(tmp_path, uninterrupted):
    _interrupted(str(tmp_path))
    newest = tmp_path / "epoch-000003-batch-000000000.weights.h5"
    newest.write_bytes(newest.read_bytes()[:96])
    # An unfinished save, as a lost worker leaves it.
    (tmp_path / ".partial-4-0.weights.h5").write_bytes(b"x" * 96)
    backup = BackupAndRestore(str(tmp_path), delete_checkpoint=False)
    model = _model()
    with pytest.warns(UserWarning, match=r"skips the backup .*epoch-000003"):
        _fit(model, backup)
    assert backup.restored == {"epoch": 2, "batch": 0}
    assert not (tmp_path / ".partial-4-0.weights.h5").exists()
    _assert_same(model, uninterrupted)


@pytest.mark.parametrize("damage", ["truncate", "json", "processes"])
def test_no_usable_backup_starts_clean(tmp_path, uninterrupted, damage):
    _interrupted(str(tmp_path))
    for name in os.listdir(tmp_path):
        path = tmp_path / name
        if damage == "truncate" and name.endswith(".h5"):
            path.write_bytes(path.read_bytes()[:96])
        if damage == "json" and name.endswith(".json"):
            path.write_text("{")
        if damage == "processes" and name.endswith(".json"):
            meta = json.loads(path.read_text())
            path.write_text(json.dumps(dict(meta, num_processes=2)))
    backup = BackupAndRestore(str(tmp_path))
    model = _model()
    with pytest.warns(UserWarning) as record:
        history = _fit(model, backup)
    messages = [str(w.message) for w in record]
    assert sum("skips the backup" in m for m in messages) == 2
    assert any("training starts from the beginning" in m for m in messages)
    assert backup.restored is None
    assert len(history.history["loss"]) == EPOCHS
    _assert_same(model, uninterrupted)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"backup_dir": ""}, ValueError, r"backup_dir"),
        ({"backup_dir": "b", "save_freq": 0}, ValueError, r"save_freq=0"),
        ({"backup_dir": "b", "save_freq": "batch"}, TypeError,
         r"save_freq='batch'"),
        ({"backup_dir": "b", "keep": 1}, ValueError, r"keep=1"),
        ({"backup_dir": "b", "delete_checkpoint": 1}, TypeError,
         r"delete_checkpoint=1"),
    ],
)  # fmt: skip
def test_backup_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        BackupAndRestore(**kwargs)


def test_unbuilt_model_is_refused(tmp_path):
    model = keras.Sequential([keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    backup = BackupAndRestore(str(tmp_path))
    backup.set_model(model)
    with pytest.raises(ValueError, match=r"must be built"):
        backup.on_train_begin()


def test_agreement_picks_the_newest_common_backup(monkeypatch):
    # Process 1 wrote epoch 3 before process 0 could: both resume at 2.
    rows = [[2, 1, -1, -1], [3, 2, -1, -1]]
    monkeypatch.setattr(backup_module, "all_gather_ints", lambda v, w: rows)
    assert BackupAndRestore("b")._agree([2, 1]) == 2
    rows[1] = [5, 4, -1, -1]
    assert BackupAndRestore("b")._agree([2, 1]) is None


# TensorFlow's MultiWorkerMirroredStrategy.


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="tf.distribute strategies exist on the TensorFlow backend",
)
@pytest.mark.parametrize(
    "callback",
    [
        lambda tmp: UnfreezeSchedule({0: "head", 1: 0}),
        lambda tmp: kerasft.callbacks.FreezeUntil("body"),
        lambda tmp: BackupAndRestore(str(tmp)),
    ],
    ids=["UnfreezeSchedule", "FreezeUntil", "BackupAndRestore"],
)
def test_multi_worker_mirrored_strategy_is_refused(
    monkeypatch, tmp_path, callback
):
    import tensorflow as tf

    # Constructing one would start TensorFlow's collective runtime in
    # this process, so the model reports an unconstructed instance.
    fake = tf.distribute.MultiWorkerMirroredStrategy.__new__(
        tf.distribute.MultiWorkerMirroredStrategy
    )
    assert refusals.is_multi_worker(fake)
    assert not refusals.is_multi_worker(tf.distribute.get_strategy())
    monkeypatch.setattr(refusals, "model_strategy", lambda model: fake)
    model = _model()
    before = model.get_weights()
    x, y = _data()
    with pytest.raises(
        ValueError,
        match=r"MultiWorkerMirroredStrategy.*keras-team/keras#20585.*JAX "
        r"backend.*Received: strategy=\w+ \(a tf\.distribute\."
        r"MultiWorkerMirroredStrategy\)$",
    ):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[callback(tmp_path)])
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
