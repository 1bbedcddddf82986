"""`SWA`: stochastic weight averaging over epoch ends."""

from __future__ import annotations

import warnings
from typing import Any

import keras

from kerasft._src import walk
from kerasft._src.batch_norm import input_batches
from kerasft._src.batch_norm import recompute_bn_statistics
from kerasft._src.callbacks.weight_average import WeightAverage
from kerasft._src.validation import check_int


@keras.saving.register_keras_serializable(package="kerasft")
class SWA(WeightAverage):
    """Averages the weights of each epoch end from `start_epoch`.

    Stochastic Weight Averaging (Izmailov et al., 2018; Lightning's
    `StochasticWeightAveraging`): the weights at the end of epochs
    `start_epoch`, `start_epoch + 1`, ... are averaged with equal weights,
    and the average is written into the model when `fit` ends. It helps
    most when the later epochs wander around a wide minimum: train the
    last epochs with a constant or cyclic learning rate (for instance with
    `keras.callbacks.LearningRateScheduler`).

    The averaged BatchNormalization statistics are not the statistics of
    the averaged weights. When BN layers trained during the averaged
    epochs, pass `bn_data` (training inputs) and the moving statistics of
    the trainable BN layers are recomputed with one pass over it after the
    average is written (see `kerasft.recompute_bn_statistics`); without
    `bn_data` a warning says to call `kerasft.recompute_bn_statistics`.
    With kerasft's default `bn="frozen"` policy BN layers do not train and
    nothing needs recomputing.

    Like `kerasft.callbacks.EMA`, the average is kept by the callback, so it
    works inside an `UnfreezeSchedule` or `FreezeUntil`, averages every
    floating-point weight, frozen or not, and survives a
    `keras.callbacks.BackupAndRestore(save_freq="epoch")` resume exactly
    (`save_freq=<int>` is refused when `fit` starts).

    Example:

    ```python
    swa = kerasft.callbacks.SWA(start_epoch=6, bn_data=x_train)
    model.fit(x_train, y_train, epochs=10, callbacks=[swa])
    # `model` holds the mean of the weights after epochs 6, 7, 8 and 9.
    ```

    Args:
        start_epoch: int >= 0. The first epoch whose end weights are
            averaged.
        bn_data: The inputs for recomputing BatchNormalization statistics
            at the end, in any form `kerasft.recompute_bn_statistics`
            takes, or None. Not part of `get_config()`. Defaults to `None`.
        bn_batch_size: int. Batch size of `bn_data` when it is an array.
            Defaults to `32`.
        swap_on_evaluate: bool. Whether the validation inside `fit` runs on
            the average of the epochs so far (this epoch included) once
            averaging started. BN statistics are not recomputed for it.
            Defaults to `False`.

    Attributes:
        averaged: int. How many epoch ends the average holds.

    Raises:
        TypeError, ValueError: at construction, for an argument of the wrong
            type or value. When `fit` starts: for a `BackupAndRestore` with
            an int `save_freq`, or an optimizer with `use_ema=True`.
    """

    def __init__(
        self,
        start_epoch: int,
        *,
        bn_data: Any = None,
        bn_batch_size: int = 32,
        swap_on_evaluate: bool = False,
    ):
        bn_batch_size = check_int("bn_batch_size", bn_batch_size, minimum=1)
        if bn_data is not None:
            input_batches(bn_data, bn_batch_size, "bn_data")  # Checks only.
        super().__init__(
            start_epoch=start_epoch, swap_on_evaluate=swap_on_evaluate
        )
        self.bn_data = bn_data
        self.bn_batch_size = bn_batch_size
        self.averaged = 0
        self._bn_trained = False
        self._sampled = None

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(bn_batch_size=self.bn_batch_size)
        return config

    def _reset_counters(self):
        self.averaged = 0
        self._bn_trained = False
        self._sampled = None

    def _epoch_end(self, epoch):
        self._sample(epoch)

    def _before_evaluate(self):
        # Validation runs after the epoch's last step, so the weights are
        # those of the epoch end.
        self._sample(self._epoch)

    def _sample(self, epoch):
        """Adds the weights of the end of `epoch`, once per epoch."""
        if epoch < self.start_epoch or epoch == self._sampled:
            return
        self._sampled = epoch
        if self._average is None:
            self._begin_average()
        else:
            # A product, not a quotient: XLA may turn a division by a
            # constant into a product anyway, and then the backends differ.
            self._move_towards_current(1.0 / (self.averaged + 1))
        self.averaged += 1
        self._bn_trained = self._bn_trained or any(
            isinstance(layer, keras.layers.BatchNormalization)
            and layer.trainable
            for layer in walk.sublayers(self.model)
        )

    def _finish(self):
        if self.bn_data is not None:
            recompute_bn_statistics(
                self.model, self.bn_data, batch_size=self.bn_batch_size
            )
        elif self._bn_trained:
            warnings.warn(
                "SWA: BatchNormalization layers trained during the averaged "
                "epochs, and their moving statistics are now averages of "
                "the epoch-end statistics, not those of the averaged "
                "weights. Pass `bn_data` to SWA, or call "
                "`kerasft.recompute_bn_statistics(model, x_train)`.",
                stacklevel=2,
            )

    def _state(self):
        return {
            "averaged": self.averaged,
            "bn_trained": self._bn_trained,
            "sampled": self._sampled,
        }

    def _load_state(self, state):
        self.averaged = int(state["averaged"])
        self._bn_trained = bool(state["bn_trained"])
        self._sampled = state["sampled"]

    def _describe(self):
        return f"{self.averaged} epoch ends from epoch {self.start_epoch}"
