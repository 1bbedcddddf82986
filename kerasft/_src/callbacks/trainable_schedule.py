"""Shared machinery of the callbacks that change what trains inside `fit`.

Not exported. `UnfreezeSchedule` and `FreezeUntil` are thin public layers
over `TrainableSchedule`, which owns:

- the schedule: sorted `(position, spec)` entries, where a position is an
  epoch or a global step and each spec sets the trainable state of the
  *whole* model, so the state after an entry does not depend on the path
  that led to it (this is what makes resuming exact);
- applying an entry: flip `trainable` with the kerasft freezing functions
  inside `keras_internals.mutating`, which syncs backend state and, when
  the trainable set changed, rebuilds the optimizer carrying its state and
  resets the step functions;
- resuming under `keras.callbacks.BackupAndRestore`: the optimizer's variable
  loading is intercepted from `set_model` (before any `on_train_begin`, so
  the callback order does not matter), the loaded values are held back,
  and at the first `on_epoch_begin` (when the resumed epoch is known) the
  schedule state of the end of the previous epoch is applied and the held
  values are loaded into the optimizer that now has the checkpoint's
  variable set.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from kerasft._src import freezing
from kerasft._src import keras_internals
from kerasft._src.distributed import refusals
from kerasft._src.freezing import check_bn
from kerasft._src.logs import verbose_message
from kerasft._src.optimizers import rebuild
from kerasft._src.stages import resolve_stages
from kerasft._src.stages import stages as model_stages
from kerasft._src.validation import check_model
from kerasft._src.validation import check_type

UNITS = ("epoch", "step")


@dataclasses.dataclass(frozen=True)
class Spec:
    """One schedule entry's trainable state.

    `kind` is `"from"` (the target stage and every stage after it train,
    everything before is frozen), `"after"` (the stages after the target
    train, the target and everything before are frozen) or `"only"` (just
    the target trains).
    """

    kind: str
    target: Any

    def describe(self, model: keras.Model | None = None) -> str:
        """E.g. `"from 'block5'"`; with `model`, stage indices are named."""
        target = self.target
        if model is not None:
            names = [stage.name for stage in model_stages(model)]
            target = _named(target, names)
        return f"{self.kind} {target!r}"

    def apply(self, model: keras.Model, bn: str) -> None:
        if self.kind == "only":
            freezing.freeze(model, bn=bn)
            freezing.unfreeze(model, self.target, bn=bn)
        else:
            freezing.freeze_until(
                model, self.target, inclusive=self.kind == "after", bn=bn
            )

    def resolve(self, model: keras.Model) -> None:
        """Raises the resolver's ValueError/TypeError for a bad target."""
        resolve_stages(model, self.target)


def _named(target: Any, names: list[str]) -> Any:
    """A target with its stage indices (also inside a list) as stage names."""
    if isinstance(target, (list, tuple)):
        return type(target)(_named(t, names) for t in target)
    is_index = isinstance(target, (int, np.integer)) and not isinstance(
        target, bool
    )
    if is_index and -len(names) <= target < len(names):
        return names[target]
    return target


def as_spec(value: Any) -> Spec:
    return value if isinstance(value, Spec) else Spec("from", value)


def check_schedule(schedule: Any, unit: str) -> list[tuple[int, Spec]]:
    """Validates a `{position: target}` mapping; returns sorted entries."""
    if not isinstance(schedule, Mapping):
        raise TypeError(
            f"`schedule` must be a dict mapping {unit}s (ints >= 0, "
            "increasing) to targets, e.g. {0: 'head', 2: 'conv5'}. "
            f"Received: schedule={schedule!r} of type "
            f"{type(schedule).__name__}"
        )
    if not schedule:
        raise ValueError(
            "`schedule` must have at least one entry, e.g. {0: 'head'}. "
            f"Received: schedule={schedule!r}"
        )
    entries = []
    previous = None
    for key, value in schedule.items():
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)):
            raise TypeError(
                f"Schedule keys must be int {unit}s. Received: key {key!r} "
                f"of type {type(key).__name__} in schedule={schedule!r}"
            )
        if key < 0:
            raise ValueError(
                f"Schedule {unit}s must be >= 0. Received: {unit} {key} in "
                f"schedule={schedule!r}"
            )
        if previous is not None and key <= previous:
            raise ValueError(
                f"Schedule {unit}s must be strictly increasing, in the "
                f"order written. Received: {unit} {key} after {previous} in "
                f"schedule={schedule!r}"
            )
        if value is None:
            raise TypeError(
                f"Schedule target for {unit} {key} is None; use a stage "
                "name, layer name, regex, stage index (0 for the whole "
                "model) or `kerasft.callbacks.only(...)`. "
                f"Received: schedule={schedule!r}"
            )
        previous = int(key)
        entries.append((int(key), as_spec(value)))
    return entries


