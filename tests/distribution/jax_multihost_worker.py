"""One process of a 2-process JAX multi-controller job on 127.0.0.1.

Run by test_jax_multihost.py, twice at once, as the docs show:

    JAX_COORDINATOR_ADDRESS=127.0.0.1:PORT JAX_NUM_PROCESSES=2 \
    JAX_PROCESS_ID=0 KERAS_BACKEND=jax JAX_PLATFORMS=cpu \
    python jax_multihost_worker.py MODE OUTDIR

Each process has one CPU device; `kerasft.distributed.initialize` joins
the job, `DataParallel` spans both processes, and
`kerasft.distributed.shard` gives each process its rows of every global
batch. Modes:

- `scenarios`: each fine-tuning scenario once across the two processes,
  and in process 0 also once alone (the whole global batch, no
  distribution); also the uninterrupted run with
  `kerasft.callbacks.BackupAndRestore`.
- `lost`: the backup run; process 1 kills itself (SIGKILL) in epoch 3.
- `resume`: the backup run again, which resumes from the backups.

Each process saves its final values to `OUTDIR/<mode>-<scenario>-<i>.npz`
and prints one `RESULT` JSON line.
"""

import os
import signal
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import kerasft  # noqa: E402

# Before any JAX computation. A lost process stops the job in ~10 s.
CLUSTER = kerasft.distributed.initialize(heartbeat_timeout=10)

import _scenario  # noqa: E402
import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from kerasft.callbacks import UnfreezeSchedule  # noqa: E402

PID = CLUSTER["process_id"]
N = CLUSTER["num_processes"]
LOCAL_BATCH = _scenario.GLOBAL_BATCH // N
BACKUP_EPOCHS = 4
BACKUP_SCHEDULE = {0: "head", 2: "transformer_layer_1"}
STOP_AT = (2, 1)  # (epoch, batch): the middle of the third epoch


def distribution():
    return keras.distribution.DataParallel(
        devices=keras.distribution.list_devices(), auto_shard_dataset=False
    )


def start(init, distributed, lora=False):
    keras.backend.clear_session()
    keras.utils.set_random_seed(1)
    keras.distribution.set_distribution(distribution() if distributed else None)
    model = _scenario.build_model()
    model.set_weights(init)
    if lora:
        kerasft.peft.enable_lora(model, rank=2, target="transformer_layer_1")
    return model


def data(distributed):
    """The training and validation data this process feeds."""
    x, y = _scenario.data()
    if not distributed:
        return (x, y), (x, y), _scenario.GLOBAL_BATCH
    train = kerasft.distributed.shard((x, y), _scenario.GLOBAL_BATCH)
    return train, train, LOCAL_BATCH


def finish(model, name):
    out = _scenario.values(model)
    np.savez(os.path.join(OUTDIR, f"{MODE}-{name}-{PID}.npz"), **out)
    keras.distribution.set_distribution(None)
    return out


def scenario_main(init, distributed):
    """_scenario.py: step schedule, FreezeUntil, discriminative, L2-SP."""
    model = start(init, distributed)
    l2sp = _scenario.regularize(model)
    _scenario.compile_model(model)
    schedule, freeze = _scenario.callbacks()
    (x, y), _, batch = data(distributed)
    losses, frozen_ok = _scenario.fit(
        model, schedule, freeze, batch_size=batch, arrays=(x, y)
    )
    result = {
        "losses": losses,
        "schedule_stages": _scenario.stage_names(schedule),
        "freeze_until_stages": _scenario.stage_names(freeze),
        "frozen_unchanged": frozen_ok,
        "penalty": l2sp.penalty(),
    }
    return result, finish(model, "main")


def scenario_epoch(init, distributed):
    """UnfreezeSchedule by epoch, with (global) validation metrics."""
    model = start(init, distributed)
    _scenario.compile_model(model)
    schedule = UnfreezeSchedule({0: "head", 1: "transformer_layer_1"})
    (x, y), val, batch = data(distributed)
    history = model.fit(
        x, y, batch_size=batch, epochs=2, shuffle=False, verbose=0,
        validation_data=val, validation_batch_size=batch,
        callbacks=[schedule],
    )  # fmt: skip
    result = {
        "losses": history.history["loss"],
        "val_losses": history.history["val_loss"],
        "schedule_stages": _scenario.stage_names(schedule),
    }
    return result, finish(model, "epoch")


