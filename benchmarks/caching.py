"""Benchmark: head training on cached features vs. plain fit, frozen backbone.

Both variants train the same classifier (a kerasft backbone with random
weights, frozen; a linear head) on the same random images, side by side in
one process per backend:

- plain: `model.fit(epochs=E)`: every epoch runs the frozen backbone
  forward on every image;
- cached: `kerasft.cached_fit(model, epochs=E)`: the backbone runs once per
  image (the "cache" time, before the first epoch), then each epoch trains
  the head on the cached features.

Figures (ratios): `epoch_speedup` = median plain epoch / median cached epoch
from the second epoch on (target >= 5x); `total_speedup` = plain fit time /
cached fit time including the caching pass.

Usage:

    python benchmarks/caching.py [--backends jax,tensorflow,torch]
        [--models mobilenet,resnet50] [--size 112] [--samples 1024]
        [--epochs 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402


def _build(keras, kerasft, name, size):
    keras.utils.set_random_seed(0)
    model = kerasft.build_classifier(
        _common.backbone(keras, kerasft, name, size), num_classes=10
    )
    kerasft.freeze_until(model, "head", inclusive=False)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
    )
    return model


def _worker(args):
    _common.setup_path()
    import keras
    import numpy as np

    import kerasft
    from kerasft import cached_fit

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (args.samples, args.size, args.size, 3))
    x = x.astype("float32")
    y = rng.integers(0, 10, size=(args.samples,))
    results = []
    for name in args.models.split(","):
        fit_kwargs = dict(
            batch_size=args.batch_size, epochs=args.epochs, verbose=0
        )
        # Warm-up on a few images: kernels, imports, first traces.
        warm = _build(keras, kerasft, name, args.size)
        warm.fit(x[:64], y[:64], batch_size=args.batch_size, verbose=0)
        cached_fit(warm, x[:64], y[:64], batch_size=args.batch_size, verbose=0)
        del warm

        model = _build(keras, kerasft, name, args.size)
        timer = _common.epoch_timer(keras)
        start = time.perf_counter()
        model.fit(x, y, callbacks=[timer], **fit_kwargs)
        plain_total = time.perf_counter() - start
        plain_epochs = timer.times

        model = _build(keras, kerasft, name, args.size)
        timer = _common.epoch_timer(keras)
        start = time.perf_counter()
        cached_fit(model, x, y, callbacks=[timer], **fit_kwargs)
        cached_total = time.perf_counter() - start
        cache_s = timer.first_begin - start
        cached_epochs = timer.times

        later_plain = float(np.median(plain_epochs[1:] or plain_epochs))
        later_cached = float(np.median(cached_epochs[1:] or cached_epochs))
        results.append(
            {
                "backend": keras.backend.backend(),
                "model": name,
                "size": args.size,
                "samples": args.samples,
                "epochs": args.epochs,
                "plain_epoch_s": later_plain,
                "cached_epoch_s": later_cached,
                "cache_s": cache_s,
                "epoch_speedup": later_plain / later_cached,
                "first_epoch_ratio": plain_epochs[0]
                / (cache_s + cached_epochs[0]),
                "total_speedup": plain_total / cached_total,
            }
        )
    _common.emit({"results": results})


COLUMNS = (
    "backend",
    "model",
    "size",
    "samples",
    "plain_epoch_s",
    "cached_epoch_s",
    "cache_s",
    "epoch_speedup",
    "first_epoch_ratio",
    "total_speedup",
)


def run(backends, models, size, samples, epochs, batch_size=32):
    """Runs the benchmark; returns a list of result rows."""
    return _common.run_workers(
        os.path.abspath(__file__),
        backends,
        [
            f"--models={','.join(models)}",
            f"--size={size}",
            f"--samples={samples}",
            f"--epochs={epochs}",
            f"--batch-size={batch_size}",
        ],
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(_common.BACKENDS))
    parser.add_argument("--models", default="mobilenet,resnet50")
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    rows = run(
        args.backends.split(","),
        args.models.split(","),
        args.size,
        args.samples,
        args.epochs,
        args.batch_size,
    )
    print(_common.table(rows, COLUMNS))
    document = {"benchmark": "caching", "results": rows}
    print(json.dumps(document))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(document, f, indent=2)


if __name__ == "__main__":
    main()
