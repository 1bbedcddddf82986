"""Benchmark: UnfreezeSchedule inside one fit vs. the manual Keras recipe.

The recipe a user runs: a MobileNet classifier (`weights=None`, 96 px,
10 classes), 384 random images, batch 32, Adam, 4 epochs, the head alone
for epochs 0-1, then `block5` and the head for epochs 2-3:

- schedule: `model.compile(...)` with everything trainable, then one
  `model.fit(epochs=4, callbacks=[UnfreezeSchedule({0: "head",
  2: "block5"})])`;
- manual: `freeze_until(model, "head", inclusive=False)`, `compile`,
  `fit(epochs=2)`, `freeze_until(model, "block4")` (so `block5` and the
  head train, as in the schedule), `compile`, `fit(initial_epoch=2,
  epochs=4)`.

Each run of each variant is its own fresh process (a compile cache warmed
by one variant would flatter the other), timed from the first `compile` to
the end of the last `fit`; the model and data are built before the clock
starts. The two variants alternate (schedule first in the first round, manual
first in the next, and so on) so that a change in the machine's load hits
both. Per
backend, the script reports the best time of each variant, their ratio
(schedule / manual; target <= 1.05), the median of the per-round ratios,
the ratio of the best CPU times (process time of all threads, less
sensitive than wall time to other processes on a shared machine), the
mean epoch times of both variants, and the load average seen.

Usage:

    python benchmarks/unfreeze_schedule.py [--backends jax,tensorflow,torch]
        [--samples 384] [--size 96] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _common  # noqa: E402

EPOCHS = 4
SCHEDULE = {0: "head", 2: "block5"}
VARIANTS = ("schedule", "manual")
COLUMNS = (
    "backend",
    "schedule_s",
    "manual_s",
    "ratio",
    "ratio_median",
    "cpu_ratio",
    "schedule_epochs_s",
    "manual_epochs_s",
    "load",
)


def _compile(keras, model):
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
    )


def _schedule(keras, kerasft, model, fit):
    _compile(keras, model)
    callback = kerasft.callbacks.UnfreezeSchedule(SCHEDULE)
    fit(epochs=EPOCHS, callbacks=[callback])
    return callback.changes


def _manual(keras, kerasft, model, fit):
    kerasft.freeze_until(model, "head", inclusive=False)
    _compile(keras, model)
    fit(epochs=2)
    kerasft.freeze_until(model, "block4")
    _compile(keras, model)
    fit(initial_epoch=2, epochs=EPOCHS)
    return []


def _worker(args):
    _common.setup_path()
    import keras
    import numpy as np

    import kerasft
    import kerasft.callbacks  # noqa: F401

    rng = np.random.default_rng(0)
    x = rng.random((args.samples, args.size, args.size, 3), "float32") * 255
    y = rng.integers(0, 10, size=(args.samples,))
    keras.utils.set_random_seed(0)
    backbone = _common.backbone(keras, kerasft, "mobilenet", args.size)
    model = kerasft.build_classifier(backbone, num_classes=10)
    timer = _common.epoch_timer(keras)

    def fit(callbacks=(), **kwargs):
        model.fit(
            x,
            y,
            batch_size=args.batch_size,
            callbacks=[*callbacks, timer],
            verbose=0,
            **kwargs,
        )

    run = _schedule if args.variant == "schedule" else _manual
    start, cpu_start = time.perf_counter(), time.process_time()
    changes = run(keras, kerasft, model, fit)
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    _common.emit(
        {
            "backend": keras.backend.backend(),
            "variant": args.variant,
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "epochs_s": timer.times,
            "rebuild_ms": [1000 * c["rebuild_seconds"] for c in changes],
            "load": os.getloadavg()[0],
        }
    )


def _rounds(backend, args):
    """Runs both variants `repeats` times, alternating, in fresh processes."""
    worker_args = [
        f"--samples={args.samples}",
        f"--size={args.size}",
        f"--batch-size={args.batch_size}",
    ]
    runs = {v: [] for v in VARIANTS}
    for i in range(args.repeats):
        order = VARIANTS if i % 2 == 0 else VARIANTS[::-1]
        for variant in order:
            out = _common.run_worker(
                __file__, backend, [f"--variant={variant}", *worker_args]
            )
            if "error" in out:
                return out
            runs[variant].append(out)
    return runs


def run(backends, samples=384, size=96, batch_size=32, repeats=3):
    """One result row per backend (see the module docstring)."""
    args = argparse.Namespace(
        samples=samples, size=size, batch_size=batch_size, repeats=repeats
    )
    rows = []
    for backend in backends:
        runs = _rounds(backend, args)
        if "error" in runs:
            rows.append(runs)
            continue
        times = {v: [r["seconds"] for r in runs[v]] for v in VARIANTS}
        cpu = {v: [r["cpu_seconds"] for r in runs[v]] for v in VARIANTS}
        epochs = {
            v: [statistics.mean(e) for e in zip(*(r["epochs_s"] for r in rs))]
            for v, rs in runs.items()
        }
        rows.append(
            {
                "backend": backend,
                "schedule_s": min(times["schedule"]),
                "manual_s": min(times["manual"]),
                "ratio": min(times["schedule"]) / min(times["manual"]),
                "ratio_median": statistics.median(
                    s / m for s, m in zip(times["schedule"], times["manual"])
                ),
                "cpu_ratio": min(cpu["schedule"]) / min(cpu["manual"]),
                "schedule_epochs_s": " ".join(
                    f"{t:.2f}" for t in epochs["schedule"]
                ),
                "manual_epochs_s": " ".join(
                    f"{t:.2f}" for t in epochs["manual"]
                ),
                "load": " ".join(
                    f"{r['load']:.1f}" for v in VARIANTS for r in runs[v]
                ),
                "schedule_runs_s": times["schedule"],
                "manual_runs_s": times["manual"],
                "schedule_cpu_s": cpu["schedule"],
                "manual_cpu_s": cpu["manual"],
                "rebuild_ms": runs["schedule"][0]["rebuild_ms"],
                "samples": samples,
                "size": size,
                "batch_size": batch_size,
                "repeats": repeats,
            }
        )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(_common.BACKENDS))
    parser.add_argument("--samples", type=int, default=384)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    rows = run(
        args.backends.split(","),
        samples=args.samples,
        size=args.size,
        batch_size=args.batch_size,
        repeats=args.repeats,
    )
    good = [r for r in rows if "error" not in r]
    if good:
        print(_common.table(good, COLUMNS))
    for r in rows:
        if "error" in r:
            print(f"{r['backend']}: failed\n{r['error']}", file=sys.stderr)
    print(json.dumps({"benchmark": "unfreeze_schedule", "results": rows}))


if __name__ == "__main__":
    main()