def check_verbose(verbose: Any) -> None:
    check_type("verbose", verbose, (int, np.integer), "0 or 1")  # or a bool
    if verbose not in (0, 1):
        raise ValueError(
            f"`verbose` must be 0 or 1. Received: verbose={verbose!r}"
        )


class TrainableSchedule(keras.callbacks.Callback):
    """Base of `UnfreezeSchedule` and `FreezeUntil` (see module docstring).

    Attributes:
        changes: list of dict. One record per change in the last `fit`:
            `epoch`, `step` (global step, or None at an epoch start),
            `target`, `stages` (names of the stages that train afterwards),
            `trainable_params` and `rebuild_seconds`.
    """

    def __init__(
        self,
        schedule: Mapping | None,
        *,
        unit: str = "epoch",
        bn: str = "frozen",
        verbose: int = 0,
        builder: Callable[[keras.Model], Mapping] | None = None,
    ):
        super().__init__()
        if unit not in UNITS:
            raise ValueError(
                f"`unit` must be one of {list(UNITS)}. Received: unit={unit!r}"
            )
        check_bn(bn)
        check_verbose(verbose)
        self.unit = unit
        self.bn = bn
        self.verbose = int(verbose)
        self._builder = builder
        self._entries = (
            None if schedule is None else check_schedule(schedule, unit)
        )
        self.schedule = None if schedule is None else dict(schedule)
        self.changes = []
        self._applied = -1
        self._started = False
        self._training = False
        self._held = None
        self._release = None
        self._top_optimizer = None
        self._epoch = 0

    # Interception of BackupAndRestore's optimizer loading.

    # Whether a mid-epoch `BackupAndRestore` checkpoint is refused (see
    # `_check_backups`).
    _refuses_batch_backups = False

    def set_model(self, model):
        self._check_backups()
        super().set_model(model)
        self._stop_intercepting()
        self._held = None
        optimizer = getattr(model, "optimizer", None)
        if not isinstance(optimizer, keras.optimizers.Optimizer):
            return
        releases = [
            keras_internals.intercept_variable_loading(opt, self._hold)
            for opt in _optimizer_tree(optimizer)
        ]

        def release():
            for r in releases:
                r()

        self._release = release
        self._top_optimizer = optimizer

    def _check_backups(self):
        """Refuses `BackupAndRestore(save_freq=<int>)` beside a schedule.

        Keras restarts an epoch interrupted after a mid-epoch checkpoint
        from its first batch, with the weights of the middle of that epoch.
        A schedule that changes the trainable set during `fit` would then
        replay part of an epoch under another trainable set, so a resumed
        run could not match an uninterrupted one. Refused when `fit` sets
        the callbacks up, before anything trains or is loaded.
        """
        if not self._refuses_batch_backups:
            return
        for other in keras_internals.sibling_callbacks(self) or ():
            if not isinstance(other, keras.callbacks.BackupAndRestore):
                continue
            save_freq = other.save_freq
            if save_freq != "epoch":
                raise ValueError(
                    f"{type(self).__name__} cannot resume exactly from a "
                    "mid-epoch checkpoint: keras.callbacks.BackupAndRestore "
                    "restarts an interrupted epoch from its first batch "
                    "with the weights of the middle of that epoch, so part "
                    "of the epoch would be replayed under another trainable "
                    "set. Use BackupAndRestore(save_freq='epoch'), which "
                    f"resumes exactly. Received: save_freq={save_freq!r}"
                )

    def _hold(self, optimizer, store):
        # Only the top-level optimizer's store is kept: its `variables`
        # include those of nested optimizers (LossScaleOptimizer,
        # MultiOptimizer), so it covers all of the state.
        if optimizer is not self._top_optimizer:
            return
        values = keras_internals.stored_optimizer_values(store)
        if values:
            self._held = values

    def _stop_intercepting(self):
        if self._release is not None:
            self._release()
            self._release = None

    # Validation and state.

    def on_train_begin(self, logs=None):
        self._training = True
        self._started = False
        self._applied = -1
        self.changes = []
        try:
            self._validate(self.model)
        except Exception:
            # fit stops here without calling on_train_end.
            self.on_train_end()
            raise

    def _validate(self, model):
        _check_distribution(type(self).__name__)
        refusals.check_not_multi_worker(model, type(self).__name__)
        check_model(
            model,
            compiled=True,
            purpose=f"{type(self).__name__}, which rebuilds the optimizer "
            "when the trainable set changes",
        )
        rebuild.check_rebuildable(model.optimizer)
        if self._builder is not None:
            self.schedule = dict(self._builder(model))
            self._entries = check_schedule(self.schedule, self.unit)
        for position, spec in self._entries:
            try:
                spec.resolve(model)
            except (ValueError, TypeError) as e:
                raise type(e)(
                    f"{type(self).__name__}: bad target for {self.unit} "
                    f"{position}: {e}"
                ) from e
        epochs = self.params.get("epochs")
        steps = self.params.get("steps")
        if self.unit == "step" and not steps:
            raise ValueError(
                f"{type(self).__name__}(unit='step') needs the number of "
                "steps per epoch, which is unknown for this dataset. Pass "
                "`steps_per_epoch` to `fit`. "
                f"Received: steps_per_epoch={steps}"
            )
        if epochs is not None:
            horizon = epochs if self.unit == "epoch" else epochs * steps
            late = [p for p, _ in self._entries if p >= horizon]
            if late:
                warnings.warn(
                    f"{type(self).__name__}: schedule {self.unit}s {late} "
                    f"are at or beyond the end of training ({self.unit}s "
                    f"0..{horizon - 1} with epochs={epochs}), so those "
                    "entries never apply. Received: "
                    f"schedule={self.schedule!r}",
                    stacklevel=2,
                )

    def _position(self, epoch, batch=0):
        if self.unit == "epoch":
            return epoch
        return epoch * self.params["steps"] + batch

    def _last_begin_of_epoch(self, epoch):
        """The position of the last step-begin hook of `epoch`."""
        if self.unit == "epoch":
            return epoch
        steps = self.params["steps"]
        per_call = max(int(getattr(self.model, "steps_per_execution", 1)), 1)
        return epoch * steps + ((steps - 1) // per_call) * per_call

    def _due(self, position):
        """Index of the last entry at or before `position`, or -1."""
        index = -1
        for i, (p, _) in enumerate(self._entries):
            if p <= position:
                index = i
        return index

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if not self._started:
            self._started = True
            self._start(epoch)
        position = self._position(epoch)
        step = position if self.unit == "step" else None
        self._advance(epoch, position, step)

    def on_train_batch_begin(self, batch, logs=None):
        if self.unit != "step":
            return
        epoch = self._epoch
        position = self._position(epoch, batch)
        nxt = self._applied + 1
        if nxt < len(self._entries) and self._entries[nxt][0] <= position:
            self._advance(epoch, position, position)

    def _start(self, epoch):
        """First epoch of this fit: load a held BackupAndRestore state.

        The checkpoint's optimizer state belongs to the trainable set in
        force when it was written: the end of `epoch - 1` for
        `save_freq="epoch"`, or somewhere inside `epoch` for an int
        `save_freq` (Keras then restarts that epoch). The first candidate
        state whose optimizer matches the checkpoint's variables is used.
        """
        self._stop_intercepting()
        held, self._held = self._held, None
        if held is None:
            return
        candidates = []
        if epoch > 0:
            candidates.append(self._due(self._last_begin_of_epoch(epoch - 1)))
        candidates.append(self._due(self._position(epoch)))
        for index in dict.fromkeys(candidates):
            if index >= 0:
                self._apply(index, epoch, None, resumed=True)
            variables = self.model.optimizer.variables
            if _matches(held, variables):
                for i, variable in enumerate(variables):
                    variable.assign(held[i])
                return
        warnings.warn(
            f"{type(self).__name__}: the restored optimizer state has "
            f"{len(held)} variables, which matches no schedule state around "
            f"epoch {epoch} (the optimizer now has "
            f"{len(self.model.optimizer.variables)}), so no optimizer state "
            "was restored. Was the checkpoint written with the same "
            "schedule and model?",
            stacklevel=2,
        )

    def _advance(self, epoch, position, step):
        self._epoch = epoch
        index = self._due(position)
        if index > self._applied:
            self._apply(index, epoch, step)

    def _apply(self, index, epoch, step, resumed=False):
        model = self.model
        _, spec = self._entries[index]
        before = _trainable_ids(model)
        params_before = _count(model.trainable_variables)
        start = time.perf_counter()
        with keras_internals.mutating(
            model, optimizer="rebuild_if_changed", steps="reset"
        ):
            spec.apply(model, self.bn)
        after = _trainable_ids(model)
        seconds = time.perf_counter() - start
        self._applied = index
        trained = [s.name for s in model_stages(model) if s.trainable_variables]
        record = {
            "epoch": epoch,
            "step": step,
            "target": spec.describe(model),
            "stages": trained,
            "trainable_params": _count(model.trainable_variables),
            "rebuild_seconds": seconds,
            "resumed": resumed,
        }
        self.changes.append(record)
        if self.verbose and not resumed and before != after:
            where = f"Epoch {epoch + 1}" + (
                f", step {step}" if step is not None else ""
            )
            verbose_message(
                "callbacks",
                f"{where}: {type(self).__name__} set trainable "
                f"{record['target']} -> stages {trained}; trainable params "
                f"{params_before:,} -> {record['trainable_params']:,}.",
            )

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        model = self.model
        logs["trainable_params"] = _count(model.trainable_variables)
        first = -1
        for stage in model_stages(model):
            if stage.trainable_variables:
                first = stage.index
                break
        logs["first_trainable_stage"] = first

    def on_train_end(self, logs=None):
        self._training = False
        self._stop_intercepting()
        self._held = None

    def on_test_end(self, logs=None):
        if not self._training:
            self._stop_intercepting()

    def on_predict_end(self, logs=None):
        if not self._training:
            self._stop_intercepting()


def _check_distribution(name):
    """Refuses the distributed setups where changing what trains is unsafe.

    `keras.distribution` (JAX) and `tf.distribute` strategies (TensorFlow)
    are supported: the rebuilt optimizer's variables get the distribution's
    layout (JAX) or are created in the model's strategy scope (TensorFlow).
    Under `torch.distributed` nothing in `fit` synchronizes the processes,
    and `DistributedDataParallel` fixes the parameters it all-reduces when it
    is constructed, so the change would leave replicas silently diverging.
    """
    world_size = keras_internals.torch_world_size()
    if world_size > 1:
        raise ValueError(
            f"{name} cannot change which weights train under "
            "torch.distributed: Keras's torch trainer does not synchronize "
            "processes in `fit`, and `DistributedDataParallel` only "
            "all-reduces the parameters that required gradients when it was "
            "constructed, so after a change the replicas would silently "
            "diverge. Supported: `keras.distribution` on JAX and "
            "`tf.distribute` strategies on TensorFlow. With torch DDP, set "
            "the trainable state with `kerasft.freeze_until` between phases "
            "of your own training loop and wrap the model in a new "
            "`DistributedDataParallel` after each change (see "
            "docs/distributed.md). Received: a torch.distributed process "
            f"group with world_size={world_size}."
        )


def _matches(held, variables):
    if len(held) != len(variables):
        return False
    return all(
        tuple(value.shape) == tuple(v.shape)
        for value, v in zip(held, variables)
    )


def _optimizer_tree(optimizer):
    """The optimizer and the optimizers nested in it, each once."""
    out, stack = [], [optimizer]
    while stack:
        opt = stack.pop()
        if any(opt is o for o in out):
            continue
        out.append(opt)
        inner = getattr(opt, "inner_optimizer", None)
        if isinstance(inner, keras.optimizers.Optimizer):
            stack.append(inner)
        if isinstance(opt, keras.optimizers.MultiOptimizer):
            stack.extend(keras_internals.sub_optimizers(opt))
    return out


def _trainable_ids(model):
    return [id(v) for v in model.trainable_variables]


def _count(variables):
    return int(sum(int(np.prod(v.shape)) for v in variables))
