"""Shared machinery of `EMA` and `SWA`: a running average of the weights.

Not exported. `WeightAverage` keeps its own copy of the average, one
tensor per floating-point weight of the model (trainable or not, frozen or
not), outside the optimizer. So a rebuild of the optimizer by
`UnfreezeSchedule` or `FreezeUntil` loses nothing, and a weight that is
frozen when averaging starts and unfrozen later is averaged from the
start. Integer weights (counters) are not averaged.

The subclasses say when the average is updated and how; the base class
owns the rest:

- reading the current weights through `self.model` (on JAX this syncs the
  trainer's in-flight state into the variables, the supported path);
- swapping the average into the model for the validation inside `fit`;
- writing the average into the model at the end of `fit`;
- saving its state beside a `keras.callbacks.BackupAndRestore` checkpoint
  at each epoch end and loading it when `fit` resumes, so that a resumed
  run averages exactly like an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile

import keras
import numpy as np

from kerasft._src import keras_internals
from kerasft._src.callbacks.trainable_schedule import _optimizer_tree
from kerasft._src.logs import get_logger
from kerasft._src.validation import check_bool
from kerasft._src.validation import check_int
from kerasft._src.validation import check_model

_STATE_VERSION = 1


class WeightAverage(keras.callbacks.Callback):
    """Base of `EMA` and `SWA` (see the module docstring).

    Subclasses implement `_epoch_begin(epoch)`, `_epoch_end(epoch)`,
    `_state()` / `_load_state(state)` (their counters, JSON-serializable),
    and may override `_before_evaluate()` and `_finish()`.
    """

    def __init__(self, *, start_epoch: int, swap_on_evaluate: bool):
        super().__init__()
        self.start_epoch = check_int("start_epoch", start_epoch, minimum=0)
        self.swap_on_evaluate = check_bool("swap_on_evaluate", swap_on_evaluate)
        self._averaged_weights = []
        self._average = None
        self._raw = None
        self._training = False
        self._first_epoch = True
        self._epoch = 0
        self._backup_dirs = []
        self._state_name = f"kerasft_{type(self).__name__.lower()}.npz"

    def get_config(self) -> dict:
        return {
            "start_epoch": self.start_epoch,
            "swap_on_evaluate": self.swap_on_evaluate,
        }

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    # Setup and validation.

    def set_model(self, model):
        super().set_model(model)
        self._backup_dirs = []
        siblings = keras_internals.sibling_callbacks(self)
        if siblings is None:
            return
        same = [c for c in siblings if type(c) is type(self)]
        index = next(i for i, c in enumerate(same) if c is self)
        suffix = f"_{index}" if index else ""
        self._state_name = f"kerasft_{type(self).__name__.lower()}{suffix}.npz"
        for other in siblings:
            if isinstance(other, keras.callbacks.BackupAndRestore):
                self._check_backup(other)
                # kerasft's BackupAndRestore: this process's own folder.
                folder = getattr(other, "process_dir", None)
                folder = folder() if folder else other.backup_dir
                self._backup_dirs.append(os.fspath(folder))

    def _check_backup(self, backup):
        """Refuses `BackupAndRestore(save_freq=<int>)`.

        Keras restarts an epoch interrupted after a mid-epoch checkpoint
        from its first batch with the weights of the middle of that epoch,
        so the average would see part of the epoch twice; and the average
        is saved at epoch ends only. Refused when `fit` sets the callbacks
        up, before anything trains or is loaded.
        """
        if backup.save_freq != "epoch":
            raise ValueError(
                f"{type(self).__name__} cannot resume exactly from a "
                "mid-epoch checkpoint: keras.callbacks.BackupAndRestore "
                "restarts an interrupted epoch from its first batch with "
                "the weights of the middle of that epoch, so the average "
                "would count part of the epoch twice. Use "
                "BackupAndRestore(save_freq='epoch'), which resumes "
                f"exactly. Received: save_freq={backup.save_freq!r}"
            )

    def on_train_begin(self, logs=None):
        model = self.model
        name = type(self).__name__
        check_model(model, weights=True, purpose=name)
        for optimizer in _optimizers(model):
            if getattr(optimizer, "use_ema", False):
                raise ValueError(
                    f"{name} keeps its own average of the weights and "
                    "writes it into the model when `fit` ends, where Keras "
                    "writes the optimizer's EMA too, so one would silently "
                    "replace the other. Use one of them: an optimizer "
                    f"without `use_ema`, or no {name} callback. Received: "
                    f"optimizer {optimizer.name!r} with use_ema=True"
                )
        self._averaged_weights = [
            v for v in model.weights if keras.backend.is_float_dtype(v.dtype)
        ]
        self._average = None
        self._raw = None
        self._training = True
        self._first_epoch = True
        self._reset_counters()

    # Reading and writing the weights.

    def _current(self):
        """The model's current float weights, as new tensors."""
        keras_internals.sync_backend_state(self.model)
        return [_read(v) for v in self._averaged_weights]

    def _move_towards_current(self, rate):
        """`average += rate * (weights - average)`, for every weight."""
        self._average = [
            keras.ops.add(
                average,
                keras.ops.multiply(
                    keras.ops.subtract(
                        keras.ops.cast(weights, average.dtype), average
                    ),
                    rate,
                ),
            )
            for average, weights in zip(self._average, self._current())
        ]

    def _write(self, values):
        # A copy: on JAX the jitted train and test steps donate the buffers
        # of the state they read, which would delete the kept average.
        for variable, value in zip(self._averaged_weights, values):
            variable.assign(
                keras.ops.copy(keras.ops.cast(value, variable.dtype))
            )

    def _begin_average(self):
        self._average = [
            keras.ops.cast(w, _average_dtype(w)) for w in self._current()
        ]
        get_logger("callbacks").info(
            "%s: averaging %d weights from epoch %d.",
            type(self).__name__,
            len(self._average),
            self._epoch,
        )

    # Hooks.

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if self._first_epoch:
            self._first_epoch = False
            if epoch > 0 and self._backup_dirs:
                self._resume(epoch)
        self._epoch_begin(epoch)

    def on_epoch_end(self, epoch, logs=None):
        self._epoch_end(epoch)
        for directory in self._backup_dirs:
            self._save(directory, epoch + 1)

    def on_test_begin(self, logs=None):
        if not (self._training and self.swap_on_evaluate):
            return
        self._before_evaluate()
        if self._average is not None and self._raw is None:
            self._raw = self._current()
            self._write(self._average)

    def on_test_end(self, logs=None):
        if self._raw is not None:
            keras_internals.sync_backend_state(self.model)
            self._write(self._raw)
            self._raw = None

    def on_train_end(self, logs=None):
        self._training = False
        name = type(self).__name__
        if self._average is None:
            warnings.warn(
                f"{name}: training ended before averaging started "
                f"(start_epoch={self.start_epoch}), so the model keeps its "
                "last weights.",
                stacklevel=2,
            )
            return
        keras_internals.sync_backend_state(self.model)
        self._write(self._average)
        get_logger("callbacks").info(
            "%s: wrote the average (%s) into model %r.",
            name,
            self._describe(),
            self.model.name,
        )
        self._finish()

    # Subclass hooks.

    def _reset_counters(self):
        """Resets the subclass's counters at the start of `fit`."""

    def _epoch_begin(self, epoch):
        """Called at each epoch start, after a resume was loaded."""

    def _epoch_end(self, epoch):
        """Called at each epoch end, before the state is saved."""

    def _before_evaluate(self):
        """Called before the average is swapped in for validation."""

    def _finish(self):
        """Called after the average was written at the end of `fit`."""

    def _state(self) -> dict:
        return {}

    def _load_state(self, state: dict):
        """Restores the counters `_state()` returned."""

    def _describe(self) -> str:
        return ""

    # Saving beside BackupAndRestore.

    def _save(self, directory, epoch):
        """Writes the state after `epoch` epochs; keeps the previous one."""
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, self._state_name)
        meta = {
            "version": _STATE_VERSION,
            "callback": type(self).__name__,
            "epoch": epoch,
            "started": self._average is not None,
            "state": self._state(),
        }
        arrays = {"meta": np.array(json.dumps(meta))}
        for i, value in enumerate(self._average or ()):
            arrays[f"a{i}"] = keras.ops.convert_to_numpy(value)
        temporary = path + ".tmp.npz"
        np.savez(temporary, **arrays)
        if os.path.exists(path):
            os.replace(path, path + ".bkp")
        os.replace(temporary, path)

    def _resume(self, epoch):
        """Loads the state saved after `epoch` epochs, if there is one."""
        for directory in self._backup_dirs:
            path = os.path.join(directory, self._state_name)
            for candidate in (path, path + ".bkp"):
                loaded = _read_state(candidate)
                if loaded is not None and loaded[0]["epoch"] == epoch:
                    self._restore(*loaded, candidate)
                    return
        warnings.warn(
            f"{type(self).__name__}: fit resumes at epoch {epoch} from a "
            "keras.callbacks.BackupAndRestore checkpoint, but no saved "
            f"average for that epoch was found in {self._backup_dirs}, so "
            "averaging starts afresh from this epoch (or from start_epoch="
            f"{self.start_epoch} if later). Was the "
            f"checkpoint written with this {type(self).__name__} callback?",
            stacklevel=2,
        )

    def _restore(self, meta, arrays, path):
        if meta["callback"] != type(self).__name__ or (
            meta["started"] and len(arrays) != len(self._averaged_weights)
        ):
            raise ValueError(
                f"{type(self).__name__}: the saved average in {path} does "
                "not match this callback and model. Received: a state of "
                f"{meta['callback']} with {len(arrays)} arrays for a model "
                f"with {len(self._averaged_weights)} floating-point weights"
            )
        if meta["started"]:
            for value, variable in zip(arrays, self._averaged_weights):
                if tuple(value.shape) != tuple(variable.shape):
                    raise ValueError(
                        f"{type(self).__name__}: the saved average in "
                        f"{path} does not match the model's weights. "
                        f"Received: shape {tuple(value.shape)} for weight "
                        f"{variable.path!r} of shape {tuple(variable.shape)}"
                    )
            self._average = [keras.ops.convert_to_tensor(a) for a in arrays]
        self._load_state(meta["state"])
        get_logger("callbacks").info(
            "%s: resumed the average (%s) from %s.",
            type(self).__name__,
            self._describe(),
            path,
        )


def _read_state(path):
    """`(meta, arrays)` from a state file, or None when there is no usable one.

    A file cut short by a crash while it was written counts as none, so
    the previous one (`.bkp`) is tried, as `BackupAndRestore` does for its
    own files.
    """
    if not os.path.exists(path):
        return None
    try:
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            count = len([k for k in data.files if k != "meta"])
            arrays = [data[f"a{i}"] for i in range(count)]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None
    if not isinstance(meta, dict) or meta.get("version") != _STATE_VERSION:
        return None
    return meta, arrays


def _optimizers(model):
    optimizer = getattr(model, "optimizer", None)
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        return []
    return _optimizer_tree(optimizer)


def _average_dtype(value):
    """float32 at least: a bfloat16 average could not move by 1 - 0.999."""
    dtype = keras.backend.standardize_dtype(value.dtype)
    return "float64" if dtype == "float64" else "float32"


def _read(variable):
    """A new tensor holding the variable's value, outside any gradient."""
    return keras.ops.copy(keras.ops.stop_gradient(variable))
