"""`StrengthSchedule`: a callback that sets a penalty's strengths per epoch."""

from __future__ import annotations

from collections.abc import Callable

import keras

from kerasft._src.regularizers.penalty import StagePenalty


class StrengthSchedule(keras.callbacks.Callback):
    """Sets the strengths of a `StagePenalty` at the start of each epoch.

    Each schedule is a function of the epoch index (from 0) that returns a
    float, for example a lambda or a
    `keras.optimizers.schedules.LearningRateSchedule` called with the epoch.
    The values used are written into the logs as `<name>/<strength>`
    (`l2sp/alpha`). Works under `jit_compile` on every backend (see
    `StagePenalty.set_strength`).

    Example:

    ```python
    reg = kerasft.regularizers.l2sp(model, alpha=0.1, beta=0.01)
    model.fit(x, y, epochs=4, callbacks=[
        kerasft.regularizers.StrengthSchedule(
            reg, alpha=lambda epoch: 0.1 / (1 + epoch))])
    ```

    Args:
        regularizer: `StagePenalty` (`L2SP`, `L2`). Applied to the model
            being trained.
        **schedules: callables by strength name: `alpha=` and/or `beta=`
            for `L2SP`, `strength=` for `L2` (the names in the penalty's
            `strength_names`).

    Raises:
        TypeError: for a regularizer of another type or a schedule that is
            not callable.
        ValueError: for no schedule or an unknown strength name.
    """

    def __init__(self, regularizer: StagePenalty, **schedules: Callable):
        super().__init__()
        if not isinstance(regularizer, StagePenalty):
            raise TypeError(
                "`regularizer` must be a kerasft.regularizers.StagePenalty, "
                "such as L2SP or L2. "
                f"Received: regularizer={regularizer!r}"
            )
        valid = regularizer.strength_names
        if not schedules:
            raise ValueError(
                "Pass at least one schedule, e.g. `alpha=lambda epoch: ...`. "
                f"Valid names: {list(valid)}. Received: no schedules"
            )
        for key, fn in schedules.items():
            if key not in valid:
                raise ValueError(
                    f"Unknown strength {key!r} for "
                    f"{type(regularizer).__name__}. Valid names: "
                    f"{list(valid)}. Received: {key}={fn!r}"
                )
            if not callable(fn):
                raise TypeError(
                    f"Each schedule must be callable with the epoch index. "
                    f"Received: {key}={fn!r}"
                )
        self.regularizer = regularizer
        self.schedules = dict(schedules)

    def on_epoch_begin(self, epoch, logs=None):
        values = {}
        for key, fn in self.schedules.items():
            value = fn(epoch)
            values[key] = float(keras.ops.convert_to_numpy(value))
        model = self.model
        if self.regularizer.model is not model:
            raise ValueError(
                f"{type(self.regularizer).__name__} is not applied to the "
                f"model being trained ('{model.name}'). Call "
                "`regularizer.apply(model)` before `fit`. Received: "
                f"regularizer.model={self.regularizer.model!r}"
            )
        self.regularizer.set_strength(**values)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for key, value in self.regularizer.strengths.items():
            logs[f"{self.regularizer.name}/{key}"] = value
