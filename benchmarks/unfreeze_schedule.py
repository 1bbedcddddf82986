"""Benchmark: UnfreezeSchedule inside one fit vs. the manual Keras recipe.

Both train the same small CNN (named stages `block1`..`block4`, `head`) on
the same random data with a 6-epoch gradual schedule (head, then one more
stage per epoch):

- callback: one `model.fit(epochs=6)` with
  `kerasft.callbacks.UnfreezeSchedule(PHASES)`;
- manual: the usual Keras recipe, one `fit` per phase with a
  `model.compile` (new optimizer) in between.

Each backend runs in its own process (the backend is fixed at import). The
script prints a table and a JSON document with, per backend, the wall times,
their ratio (target: <= 1.10), the mean optimizer rebuild time, and the
retrace cost (first step after a change minus the median step).

Usage:

    python benchmarks/unfreeze_schedule.py [--backends jax,tensorflow,torch]
        [--samples 512] [--batch-size 32] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

EPOCHS = 6
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _model(keras):
    inputs = keras.Input((32, 32, 3))
    x = inputs
    for i, filters in enumerate((8, 16, 16, 32), start=1):
        x = keras.layers.Conv2D(
            filters, 3, padding="same", activation="relu", name=f"block{i}"
        )(x)
        x = keras.layers.MaxPooling2D(name=f"block{i}_pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    outputs = keras.layers.Dense(10, name="head")(x)
    return keras.Model(inputs, outputs, name="bench_cnn")


def _compile(keras, model):
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )


# Gradual unfreezing from the top: {start epoch: first trainable stage}.
PHASES = {0: "head", 1: "block4", 2: "block3", 3: "block2", 4: "block1"}


class _StepTimer:
    """Wall time of each training step, from batch begin to batch end."""

    def __init__(self, keras):
        class Timer(keras.callbacks.Callback):
            def on_train_begin(inner, logs=None):
                inner.times = []

            def on_train_batch_begin(inner, batch, logs=None):
                inner.t0 = time.perf_counter()

            def on_train_batch_end(inner, batch, logs=None):
                inner.times.append(time.perf_counter() - inner.t0)

        self.callback = Timer()


def _run_callback(keras, kerasft, x, y, batch_size):
    keras.utils.set_random_seed(0)
    model = _model(keras)
    _compile(keras, model)
    schedule = kerasft.callbacks.UnfreezeSchedule(PHASES)
    timer = _StepTimer(keras).callback
    start = time.perf_counter()
    model.fit(
        x,
        y,
        batch_size=batch_size,
        epochs=EPOCHS,
        callbacks=[schedule, timer],
        verbose=0,
    )
    total = time.perf_counter() - start
    return total, schedule.changes, timer.times


def _run_manual(keras, kerasft, x, y, batch_size):
    keras.utils.set_random_seed(0)
    model = _model(keras)
    _compile(keras, model)
    start = time.perf_counter()
    starts = list(PHASES) + [EPOCHS]
    for (first, target), last in zip(PHASES.items(), starts[1:]):
        kerasft.freeze_until(model, target, inclusive=False)
        _compile(keras, model)
        model.fit(
            x,
            y,
            batch_size=batch_size,
            initial_epoch=first,
            epochs=last,
            verbose=0,
        )
    return time.perf_counter() - start


def _worker(args):
    if ROOT not in sys.path:  # run from a checkout without installing
        sys.path.insert(0, ROOT)
    import keras
    import numpy as np

    import kerasft
    import kerasft.callbacks  # noqa: F401

    rng = np.random.default_rng(0)
    x = rng.random((args.samples, 32, 32, 3), dtype="float32")
    y = rng.integers(0, 10, size=(args.samples,))
    # Warm-up: first-use costs (imports, kernels) hit neither variant.
    _run_manual(keras, kerasft, x[: args.batch_size], y[: args.batch_size], 8)
    callback_times, manual_times = [], []
    changes, steps = [], []
    for _ in range(args.repeats):
        total, changes, steps = _run_callback(
            keras, kerasft, x, y, args.batch_size
        )
        callback_times.append(total)
        manual_times.append(_run_manual(keras, kerasft, x, y, args.batch_size))
    per_epoch = -(-args.samples // args.batch_size)
    median = float(np.median(steps))
    firsts = [steps[e * per_epoch] for e in list(PHASES)[1:]]
    result = {
        "backend": keras.backend.backend(),
        "callback_s": min(callback_times),
        "manual_s": min(manual_times),
        "ratio": min(callback_times) / min(manual_times),
        "rebuild_ms_mean": 1000
        * float(np.mean([c["rebuild_seconds"] for c in changes])),
        "median_step_ms": 1000 * median,
        "retrace_ms_mean": 1000 * float(np.mean(firsts) - median),
        "changes": len(changes),
        "samples": args.samples,
        "batch_size": args.batch_size,
        "epochs": EPOCHS,
        "repeats": args.repeats,
    }
    print("RESULT " + json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="jax,tensorflow,torch")
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    results = []
    for backend in args.backends.split(","):
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            f"--samples={args.samples}",
            f"--batch-size={args.batch_size}",
            f"--repeats={args.repeats}",
        ]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        lines = [
            line
            for line in proc.stdout.splitlines()
            if line.startswith("RESULT ")
        ]
        if proc.returncode or not lines:
            print(f"{backend}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        results.append(json.loads(lines[-1][len("RESULT ") :]))
    header = (
        f"{'backend':<11}{'callback s':>11}{'manual s':>10}{'ratio':>7}"
        f"{'rebuild ms':>12}{'step ms':>9}{'retrace ms':>12}"
    )
    print(header)
    for r in results:
        print(
            f"{r['backend']:<11}{r['callback_s']:>11.2f}{r['manual_s']:>10.2f}"
            f"{r['ratio']:>7.2f}{r['rebuild_ms_mean']:>12.1f}"
            f"{r['median_step_ms']:>9.1f}{r['retrace_ms_mean']:>12.1f}"
        )
    print(json.dumps({"benchmark": "unfreeze_schedule", "results": results}))


if __name__ == "__main__":
    main()
