"""`BackupAndRestore` whose backups survive a lost worker and torn files.

Why Keras's own backup is lost when one process of a multi-host JAX job
dies: `keras.callbacks.BackupAndRestore` overwrites `latest.weights.h5` in
place. `save_weights` opens (and so truncates) the file first, then reads
each variable. Those values come from the last train step, whose
all-reduce waits for the dead process; the survivor blocks inside the open
file until JAX's coordination service stops it, which leaves the h5 header
(96 bytes) and no previous backup to fall back on.

Here every backup is a new pair of files, `<key>.weights.h5` and
`<key>.json`, written to a temporary name, flushed and renamed; the JSON
(written last) records the epoch, the process count and the weights'
SHA-256. A backup counts only when its JSON and weights agree. At restart
the processes agree on the newest backup that all of them hold (a
collective), and load it. Each process keeps its last `keep` backups:
training steps synchronize the processes, so one is never more than one
backup ahead of another, and two backups always leave one in common.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import warnings

import keras

from kerasft._src import keras_internals
from kerasft._src.distributed import refusals
from kerasft._src.distributed.cluster import all_gather_ints
from kerasft._src.distributed.cluster import process_count
from kerasft._src.distributed.cluster import process_index
from kerasft._src.logs import get_logger
from kerasft._src.validation import check_bool
from kerasft._src.validation import check_int
from kerasft._src.validation import check_path

_NAME = re.compile(r"^epoch-(\d{6})-batch-(\d{9})\.json$")
# A batch index cannot exceed this in a key (9 digits).
_BATCHES = 10**9
_PARTIAL = ".partial"


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _flush(path):
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _write_json(path, data):
    partial = path + _PARTIAL
    with open(partial, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """Backs up training and resumes it, also across processes and crashes.

    A drop-in for `keras.callbacks.BackupAndRestore` (a subclass, so
    `UnfreezeSchedule`, `FreezeUntil` and the weight averages resume with
    it as with Keras's) that stays usable when a process dies while
    writing:

    - each backup is written to a temporary file, flushed, then renamed,
      and described by a JSON file (epoch, process count, SHA-256 of the
      weights) written last, so an interrupted save never replaces a good
      backup;
    - the last `keep` backups are kept; at `fit` start a backup whose
      files are missing, torn or from another process count is skipped
      with a warning, and the newest good one is loaded. With none, the
      run starts clean with a warning;
    - in a multi-host JAX job (`kerasft.distributed.initialize`), each
      process writes `backup_dir/process-<index>` (processes need not
      share a file system) and all processes load the newest backup they
      all hold, so they resume from the same epoch.

    Example:

    ```python
    backup = kerasft.callbacks.BackupAndRestore("/scratch/job42/backup")
    model.fit(x, y, epochs=10, callbacks=[backup, schedule])
    # After a preemption, the same command resumes at the last epoch end.
    ```

    Args:
        backup_dir: str or path. Folder of the backups, used by nothing
            else.
        save_freq: `"epoch"` or int. Back up at each epoch end, or every
            `save_freq` batches. Defaults to `"epoch"`.
        delete_checkpoint: bool. Delete this process's backups when `fit`
            ends. Defaults to `True`.
        keep: int. Backups kept per process, >= 2. Defaults to `2`.

    Raises:
        ValueError: for an empty `backup_dir`, a `save_freq` other than
            `"epoch"` or a positive int, or `keep` < 2.
        TypeError: for arguments of the wrong type.
    """

    def __init__(
        self,
        backup_dir: str | os.PathLike,
        save_freq: str | int = "epoch",
        delete_checkpoint: bool = True,
        keep: int = 2,
    ):
        check_path("backup_dir", backup_dir)
        if save_freq != "epoch":
            check_int("save_freq", save_freq, minimum=1)
        check_bool("delete_checkpoint", delete_checkpoint)
        check_int("keep", keep, minimum=2)
        super().__init__(
            os.fspath(backup_dir),
            save_freq=save_freq,
            delete_checkpoint=delete_checkpoint,
        )
        self.keep = keep
        self.restored = None
        self._epoch = 0
        self._since_save = 0
        self._last_batch = -1

    def process_dir(self) -> str:
        """This process's folder of backups."""
        if process_count() == 1:
            return self.backup_dir
        return os.path.join(self.backup_dir, f"process-{process_index()}")

    # Saving.

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._last_batch = -1

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch + 1, 0)

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        # With steps_per_execution > 1, `batch` advances by several.
        self._since_save += batch - self._last_batch
        self._last_batch = batch
        if self._since_save >= self.save_freq:
            self._since_save = 0
            # Keras restarts an epoch interrupted mid-way from its start.
            self._save(self._epoch, batch + 1)

    def _save(self, epoch, batch):
        folder = self.process_dir()
        os.makedirs(folder, exist_ok=True)
        stem = os.path.join(folder, f"epoch-{epoch:06d}-batch-{batch:09d}")
        weights = stem + ".weights.h5"
        # `save_weights` wants the suffix; the partial name is hidden.
        partial = os.path.join(folder, f".partial-{epoch}-{batch}.weights.h5")
        self.model.save_weights(partial, overwrite=True)
        _flush(partial)
        os.replace(partial, weights)
        _write_json(
            stem + ".json",
            {
                "epoch": epoch,
                "batch": batch,
                "num_processes": process_count(),
                "weights": os.path.basename(weights),
                "sha256": _sha256(weights),
            },
        )
        for key in self._keys(folder)[self.keep :]:
            self._remove(folder, key)

    # Restoring.

    def on_train_begin(self, logs=None):
        self.restored = None
        self._epoch, self._since_save, self._last_batch = 0, 0, -1
        if not self.model.built:
            raise ValueError(
                "To use BackupAndRestore, the model must be built before "
                "`fit` (call it on a batch of data, or `model.build`). "
                f"Received: an unbuilt model {self.model.name!r}"
            )
        refusals.check_not_multi_worker(self.model, "BackupAndRestore")
        folder = self.process_dir()
        good = self._good_keys(folder) if os.path.isdir(folder) else []
        key = self._agree(good)
        if key is None:
            if good or (os.path.isdir(folder) and os.listdir(folder)):
                warnings.warn(
                    "BackupAndRestore found no backup that every process "
                    f"holds intact in {self.backup_dir!r}; training starts "
                    "from the beginning.",
                    stacklevel=2,
                )
            return
        self._load(folder, key)

    def _agree(self, good):
        """The newest key every process holds intact, or None."""
        width = self.keep + 2
        rows = all_gather_ints(good[:width], width)
        common = set(rows[0]).intersection(*rows[1:]) - {-1}
        return max(common) if common else None

    def _load(self, folder, key):
        stem = self._stem(folder, key)
        with open(stem + ".json") as f:
            meta = json.load(f)
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        self.model.load_weights(stem + ".weights.h5")
        keras_internals.set_initial_epoch(self.model, meta["epoch"])
        self.restored = {"epoch": meta["epoch"], "batch": meta["batch"]}
        get_logger("callbacks").info(
            "BackupAndRestore: resuming at epoch %d from %s.",
            meta["epoch"] + 1,
            stem + ".weights.h5",
        )

    def _good_keys(self, folder):
        """This process's intact backups, newest first; others skipped."""
        for name in os.listdir(folder):
            if name.startswith(".partial") or name.endswith(_PARTIAL):
                # A save that never finished: its process was stopped.
                os.remove(os.path.join(folder, name))
        good = []
        for key in self._keys(folder):
            problem = self._problem(self._stem(folder, key))
            if problem is None:
                good.append(key)
            else:
                warnings.warn(
                    f"BackupAndRestore skips the backup "
                    f"{self._stem(folder, key)}: {problem}.",
                    stacklevel=3,
                )
        return good

    def _problem(self, stem):
        try:
            with open(stem + ".json") as f:
                meta = json.load(f)
            weights = stem + ".weights.h5"
            if meta["num_processes"] != process_count():
                return (
                    f"it was written by a job of {meta['num_processes']} "
                    f"processes, this one has {process_count()}"
                )
            if _sha256(weights) != meta["sha256"]:
                return "its weights file does not match its checksum (torn)"
        except (OSError, ValueError, KeyError, TypeError) as e:
            return f"it cannot be read ({type(e).__name__}: {e})"
        return None

    @staticmethod
    def _keys(folder):
        """Keys (epoch * 1e9 + batch) of the backups in `folder`, newest
        first."""
        keys = []
        for name in os.listdir(folder):
            match = _NAME.match(name)
            if match:
                keys.append(int(match[1]) * _BATCHES + int(match[2]))
        return sorted(keys, reverse=True)

    @staticmethod
    def _stem(folder, key):
        epoch, batch = divmod(key, _BATCHES)
        return os.path.join(folder, f"epoch-{epoch:06d}-batch-{batch:09d}")

    def _remove(self, folder, key):
        stem = self._stem(folder, key)
        for path in (stem + ".json", stem + ".weights.h5"):
            if os.path.exists(path):
                os.remove(path)

    def on_train_end(self, logs=None):
        if not self.delete_checkpoint:
            return
        folder = self.process_dir()
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        if folder != self.backup_dir:
            try:
                os.rmdir(self.backup_dir)  # the last process out
            except OSError:
                pass
