"""Benchmark: training step time vs. freeze depth (plain `fit`).

For each stage `s` of a MobileNet classifier (random weights),
`kerasft.freeze_until(model, s)` freezes `s` and everything below it, the
model is compiled and trained for a few steps, and the median step time is
compared with the step time of the fully trainable model, side by side in
one process per backend. Freezing more skips more of the backward pass
(weight gradients, and input gradients below the first trainable layer),
so the ratio `step / step(all trainable)` falls with depth. No caching here:
every step still runs the whole forward pass.

Usage:

    python benchmarks/freeze_depth.py [--backends jax,tensorflow,torch]
        [--size 96] [--steps 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402


def _params(variables):
    import numpy as np

    return int(sum(int(np.prod(v.shape)) for v in variables))


def _worker(args):
    _common.setup_path()
    import keras
    import numpy as np

    import kerasft

    keras.utils.set_random_seed(0)
    model = kerasft.build_classifier(
        _common.backbone(keras, kerasft, args.model, args.size), num_classes=10
    )
    batch = args.batch_size
    samples = batch * args.steps
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (samples, args.size, args.size, 3))
    x = x.astype("float32")
    y = rng.integers(0, 10, size=(samples,))
    names = [s.name for s in kerasft.stages(model)]
    # None: everything trains; then freeze up to and including each stage
    # (the last, the head, would leave nothing to train).
    depths = [None, *names[:-1]]
    if args.every > 1:  # a subset of the depths, always with the deepest
        depths = depths[:: args.every] + (
            [depths[-1]] if (len(depths) - 1) % args.every else []
        )
    rows = []
    base = None
    for depth in depths:
        if depth is None:
            kerasft.unfreeze(model)
        else:
            kerasft.freeze_until(model, depth)
        model.compile(
            optimizer=keras.optimizers.Adam(1e-4),
            loss="sparse_categorical_crossentropy",
        )
        timer = _common.step_timer(keras)
        # Epoch 1 traces and warms up; epoch 2 is measured.
        model.fit(
            x, y, batch_size=batch, epochs=2, verbose=0, callbacks=[timer]
        )
        step = float(np.median(timer.times[args.steps :]))
        if base is None:
            base = step
        rows.append(
            {
                "backend": keras.backend.backend(),
                "model": args.model,
                "frozen_until": depth or "(none)",
                "trainable_params": _params(model.trainable_variables),
                "step_ms": 1000 * step,
                "ratio": step / base,
            }
        )
    _common.emit({"results": rows})


COLUMNS = (
    "backend",
    "model",
    "frozen_until",
    "trainable_params",
    "step_ms",
    "ratio",
)


def run(backends, model="mobilenet", size=96, steps=8, batch_size=32, every=1):
    return _common.run_workers(
        os.path.abspath(__file__),
        backends,
        [
            f"--model={model}",
            f"--size={size}",
            f"--steps={steps}",
            f"--batch-size={batch_size}",
            f"--every={every}",
        ],
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(_common.BACKENDS))
    parser.add_argument("--model", default="mobilenet")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--every", type=int, default=1, help="measure every N-th depth"
    )
    parser.add_argument("--json", default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    rows = run(
        args.backends.split(","),
        args.model,
        args.size,
        args.steps,
        args.batch_size,
        args.every,
    )
    print(_common.table(rows, COLUMNS))
    document = {"benchmark": "freeze_depth", "results": rows}
    print(json.dumps(document))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(document, f, indent=2)


if __name__ == "__main__":
    main()
