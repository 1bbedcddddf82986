"""`UnfreezeSchedule`: change which stages train, inside one `model.fit`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kerasft._src.callbacks import trainable_schedule as _base
from kerasft._src.stages import stages as model_stages
from kerasft._src.validation import check_int


def only(target: Any) -> _base.Spec:
    """Marks a schedule target as "train only this".

    By default a schedule target means "this stage and every stage after it
    train". Wrapped in `only`, just the target trains and every other stage
    is frozen, as in chain-thaw.

    Example:

    ```python
    kerasft.callbacks.UnfreezeSchedule(
        {0: "head", 2: kerasft.callbacks.only("conv1"), 4: 0}
    )
    ```

    Args:
        target: A stage name, layer name, regex, int stage index, Layer, or a
            list of these (see `kerasft.resolve_stages`).

    Returns:
        A schedule entry value.
    """
    if target is None or isinstance(target, _base.Spec):
        raise TypeError(
            "`only` takes a stage name, layer name, regex, stage index or "
            f"Layer (or a list of these). Received: target={target!r}"
        )
    return _base.Spec("only", target)


class UnfreezeSchedule(_base.TrainableSchedule):
    """Changes which stages of a model train at given epochs or steps.

    Keras fixes the trainable variables when `compile()` runs; flipping
    `layer.trainable` inside `fit` does nothing on TensorFlow and fails on
    JAX and torch. At each entry of its schedule this callback sets the
    trainable state of the whole model, rebuilds the optimizer over the new
    trainable variables (keeping the iteration count, the learning rate and
    the slot state, such as Adam's moments, of variables that still train),
    and makes Keras use new train, test and predict functions, all within
    the running `fit`.

    `schedule` maps an epoch (or, with `unit="step"`, a global training
    step) to a target: at the start of that epoch, the target stage and
    every stage after it (towards the output) train and every stage before
    it is frozen. So `{0: "head", 2: "conv5", 4: "conv4"}` trains the head
    for epochs 0-1, `conv5` and the head for epochs 2-3, and `conv4` onwards
    from epoch 4. A target is anything `kerasft.resolve_stages` accepts
    (stage name, layer name, regex, int stage index with negatives from the
    end, Layer); `0` means the whole model. Wrap a target in
    `kerasft.callbacks.only(...)` to train just that stage. Before the first
    entry the model keeps the trainable state it has when `fit` starts.
    BatchNormalization layers follow the `bn` policy of
    `kerasft.freeze_until`.

    The change happens before the first step at or after its position: at
    `on_epoch_begin` for epochs, at `on_train_batch_begin` for steps. A step
    is `epoch * steps_per_epoch + batch`; with `steps_per_execution > 1`,
    Keras calls the batch hooks once per execution, so a step entry applies
    at the first execution that starts at or after it.

    Resuming with `keras.callbacks.BackupAndRestore` (in either callback
    order) is exact for `save_freq="epoch"`: the callback restores the
    schedule state of the checkpoint before the optimizer state is loaded.
    `BackupAndRestore(save_freq=<int>)` is refused with a `ValueError` when
    `fit` starts: Keras restarts an interrupted epoch from its first batch
    with mid-epoch weights, which no schedule can make exact.

    `logs` (and so `History`, `CSVLogger`, `TensorBoard`) get
    `trainable_params` and `first_trainable_stage` (index into
    `kerasft.stages(model)`, -1 if nothing trains) at each epoch end, and
    `self.changes` lists every change made during the last `fit`.

    Example:

    ```python
    backbone = kerasft.backbones.ResNet50(weights=None, input_shape=(64, 64, 3))
    model = kerasft.build_classifier(backbone, num_classes=10)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    schedule = kerasft.callbacks.UnfreezeSchedule(
        {0: "head", 2: "conv5", 4: "conv4"}, verbose=1
    )
    model.fit(x, y, epochs=6, callbacks=[schedule])
    ```

    Args:
        schedule: dict. Maps epochs (or steps, see `unit`), ints >= 0 in
            strictly increasing order, to targets.
        unit: str. `"epoch"` or `"step"`. Defaults to `"epoch"`.
        bn: str. BatchNormalization policy: `"frozen"` (BN layers never
            train and run in inference mode), `"train"` or `"follow"` (BN
            layers train where their stage trains). Defaults to `"frozen"`.
        verbose: int. 1 prints one line per change. Defaults to `0`.

    Raises:
        TypeError, ValueError: at construction, for a schedule that is not a
            dict, is empty, has non-int, negative or non-increasing keys; an
            unknown `unit`, `bn` or `verbose`. At `on_train_begin` (before
            any step): for a model that is not compiled, an optimizer that
            cannot be rebuilt, a target that does not resolve (the message
            lists the stages), or `unit="step"` without a known number of
            steps per epoch. Entries at or beyond `fit`'s `epochs` warn.
    """

    _refuses_batch_backups = True

    def __init__(
        self,
        schedule: Mapping,
        *,
        unit: str = "epoch",
        bn: str = "frozen",
        verbose: int = 0,
    ):
        super().__init__(schedule, unit=unit, bn=bn, verbose=verbose)

    @classmethod
    def _deferred(cls, builder, bn, verbose):
        """An instance whose schedule is built from the model at train begin."""
        instance = cls.__new__(cls)
        _base.TrainableSchedule.__init__(
            instance, None, bn=bn, verbose=verbose, builder=builder
        )
        return instance

    @classmethod
    def gradual(
        cls,
        every: int = 1,
        *,
        stages: int | None = None,
        bn: str = "frozen",
        verbose: int = 0,
    ) -> UnfreezeSchedule:
        """Gradual unfreezing (ULMFiT): one more stage every `every` epochs.

        Epochs `0..every-1` train the last stage (the head), then every
        `every` epochs the next stage towards the input joins, until
        `stages` stages train (all of them by default). The stage list is
        read from the model when training begins.

        Example:

        ```python
        callback = kerasft.callbacks.UnfreezeSchedule.gradual(every=2)
        # VGG16 classifier: head, then block5+head at epoch 2, ...
        ```

        Args:
            every: int >= 1. Epochs between two unfreezes. Defaults to `1`.
            stages: int >= 1 or None. How many stages train at the end,
                counted from the output. Defaults to `None` (all).
            bn: str. BatchNormalization policy. Defaults to `"frozen"`.
            verbose: int. 1 prints one line per change. Defaults to `0`.

        Returns:
            An `UnfreezeSchedule`.
        """
        check_int("every", every, minimum=1)
        if stages is not None:
            check_int("stages", stages, minimum=1)

        def builder(model):
            n = len(model_stages(model))
            count = n if stages is None else min(stages, n)
            return {i * every: -(i + 1) for i in range(count)}

        return cls._deferred(builder, bn, verbose)

    @classmethod
    def chain_thaw(
        cls, every: int = 1, *, bn: str = "frozen", verbose: int = 0
    ) -> UnfreezeSchedule:
        """Chain-thaw (DeepMoji): the head alone, each stage alone, then all.

        Each phase lasts `every` epochs: first only the last stage (the new
        head) trains; then each other stage trains alone, from the input
        upwards; finally the whole model trains. For `n` stages that is
        `n + 1` phases. The optimizer state of a stage is dropped when it is
        frozen again and starts fresh when it is unfrozen.

        Example:

        ```python
        callback = kerasft.callbacks.UnfreezeSchedule.chain_thaw(every=1)
        ```

        Args:
            every: int >= 1. Epochs per phase. Defaults to `1`.
            bn: str. BatchNormalization policy. Defaults to `"frozen"`.
            verbose: int. 1 prints one line per change. Defaults to `0`.

        Returns:
            An `UnfreezeSchedule`.
        """
        check_int("every", every, minimum=1)

        def builder(model):
            n = len(model_stages(model))
            schedule = {0: only(n - 1)}
            for i in range(n - 1):
                schedule[(i + 1) * every] = only(i)
            schedule[n * every] = 0
            return schedule

        return cls._deferred(builder, bn, verbose)

    @classmethod
    def lp_ft(
        cls,
        head_epochs: int,
        *,
        head: Any = -1,
        bn: str = "frozen",
        verbose: int = 0,
    ) -> UnfreezeSchedule:
        """LP-FT: a linear probe (head only), then fine-tune everything.

        Example:

        ```python
        callback = kerasft.callbacks.UnfreezeSchedule.lp_ft(head_epochs=3)
        ```

        Args:
            head_epochs: int >= 1. Epochs that train only the head.
            head: The head's target. Defaults to `-1` (the last stage).
            bn: str. BatchNormalization policy. Defaults to `"frozen"`.
            verbose: int. 1 prints one line per change. Defaults to `0`.

        Returns:
            An `UnfreezeSchedule`.
        """
        check_int("head_epochs", head_epochs, minimum=1)
        return cls({0: head, head_epochs: 0}, bn=bn, verbose=verbose)
