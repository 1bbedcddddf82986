"""Benchmark: the three backends on the same fine-tuning recipe.

Every backend runs the same recipe in its own process, from the same
weights (set deterministically, identical on every backend) and the same
data:

1. linear probe: head only, 2 epochs of `kerasft.cached_fit`;
2. fine-tune: `freeze_until(model, "block4")` (block5 and head train),
   2 epochs of `model.fit` with Adam;
3. `model.predict` on the training images.

Figures: each phase's wall time as a ratio to the fastest backend for that
phase, and the final training loss relative to the first backend's (the
recipe is deterministic, so the backends should agree to float rounding).

Usage:

    python benchmarks/backends.py [--backends jax,tensorflow,torch]
        [--size 96] [--samples 256] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

PHASES = ("probe_s", "finetune_s", "predict_s")


def _worker(args):
    _common.setup_path()
    import keras
    import numpy as np

    import kerasft
    from kerasft import cached_fit

    keras.utils.set_random_seed(0)
    model = kerasft.build_classifier(
        _common.backbone(keras, kerasft, "mobilenet", args.size), num_classes=10
    )
    _common.deterministic_weights(model)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (args.samples, args.size, args.size, 3))
    x = x.astype("float32")
    y = rng.integers(0, 10, size=(args.samples,))

    def compile_(lr):
        model.compile(
            optimizer=keras.optimizers.Adam(lr),
            loss="sparse_categorical_crossentropy",
        )

    kerasft.freeze_until(model, "head", inclusive=False)
    compile_(1e-3)
    start = time.perf_counter()
    cached_fit(model, x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
    probe = time.perf_counter() - start

    kerasft.freeze_until(model, "block4")
    compile_(1e-4)
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
    finetune = time.perf_counter() - start

    start = time.perf_counter()
    model.predict(x, batch_size=64, verbose=0)
    predict = time.perf_counter() - start
    _common.emit(
        {
            "backend": keras.backend.backend(),
            "probe_s": probe,
            "finetune_s": finetune,
            "predict_s": predict,
            "final_loss": float(history.history["loss"][-1]),
        }
    )


COLUMNS = (
    "backend",
    "probe_s",
    "probe_ratio",
    "finetune_s",
    "finetune_ratio",
    "predict_s",
    "predict_ratio",
    "final_loss",
    "loss_rel_diff",
)


def run(backends, size=96, samples=256):
    rows = []
    for backend in backends:
        rows.append(
            _common.run_worker(
                os.path.abspath(__file__),
                backend,
                [f"--size={size}", f"--samples={samples}"],
            )
        )
    ok = [r for r in rows if "error" not in r]
    for phase in PHASES:
        if not ok:
            break
        fastest = min(r[phase] for r in ok)
        for r in ok:
            r[phase.replace("_s", "_ratio")] = r[phase] / fastest
    for r in ok:
        r["loss_rel_diff"] = abs(r["final_loss"] - ok[0]["final_loss"]) / abs(
            ok[0]["final_loss"]
        )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(_common.BACKENDS))
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--json", default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    rows = run(args.backends.split(","), args.size, args.samples)
    print(_common.table(rows, COLUMNS))
    document = {"benchmark": "backends", "results": rows}
    print(json.dumps(document))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(document, f, indent=2)


if __name__ == "__main__":
    main()
