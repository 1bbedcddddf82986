"""Benchmark: per-step time of `discriminative(...)` vs. the plain optimizer.

Two copies of the same small MLP (stages `dense_1`..`dense_4`, `head`) train
on the same random data, one with `keras.optimizers.Adam` and one with
`kerasft.optimizers.discriminative(Adam, model, layerwise_decay(model, 0.8))`
(five rate groups, so five sub-optimizers). After a warm-up epoch each, the
two are timed side by side: each repetition runs one epoch of each, in
alternating order, so machine noise hits both alike. The per-step time of a
repetition is the median of its steps (batch begin to batch end). The
reported ratio (discriminative / plain) is the median over repetitions of
the ratio within each repetition, which is robust to the load drifting
during the run; the ratio of the fastest repetitions is reported next to it.

The backend is fixed at import, so one process measures one backend:

    python benchmarks/discriminative_overhead.py --backend jax
    KERAS_BACKEND=torch python benchmarks/discriminative_overhead.py

Options: `--steps 30` (steps per epoch), `--repeats 9`, `--batch-size 32`,
`--width 128`, `--jit-compile auto|true|false`. Prints a line with the ratio
and a JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend",
        choices=("jax", "tensorflow", "torch"),
        default=None,
        help="Keras backend (default: $KERAS_BACKEND, else Keras's default)",
    )
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument(
        "--jit-compile", choices=("auto", "true", "false"), default="auto"
    )
    args = parser.parse_args(argv)
    for name in ("steps", "repeats", "batch_size", "width"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def _model(keras, width):
    inputs = keras.Input((64,))
    x = inputs
    for i in range(1, 5):
        x = keras.layers.Dense(width, activation="relu", name=f"dense_{i}")(x)
    outputs = keras.layers.Dense(10, name="head")(x)
    return keras.Model(inputs, outputs, name="bench_mlp")


def _timer(keras):
    class StepTimer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.times = []

        def on_train_batch_begin(self, batch, logs=None):
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter() - self.t0)

    return StepTimer()


def main(argv=None) -> dict:
    args = _parse(argv)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, ROOT)
    import keras
    import numpy as np

    import kerasft

    jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    n = args.steps * args.batch_size
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 64)).astype("float32")
    y = rng.integers(0, 10, size=(n,))

    models = {}
    for kind in ("plain", "discriminative"):
        keras.utils.set_random_seed(0)
        model = _model(keras, args.width)
        optimizer = keras.optimizers.Adam(1e-3)
        if kind == "discriminative":
            optimizer = kerasft.optimizers.discriminative(
                optimizer, model, kerasft.optimizers.layerwise_decay(model, 0.8)
            )
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit,
        )
        model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0)
        models[kind] = model

    per_step = {"plain": [], "discriminative": []}
    for repeat in range(args.repeats):
        order = ["plain", "discriminative"]
        if repeat % 2:
            order.reverse()
        for kind in order:
            timer = _timer(keras)
            models[kind].fit(
                x,
                y,
                batch_size=args.batch_size,
                epochs=1,
                verbose=0,
                shuffle=False,
                callbacks=[timer],
            )
            per_step[kind].append(statistics.median(timer.times))

    plain = statistics.median(per_step["plain"])
    disc = statistics.median(per_step["discriminative"])
    ratio = statistics.median(
        d / p for d, p in zip(per_step["discriminative"], per_step["plain"])
    )
    ratio_of_min = min(per_step["discriminative"]) / min(per_step["plain"])
    result = {
        "benchmark": "discriminative_overhead",
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "jit_compile": args.jit_compile,
        "machine": {
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
        },
        "model": {
            "layers": 5,
            "width": args.width,
            "params": int(models["plain"].count_params()),
            "rate_groups": 5,
        },
        "steps": args.steps,
        "repeats": args.repeats,
        "batch_size": args.batch_size,
        "plain_step_ms": round(plain * 1e3, 4),
        "discriminative_step_ms": round(disc * 1e3, 4),
        "ratio": round(ratio, 4),
        "ratio_of_min": round(ratio_of_min, 4),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "plain_step_ms_per_repeat": [
            round(t * 1e3, 4) for t in per_step["plain"]
        ],
        "discriminative_step_ms_per_repeat": [
            round(t * 1e3, 4) for t in per_step["discriminative"]
        ],
    }
    print(
        f"{result['backend']}: discriminative {disc * 1e3:.3f} ms/step, "
        f"plain {plain * 1e3:.3f} ms/step, ratio {ratio:.3f} "
        f"(fastest: {ratio_of_min:.3f})"
    )
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
