"""The run folder of a fine-tuning run: history, plot, summary, export."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import time

import keras

from kerasft._src.run.config import FinetuneError

RUN_FILES = ("model.keras", "history.csv", "history.png", "summary.json")
SERVING_DIR = "serving"
# With `tensorboard=True`: one folder of logs per phase.
TENSORBOARD_DIR = "tensorboard"


def run_files_in(out: str) -> list:
    """The entries of a run that `out` holds already."""
    if not os.path.isdir(out):
        return []
    names = [*RUN_FILES, TENSORBOARD_DIR, SERVING_DIR]
    return [n for n in names if os.path.exists(os.path.join(out, n))]


def check_out(out: str, overwrite: bool) -> None:
    if os.path.exists(out) and not os.path.isdir(out):
        raise FinetuneError(f"output {out!r} exists and is not a folder")
    existing = run_files_in(out)
    if existing and not overwrite:
        raise FinetuneError(
            f"output folder {out!r} already holds a run ({', '.join(existing)}"
            "); pass `overwrite=True` to replace it or choose another `out`"
        )


def prepare_out(out: str) -> None:
    """Creates `out` and removes the files of a previous run (only those)."""
    os.makedirs(out, exist_ok=True)
    for entry in run_files_in(out):
        path = os.path.join(out, entry)
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def merge(histories: dict) -> tuple:
    """Concatenates per-phase histories; keys missing in a phase get NaN."""
    keys = list(dict.fromkeys(k for h in histories.values() for k in h))
    merged = {k: [] for k in keys}
    phases = []
    for phase, history in histories.items():
        n = len(next(iter(history.values())))
        phases.extend([phase] * n)
        for k in keys:
            merged[k].extend(float(v) for v in history.get(k, [math.nan] * n))
    return merged, phases


def write_history_csv(path: str, history: dict, phases: list) -> None:
    first = ["loss", "accuracy", "val_loss", "val_accuracy"]
    keys = [k for k in first if k in history]
    keys += [k for k in history if k not in keys]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "phase", *keys])
        for i, phase in enumerate(phases):
            row = [history[k][i] for k in keys]
            writer.writerow([i + 1, phase, *[_cell(v) for v in row]])


def _cell(value):
    """A CSV cell: empty for NaN, integers as such, floats to float32 digits."""
    if math.isnan(value):
        return ""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.7g}"


def write_json(path: str, summary: dict, start: float) -> None:
    """Writes `summary` atomically, with the wall time since `start`."""
    summary["wall_time_seconds"] = round(time.perf_counter() - start, 2)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(summary, f, indent=2, allow_nan=False)
        f.write("\n")
    os.replace(tmp, path)


def write(
    config, dataset, inputs, model, phases, args, start, files=True
) -> dict:
    """Writes model, history, plot and summary into `config.out`.

    With `files=False` (a process other than 0 of a distributed run),
    writes nothing and returns the summary.
    """
    from kerasft._src import plotting

    if not files:
        summary = _summary(config, dataset, inputs, model, phases, args)
        summary["wall_time_seconds"] = round(time.perf_counter() - start, 2)
        return summary
    paths = {f: os.path.join(config.out, f) for f in RUN_FILES}
    model.save(paths["model.keras"])
    history, phase_of_epoch = merge({p["key"]: p["history"] for p in phases})
    write_history_csv(paths["history.csv"], history, phase_of_epoch)
    before, after = (p["record"]["heldout_accuracy"] for p in phases)
    plotting.plot_history(
        history,
        paths["history.png"],
        events=[(e["epoch"], e["label"]) for p in phases for e in p["events"]],
        title=f"{_backbone_name(config)}, {config.strategy}: held-out accuracy "
        f"{before:.3f} -> {after:.3f}",
    )
    summary = _summary(config, dataset, inputs, model, phases, args)
    write_json(paths["summary.json"], summary, start)
    return summary


def _summary(config, dataset, inputs, model, phases, args):
    import kerasft
    from kerasft._src.stages import stages as model_stages

    return {
        "kerasft_version": kerasft.__version__,
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
        "args": args,
        "data": _data_record(config, dataset, model),
        "backbone": config.backbone,
        "weights": config.weights,
        "strategy": config.strategy,
        "total_params": int(model.count_params()),
        "stages": [s.name for s in model_stages(model)],
        "dtype_policy": model.dtype_policy.name,
        "class_weights": None
        if inputs.class_weight is None
        else {
            dataset.class_names[c]: w for c, w in inputs.class_weight.items()
        },
        "accuracy_before": phases[0]["record"]["heldout_accuracy"],
        "accuracy_after": phases[-1]["record"]["heldout_accuracy"],
        "phases": {p["key"]: p["record"] for p in phases},
        # What `strategy="auto"` chose and why; None for other strategies.
        "auto": phases[-1]["record"].get("auto"),
        "export": None,
        "wall_time_seconds": None,
    }


def _backbone_name(config):
    """The backbone's name, or a preset folder's name."""
    return os.path.basename(os.path.normpath(config.backbone))


def _data_record(config, dataset, model):
    record = dataset.record()
    if config.modality == "text":
        # The preprocessor (tokenizer and packer) travels with the model.
        record["sequence_length"] = int(model.preprocessor.sequence_length)
    return record


def export(config, summary: dict, start: float, log) -> None:
    """Writes the TF Serving export and records it in `summary.json`."""
    from kerasft._src.export.tf_serving import tf_serving

    log("Exporting for TF Serving (checked in a separate process)...")
    export_dir = tf_serving(
        os.path.join(config.out, "model.keras"),
        os.path.join(config.out, SERVING_DIR),
        config.name,
        version=1,
        overwrite=True,
    )
    summary["export"] = {
        "path": os.path.relpath(export_dir, config.out),
        "name": config.name,
        "version": 1,
    }
    write_json(os.path.join(config.out, "summary.json"), summary, start)
