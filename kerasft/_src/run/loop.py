"""`finetune()`: the phase loop of a fine-tuning run.

Phase 1 trains the head alone (the `probe` strategy at
`head_learning_rate`): its held-out accuracy is the accuracy *before*
fine-tuning. Phase 2 runs the chosen strategy of `STRATEGIES` (see
`kerasft._src.run.strategies`) at `learning_rate`, after the probe.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import time
from collections.abc import Callable

import keras
import numpy as np

from kerasft._src.callbacks.trainable_schedule import TrainableSchedule
from kerasft._src.logs import get_logger
from kerasft._src.lr_find import lr_find
from kerasft._src.optimizers.discriminative import DiscriminativeOptimizer
from kerasft._src.run import data as run_data
from kerasft._src.run import distribute as run_distribute
from kerasft._src.run import model as run_model
from kerasft._src.run import report
from kerasft._src.run import switches
from kerasft._src.run.config import AUTO
from kerasft._src.run.config import FinetuneConfig
from kerasft._src.run.strategies import auto_choice
from kerasft._src.run.strategies import get_strategy
from kerasft._src.stages import _count
from kerasft._src.stages import stages as model_stages
from kerasft._src.validation import check_callable

_LOGGER = get_logger("finetune")
# The rate a phase is compiled with for `lr_find`, which sweeps its own.
_SWEEP_RATE = 1e-3
# How far below its start the range test's loss must be at the valley for
# the valley to be used (`_chosen_rate`).
_MIN_FALL = 0.01
_DEFAULT_RATES = {
    key: next(
        f.default for f in dataclasses.fields(FinetuneConfig) if f.name == name
    )
    for key, name in (
        ("head", "head_learning_rate"),
        ("finetune", "learning_rate"),
    )
}


@dataclasses.dataclass(frozen=True)
class _Phase:
    key: str  # "head" or "finetune": the history.csv phase column
    title: str
    strategy: str
    epochs: int
    learning_rate: float | str  # a rate, or AUTO (lr_find)
    probed: bool


def finetune(
    data: str | os.PathLike | None = None,
    *,
    out: str | os.PathLike,
    verbose: int | str = "auto",
    log: Callable[[str], None] | None = None,
    args: dict | None = None,
    **options,
) -> dict:
    """Fine-tunes a pretrained backbone on images or text; writes a run folder.

    Phase 1 trains the new head alone (a linear probe): its held-out
    accuracy is the accuracy *before* fine-tuning. Phase 2 fine-tunes with
    a strategy of `STRATEGIES`. The switches (`patience`,
    `mixed_precision`, `label_smoothing`, `class_weight`, a learning rate
    of `"auto"`, `tensorboard`) apply to both phases; see
    `FinetuneConfig`. Text data (a CSV or JSONL file, or a folder of
    `.txt` files; see `FinetuneConfig.modality`) trains a keras-hub text
    classifier whose preprocessor is part of the model. The run folder
    `out` receives `model.keras` (the fine-tuned model, which takes raw
    0-255 RGB pixels, or raw strings), `history.csv`
    (one row per epoch of both phases), `history.png`
    (`kerasft.plotting.plot_history` with the unfreeze events and each
    stage's learning rate), `summary.json`, with `tensorboard=True` the
    TensorBoard logs in `out/tensorboard/` and, with `export=True`, the TF
    Serving SavedModel in `out/serving/<name>/1`. `summary.json` records
    every option (`args`), so the same call repeats the run.

    Example:

    ```python
    summary = kerasft.finetune.finetune(
        "flowers", out="runs/flowers", strategy="discriminative", epochs=4
    )
    summary["accuracy_before"], summary["accuracy_after"]
    ```

    Args:
        data: str, path or None. An image folder with one subfolder per
            class, `None` for the bundled Fashion-MNIST subset, or text:
            a CSV or JSONL file, or a folder of `.txt` files per class.
            Defaults to `None`.
        out: str or path. The run folder; created if missing.
        verbose: int or "auto". Keras's `fit` verbosity. With `0`, each
            epoch is logged as one line instead. Defaults to `"auto"`.
        log: callable or None. Receives the lines of the run's report.
            Defaults to `None`: INFO records on the `kerasft.finetune`
            logger.
        args: dict or None. Recorded as `args` in `summary.json`. Defaults
            to `None` (this call's options).
        **options: the other fields of `FinetuneConfig` (`modality`,
            `backbone`, `weights`, `strategy`, `epochs`, `head_epochs`,
            `batch_size`, `image_size`, `sequence_length`, `text_column`,
            `label_column`, `learning_rate`, `head_learning_rate`,
            `validation_split`, `max_per_class`, `seed`, `patience`,
            `mixed_precision`, `label_smoothing`, `class_weight`,
            `tensorboard`, `mixup`, `cutmix`, `mix_off_epochs`, `ema`,
            `name`, `export`, `overwrite`, `run_eagerly`, `distribute`,
            `num_processes`, `process_id`, `coordinator`), with their
            defaults. With `distribute="jax"`, call it in every process
            of the job, before any JAX computation; only process 0
            writes `out`.

    Returns:
        The summary dict, as written to `summary.json`.

    Raises:
        FinetuneError: (a `ValueError`) for bad input: a missing or empty
            data folder or file, fewer than 2 classes, a class without
            readable images, a text file with a missing column or bytes
            that are not UTF-8, an unknown backbone or strategy, an image
            size under 32, a bad option value, an output folder that
            already holds a run (without `overwrite`), weights that cannot
            be obtained or loaded. The message names the parameter.
        TypeError: for an unknown option or one of the wrong type.
        RuntimeError: if the TF Serving export fails (the other files are
            written by then).
    """
    start = time.perf_counter()
    log = check_callable("log", log, allow_none=True) or _LOGGER.info
    given = FinetuneConfig(data=data, out=out, **options)
    config = given.validated()
    args = given.as_args() if args is None else dict(args)
    # With `distribute="jax"`: joins the job; only process 0 writes.
    job = run_distribute.join(config)
    config = job.local_config(config)
    with job.together():
        if job.writer:
            report.check_out(config.out, config.overwrite)
        text = config.modality == "text"
        run_model.check_dependencies(config.export, config.tensorboard, text)
        weights = run_model.resolve_weights(config.weights, config.modality)
        config = dataclasses.replace(config, weights=weights)
        dataset = run_data.load(config)
    log(dataset.describe())
    with switches.dtype_policy(config.mixed_precision):
        with job.scope():
            model, inputs, phases = _train(config, dataset, job, verbose, log)
        # Outside the distribution: saving creates a variable, which
        # under it would wait for the processes that do not save.
        summary = report.write(
            config, dataset, inputs, model, phases, args, start, job.writer
        )
    if job.distribution is not None:
        log(f"Weights checksum: {run_distribute.fingerprint(model)}")
    if config.export:
        report.export(config, summary, start, log)
    before, after = summary["accuracy_before"], summary["accuracy_after"]
    log(
        f"\nHeld-out accuracy: {before:.4f} before fine-tuning (head only) -> "
        f"{after:.4f} after ({config.strategy}); "
        f"{summary['wall_time_seconds']:.0f} s on {keras.backend.backend()}"
    )
    if job.writer:
        log(f"Run folder: {config.out} ({_listing(config.out)})")
    else:
        log(f"Run folder: written by process 0 ({config.out} on its host)")
    return summary


def _train(config, dataset, job, verbose, log):
    """Builds the model and runs the phases; returns what the report needs."""
    model = run_model.build(config, len(dataset.class_names), log)
    # After the model: `build` seeds Keras, and so the shuffling of the
    # mixed batches.
    inputs = switches.fit_inputs(config, dataset)
    if job.distribution is not None:
        log(job.describe(config))
        inputs = run_distribute.shard_inputs(config, inputs, log)
    for line in switches.describe(config, inputs, dataset.class_names):
        log(line)
    if job.writer:
        report.prepare_out(config.out)
    return model, inputs, _run_phases(model, config, inputs, verbose, log)


def _listing(out):
    return ", ".join(
        f"{name}/" if os.path.isdir(os.path.join(out, name)) else name
        for name in report.run_files_in(out)
    )


def _run_phases(model, config, inputs, verbose, log):
    """Runs the probe, then the strategy; returns one record per phase."""
    phases = (
        _Phase(
            "head",
            "head only (linear probe)",
            "probe",
            config.head_epochs,
            config.head_learning_rate,
            probed=False,
        ),
        _Phase(
            "finetune",
            f"{config.strategy} ({get_strategy(config.strategy).description})",
            config.strategy,
            config.epochs,
            config.learning_rate,
            probed=True,
        ),
    )
    head = model_stages(model)[-1]
    initial_head = [layer.get_weights() for layer in head.layers]
    results, offset = [], 0
    for number, phase in enumerate(phases, 1):
        if phase.probed and not get_strategy(phase.strategy).from_probe:
            for layer, values in zip(head.layers, initial_head):
                layer.set_weights(values)
        header = f"Phase {number}/{len(phases)}: {phase.title}"
        result = _run_phase(
            model, phase, config, inputs, (verbose, log, header, offset)
        )
        results.append(result)
        offset += result["record"]["epochs_run"]
        when = (
            "before fine-tuning (head only)"
            if number == 1
            else f"after fine-tuning ({phase.strategy})"
        )
        accuracy = result["record"]["heldout_accuracy"]
        log(f"Held-out accuracy {when}: {accuracy:.4f}")
    return results


def _run_phase(model, phase, config, inputs, context):
    """Builds the phase's strategy, trains, and returns its record."""
    verbose, log, header, offset = context
    found = None
    if phase.learning_rate == AUTO:
        log(f"\n== {header}: kerasft.lr_find chooses the learning rate")
        found = _find_rate(model, phase, config, inputs)
    rate, chosen = phase.learning_rate, None
    if found is not None:
        rate, chosen = _chosen_rate(found, phase, log)
    optimizer, callbacks = _compile(model, phase, rate, config, inputs)
    chosen_recipe = _auto_record(model, phase, inputs, log)
    trainable = _count(model.trainable_variables)
    scheduled = any(isinstance(c, TrainableSchedule) for c in callbacks)
    log(
        ("" if found else "\n")
        + f"== {header}; {phase.epochs} epoch(s), learning rate "
        + (f"{rate:.3g} ({chosen}), " if found else f"{rate:g}, ")
        + ("stages unfreeze on schedule" if scheduled else f"{trainable:,} ")
        + ("" if scheduled else "trainable parameters")
    )
    added = switches.phase_callbacks(config, inputs, phase.key, phase.epochs)
    rates = _StageRates()
    extra = [_EpochLines(log, phase.epochs)] if verbose == 0 else []
    tic = time.perf_counter()
    history = model.fit(
        *inputs.train,
        **inputs.fit_options,
        epochs=phase.epochs,
        validation_data=inputs.heldout,
        class_weight=inputs.class_weight,
        callbacks=[*callbacks, *added, rates, *extra],
        verbose=verbose,
    )
    seconds = round(time.perf_counter() - tic, 2)
    changes = _changes(callbacks, offset)
    if changes and changes[0]["epoch"] == offset:
        trainable = changes[0]["trainable_params"]
    epochs_run = len(history.history["loss"])
    record = {
        "strategy": phase.strategy,
        "epochs": phase.epochs,
        "epochs_run": epochs_run,
        "learning_rate": rate,
        "trainable_params": trainable,
        "trainable_params_end": _count(model.trainable_variables),
        "unfreeze_events": changes,
        "heldout_accuracy": float(history.history["val_accuracy"][-1]),
        "seconds": seconds,
    }
    if chosen_recipe is not None:
        record["auto"] = chosen_recipe
    if found is not None:
        record["lr_find"] = {
            **found.suggestions,
            "chosen": chosen,
            "steps": len(found.learning_rates),
            "diverged_at": found.diverged_at,
        }
    if isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer):
        # mixed_float16: the dynamic loss scale the phase ended with.
        scale = keras.ops.convert_to_numpy(model.optimizer.dynamic_scale)
        record["loss_scale"] = float(scale)
    stopper = switches.early_stopping(added)
    if stopper is not None:
        _record_early_stopping(record, stopper, history, offset, log)
    if isinstance(optimizer, DiscriminativeOptimizer):
        record["stage_learning_rates"] = {
            k: rate * v for k, v in optimizer.stage_factors.items()
        }
    return {
        "key": phase.key,
        "history": {**history.history, **rates.records},
        "record": record,
        "events": _events(model, changes, offset),
    }


def _steps_per_epoch(inputs):
    """Optimizer steps per epoch: of the arrays, or of the batched dataset."""
    if inputs.batch_size is not None:
        return max(1, math.ceil(len(inputs.train[-1]) / inputs.batch_size))
    return max(1, len(inputs.train[0]))


def _auto_record(model, phase, inputs, log):
    """What `strategy="auto"` chose and why (logged), or None."""
    if phase.strategy != "auto":
        return None
    choice = auto_choice(
        model,
        epochs=phase.epochs,
        steps_per_epoch=_steps_per_epoch(inputs),
        probed=phase.probed,
    )
    log(f"auto ({choice.family}): {choice.chose}, because {choice.because}")
    return choice.record()


def _compile(model, phase, rate, config, inputs):
    """Sets what trains (the strategy) and compiles; returns its parts."""
    strategy = get_strategy(phase.strategy)
    budget = {}
    if "steps_per_epoch" in inspect.signature(strategy.build).parameters:
        # A budget-aware strategy (`auto`) reads the steps of the phase.
        budget["steps_per_epoch"] = _steps_per_epoch(inputs)
    optimizer, callbacks = strategy.build(
        model,
        learning_rate=rate,
        epochs=phase.epochs,
        probed=phase.probed,
        **budget,
    )
    # A mixed_float16 model gets a LossScaleOptimizer around `optimizer`
    # here (`auto_scale_loss`).
    model.compile(
        optimizer=optimizer,
        loss=inputs.loss,
        metrics=["accuracy"],
        run_eagerly=config.run_eagerly,
    )
    return optimizer, callbacks


def _chosen_rate(found, phase, log):
    """lr_find's valley, or the option's default if no rate lowered the loss.

    The valley reads a falling stretch of the loss curve. On a model the
    probe has fitted already, every rate that moves it makes the loss
    worse: the lowest loss comes at the smallest rates of the sweep, and a
    "falling stretch" further on is batch noise on the way to divergence;
    training at it can wreck the pretrained stages that join later. The
    valley is used only if the lowest loss lies past the first quarter of
    the swept rates (on a log scale) and the loss at the valley is at
    least `_MIN_FALL` below the loss at the start of the curve read.
    """
    rates = np.asarray(found.learning_rates, dtype="float64")
    losses = np.asarray(found.losses, dtype="float64")
    read = slice(len(losses) // 10, None)
    rates, losses = rates[read], losses[read]
    finite = np.isfinite(losses)
    rates, losses = rates[finite], losses[finite]
    if len(rates) >= 2 and rates[-1] > rates[0]:
        span = np.log(rates[-1] / rates[0])
        lowest = np.log(rates[np.argmin(losses)] / rates[0]) / span
        at_valley = losses[np.argmin(np.abs(np.log(rates / found.valley)))]
        if lowest > 0.25 and at_valley < losses[0] * (1 - _MIN_FALL):
            return found.valley, "lr_find's valley"
    rate = _DEFAULT_RATES[phase.key]
    log(
        "lr_find: no rate lowered the loss (it is lowest at the smallest "
        f"rates swept); keeping the default learning rate {rate:g} for "
        "this phase"
    )
    return rate, "the default: lr_find found no falling loss"


def _find_rate(model, phase, config, inputs):
    """`kerasft.lr_find` on the phase's starting state; the model is kept.

    The range test sweeps the base rate from its own start, so the rate
    the phase is compiled with for it does not matter; the phase is
    compiled again afterwards, with a fresh optimizer at the found rate.
    """
    _compile(model, phase, _SWEEP_RATE, config, inputs)
    return lr_find(
        model, *inputs.train, batch_size=config.batch_size, seed=config.seed
    )


def _record_early_stopping(record, stopper, history, offset, log):
    """Records where the held-out loss was best: its weights are kept."""
    best = stopper.best_epoch
    # The weights of the best epoch are back in the model, and so is the
    # held-out accuracy measured with them.
    record["heldout_accuracy"] = float(history.history["val_accuracy"][best])
    stopped = stopper.stopped_epoch
    record["early_stopping"] = {
        "monitor": switches.MONITOR,
        "patience": stopper.patience,
        "best_epoch": offset + best,
        "stopped_epoch": offset + stopped if stopped else None,
    }
    n = record["epochs_run"]
    if stopped:
        log(
            f"Early stopping after epoch {n}/{record['epochs']}: no lower "
            f"held-out loss for {stopper.patience} epoch(s)"
        )
    if best != n - 1:
        log(f"Kept the weights of epoch {best + 1} (lowest held-out loss)")


def _changes(callbacks, offset):
    """The trainable changes of a phase's schedules, in run epochs."""
    return [
        {
            "epoch": offset + change["epoch"],
            "stages": change["stages"],
            "trainable_params": change["trainable_params"],
            "target": change["target"],
        }
        for callback in callbacks
        if isinstance(callback, TrainableSchedule)
        for change in callback.changes
    ]


def _events(model, changes, offset):
    """Labelled epochs for the plot: what starts training, and when."""
    events = []
    if offset and not (changes and changes[0]["epoch"] == offset):
        stages = model_stages(model)
        trained = [s for s in stages if s.trainable_variables]
        if len(trained) == len(stages):
            label = "all stages train"
        elif len(trained) == 1:
            label = f"{trained[0].name} trains on"
        else:
            label = f"+{trained[0].name}"
        events.append({"epoch": offset, "label": label})
    count = len(model_stages(model))
    for change in changes:
        if change["target"].startswith("only"):
            label = f"{change['stages'][0]} only"
        elif len(change["stages"]) == count:
            label = "all stages train"
        else:
            label = f"+{change['stages'][0]}"
        events.append({"epoch": change["epoch"], "label": label})
    return events


class _EpochLines(keras.callbacks.Callback):
    """Logs one line per epoch: the metrics and the trainable parameters."""

    def __init__(self, log, epochs):
        super().__init__()
        self.log = log
        self.epochs = epochs

    def on_epoch_begin(self, epoch, logs=None):
        self._tic = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._tic
        logs = logs or {}
        metrics = " - ".join(
            f"{k}: {float(logs[k]):.4f}"
            for k in ("loss", "accuracy", "val_loss", "val_accuracy")
            if k in logs
        )
        trainable = _count(self.model.trainable_variables)
        self.log(
            f"Epoch {epoch + 1}/{self.epochs} - {seconds:.0f}s - {metrics} - "
            f"trainable params: {trainable:,}"
        )


class _StageRates(keras.callbacks.Callback):
    """Records `lr/<stage>` (NaN for frozen stages) and `trainable_params`.

    The values go into `self.records`, not into `logs`, to keep Keras's
    progress bar short; the phase adds them to the history.
    """

    def on_train_begin(self, logs=None):
        self.records = {}

    def on_epoch_end(self, epoch, logs=None):
        optimizer = self.model.optimizer
        # mixed_float16: the LossScaleOptimizer that `compile` wrapped.
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)
        if isinstance(optimizer, DiscriminativeOptimizer):
            rates = optimizer.stage_learning_rates()
        else:
            rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
            rates = None
        row = {}
        for stage in model_stages(self.model):
            value = rates.get(stage.name, math.nan) if rates else rate
            row[f"lr/{stage.name}"] = (
                value if stage.trainable_variables else math.nan
            )
        row["trainable_params"] = _count(self.model.trainable_variables)
        for key, value in row.items():
            self.records.setdefault(key, []).append(value)
