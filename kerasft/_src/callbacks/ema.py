"""`EMA`: an exponential moving average of the weights during `fit`."""

from __future__ import annotations

import keras

from kerasft._src.callbacks.weight_average import WeightAverage
from kerasft._src.validation import check_bool
from kerasft._src.validation import check_int
from kerasft._src.validation import check_number


@keras.saving.register_keras_serializable(package="kerasft")
class EMA(WeightAverage):
    """Keeps an exponential moving average of the weights; writes it at the end.

    After every `every_n_steps` training steps the average moves towards
    the current weights:

    `average = average + (1 - decay) * (weights - average)`

    (Polyak averaging, as in Keras's optimizer `use_ema`, timm's
    `ModelEmaV3` and Lightning's `EMAWeightAveraging`). The average starts
    as a copy of the weights at the start of epoch `start_epoch`. When
    `fit` ends, the average is written into the model. With
    `swap_on_evaluate=True`, the validation inside `fit` runs on the
    average (the weights that training continues from are put back after
    it), so `val_*` metrics, and the `EarlyStopping` and `ModelCheckpoint`
    monitors, judge the model that `fit` will return (the weights those two
    save are still the raw ones). Each `fit` starts a new average.

    Unlike Keras's optimizer `use_ema`, the average is kept by the callback,
    not in optimizer slots, so it works inside an `UnfreezeSchedule` or
    `FreezeUntil`: rebuilding the optimizer loses nothing, and weights that
    start frozen are averaged too (while frozen, their average stays their
    exact value). Every floating-point weight of the model is averaged,
    BatchNormalization moving statistics included, as timm does; integer
    weights are not. Do not also set `use_ema` on the optimizer (refused).

    With `keras.callbacks.BackupAndRestore(save_freq="epoch")` the average
    is saved beside each checkpoint and loaded when `fit` resumes, so the
    resumed run ends with the same average as an uninterrupted one.
    `BackupAndRestore(save_freq=<int>)` is refused with a `ValueError` when
    `fit` starts. Of the callbacks that write weights when `fit` ends, the
    last in the list wins: `EarlyStopping(restore_best_weights=True)`
    placed after this callback restores its best raw weights instead of
    the average.

    The update costs a few elementwise operations per weight, frozen ones
    included; raise `every_n_steps` for large models. With
    `steps_per_execution > 1`, the weights are read once per execution.

    Example:

    ```python
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    ema = kerasft.callbacks.EMA(decay=0.999, start_epoch=1)
    schedule = kerasft.callbacks.UnfreezeSchedule({0: "head", 2: "conv5"})
    model.fit(x, y, epochs=6, callbacks=[schedule, ema])
    # `model` now holds the averaged weights.
    ```

    Args:
        decay: float in [0, 1). How much of the average each update keeps;
            the average spans about `1 / (1 - decay)` updates. Defaults to
            `0.999`.
        start_epoch: int >= 0. The epoch at whose start averaging begins.
            Defaults to `0`.
        every_n_steps: int >= 1. Training steps between two updates,
            counted from the start of averaging. Defaults to `1`.
        warmup: bool. If True, update `t` (from 0) uses
            `min(decay, (1 + t) / (10 + t))`, as TensorFlow's
            `ExponentialMovingAverage(num_updates=...)` does, so that the
            weights the average starts from fade out quickly. Defaults to
            `False`.
        swap_on_evaluate: bool. Whether the validation inside `fit` runs on
            the average. Defaults to `True`.

    Attributes:
        updates: int. The number of updates of the average in the last
            `fit` (a resumed `fit` continues the count).

    Raises:
        TypeError, ValueError: at construction, for an argument of the wrong
            type or value. When `fit` starts: for a `BackupAndRestore` with
            an int `save_freq`, or an optimizer with `use_ema=True`.
    """

    def __init__(
        self,
        decay: float = 0.999,
        *,
        start_epoch: int = 0,
        every_n_steps: int = 1,
        warmup: bool = False,
        swap_on_evaluate: bool = True,
    ):
        decay = check_number(
            "decay", decay, minimum=0, maximum=1, max_inclusive=False
        )
        every_n_steps = check_int("every_n_steps", every_n_steps, minimum=1)
        warmup = check_bool("warmup", warmup)
        super().__init__(
            start_epoch=start_epoch, swap_on_evaluate=swap_on_evaluate
        )
        self.decay = decay
        self.every_n_steps = every_n_steps
        self.warmup = warmup
        self.updates = 0
        self._steps = 0
        self._last_batch = -1

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            decay=self.decay,
            every_n_steps=self.every_n_steps,
            warmup=self.warmup,
        )
        return config

    def _reset_counters(self):
        self.updates = 0
        self._steps = 0

    def _epoch_begin(self, epoch):
        self._last_batch = -1
        if self._average is None and epoch >= self.start_epoch:
            self._begin_average()

    def on_train_batch_end(self, batch, logs=None):
        if self._average is None:
            return
        # `batch` is the last step of the call: with steps_per_execution > 1
        # one call covers several steps.
        done = batch - self._last_batch
        self._last_batch = batch
        before = self._steps
        self._steps += done
        if self._steps // self.every_n_steps > before // self.every_n_steps:
            self._update()

    def _update(self):
        decay = self.decay
        if self.warmup:
            decay = min(decay, (1 + self.updates) / (10 + self.updates))
        self._move_towards_current(1.0 - decay)
        self.updates += 1

    def _state(self):
        return {"updates": self.updates, "steps": self._steps}

    def _load_state(self, state):
        self.updates = int(state["updates"])
        self._steps = int(state["steps"])

    def _describe(self):
        return f"{self.updates} updates, decay {self.decay:g}"