def scenario_lora(init, distributed):
    model = start(init, distributed, lora=True)
    _scenario.compile_model(model)
    (x, y), _, batch = data(distributed)
    history = model.fit(
        x, y, batch_size=batch, epochs=2, shuffle=False, verbose=0
    )
    result = {
        "losses": history.history["loss"],
        "trainable": len(model.trainable_variables),
    }
    return result, finish(model, "lora")


def scenario_cached(init, distributed):
    """cached_fit: a head trained on cached features of a frozen body.

    (The BERT model has Dropout layers, which cached_fit refuses to cache
    even at rate 0, so this uses a small dense model.)
    """
    model = None
    for layout in (None, distribution() if distributed else None):
        # The same names in both builds: the values go from one to the other.
        keras.backend.clear_session()
        keras.distribution.set_distribution(layout)
        keras.utils.set_random_seed(3)
        inputs = keras.Input((4,))
        hidden = keras.layers.Dense(8, activation="relu", name="body")(inputs)
        outputs = keras.layers.Dense(2, name="head")(hidden)
        weights = None if model is None else model.get_weights()
        model = keras.Model(inputs, outputs)
        if weights is not None:
            model.set_weights(weights)
    kerasft.freeze_until(model, "head", inclusive=False)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    rng = np.random.default_rng(2)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = rng.normal(size=(16, 2)).astype("float32")
    batch = _scenario.GLOBAL_BATCH
    if distributed:
        x, y = kerasft.distributed.shard((x, y), batch)
        batch = LOCAL_BATCH
    try:
        history = kerasft.cached_fit(
            model, x, y, batch_size=batch, epochs=2, shuffle=False, verbose=0
        )
    except ValueError as e:
        keras.distribution.set_distribution(None)
        return {"refused": str(e)}, None
    return {"losses": history.history["loss"]}, finish(model, "cached")


def backup_run(init, backup_dir, stop=None):
    """4 epochs, UnfreezeSchedule by epoch, kerasft BackupAndRestore."""
    model = start(init, distributed=True)
    _scenario.compile_model(model)
    schedule = UnfreezeSchedule(BACKUP_SCHEDULE)
    backup = kerasft.callbacks.BackupAndRestore(backup_dir)
    (x, y), _, batch = data(distributed=True)
    callbacks = [backup, schedule] + ([stop] if stop else [])
    history = model.fit(
        x, y, batch_size=batch, epochs=BACKUP_EPOCHS, shuffle=False,
        verbose=0, callbacks=callbacks,
    )  # fmt: skip
    result = {
        "epochs_run": len(history.history["loss"]),
        "restored": backup.restored,
        "iterations": int(
            keras.ops.convert_to_numpy(model.optimizer.iterations)
        ),
        "trainable": sorted(v.path for v in model.trainable_variables),
        "backup_left": os.path.exists(backup.process_dir()),
    }
    return result, finish(model, "backup")


class Kill(keras.callbacks.Callback):
    """Process 1 dies (SIGKILL) at STOP_AT, as a lost worker."""

    def __init__(self):
        super().__init__()
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.epoch, batch) != STOP_AT:
            return
        if PID == 1:
            with open(os.path.join(OUTDIR, "killed_at"), "w") as f:
                f.write(repr(time.time()))
            os.kill(os.getpid(), signal.SIGKILL)


SCENARIOS = {
    "main": scenario_main,
    "epoch": scenario_epoch,
    "lora": scenario_lora,
    "cached": scenario_cached,
}


def main():
    start_time = time.time()
    init = _scenario.initial_weights()
    backup_dir = os.path.join(OUTDIR, "backup")
    result = {"process_id": PID, "processes": jax.process_count()}
    result["devices"] = len(jax.devices())
    if MODE == "scenarios":
        for name, run in SCENARIOS.items():
            # The one-process reference runs in process 0 only (the test
            # checks that both processes end with identical values).
            single = ref = None
            if PID == 0:
                single, ref = run(init, distributed=False)
            multi, values = run(init, distributed=True)
            if ref is not None and values is not None:
                multi["max_difference"] = _scenario.max_difference(ref, values)
            result[name] = {"single": single, "multi": multi}
        reference_dir = os.path.join(OUTDIR, "reference-backup")
        result["backup"], _ = backup_run(init, reference_dir)
    elif MODE == "resume":
        result["backup"], _ = backup_run(init, backup_dir)
    else:  # "lost"
        backup_run(init, backup_dir, stop=Kill())
    result["seconds"] = time.time() - start_time
    _scenario.report(result)


if __name__ == "__main__":
    MODE, OUTDIR = sys.argv[1], sys.argv[2]
    sys.exit(main())
