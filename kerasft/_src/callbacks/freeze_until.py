"""`FreezeUntil`: set a freeze split when `model.fit` starts."""

from __future__ import annotations

from typing import Any

from kerasft._src.callbacks import trainable_schedule as _base
from kerasft._src.validation import check_bool


class FreezeUntil(_base.TrainableSchedule):
    """Freezes every stage up to `target` for the whole `fit`.

    The callback form of `kerasft.freeze_until`: before the first training
    step it freezes the stages up to `target` (and `target` itself when
    `inclusive=True`), makes the later stages trainable, and rebuilds the
    compiled optimizer over the new trainable variables, so there is no need
    to recompile. It also makes `keras.callbacks.BackupAndRestore` resume
    with the right optimizer state, whatever the callback order.

    Example:

    ```python
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(
        x, y, epochs=3,
        callbacks=[kerasft.callbacks.FreezeUntil("block4")],
    )  # block5 and the head train
    ```

    Args:
        target: The last stage to freeze: a stage name, layer name, regex,
            int stage index or Layer (see `kerasft.resolve_stages`).
        inclusive: bool. Whether `target` itself is frozen. Defaults to
            `True`.
        bn: str. BatchNormalization policy (`"frozen"`, `"train"` or
            `"follow"`), as for `kerasft.freeze_until`. Defaults to
            `"frozen"`.
        verbose: int. 1 prints one line when the state changes. Defaults to
            `0`.

    Raises:
        TypeError, ValueError: at construction for a bad `inclusive`, `bn`
            or `verbose`; at `on_train_begin` for an uncompiled model, an
            optimizer that cannot be rebuilt, or a target that does not
            resolve (the message lists the stages).
    """

    def __init__(
        self,
        target: Any,
        *,
        inclusive: bool = True,
        bn: str = "frozen",
        verbose: int = 0,
    ):
        check_bool("inclusive", inclusive)
        if target is None or isinstance(target, _base.Spec):
            raise TypeError(
                "`target` must be a stage name, layer name, regex, stage "
                f"index or Layer. Received: target={target!r}"
            )
        self.target = target
        self.inclusive = inclusive
        kind = "after" if inclusive else "from"
        super().__init__({0: _base.Spec(kind, target)}, bn=bn, verbose=verbose)
