"""What each toolkit switch does to held-out accuracy on the bundled demo.

The demo is `kerasft finetune` with its defaults: ImageNet MobileNet
(provisioned offline by `python -m kerasft.assets`), the bundled
Fashion-MNIST subset (3,000 training / 1,000 held-out images, 64 px), a
2-epoch linear probe, then 3 epochs of gradual unfreezing. Each variant is
that run with one switch added (`kerasft.finetune.finetune(**switch)`),
for each seed. Two features act after training, on the baseline's model:

- test-time augmentation (`kerasft.tta_predict`, flip, 2 views);
- WiSE-FT (`kerasft.wise_ft_sweep` between the fine-tuned model and the
  linear probe of the same seed, the "zero-shot" model of a fine-tune
  from a probe): alpha is chosen on the first half of the held-out images
  and the accuracy reported on the second half, next to the baseline's on
  that same half.

Usage:

    python benchmarks/toolkit_switches.py --seeds 0,1 --backend tensorflow

It prints a Markdown table: the mean held-out accuracy over the seeds,
its spread (max - min), and the difference to the baseline. `--features`
measures, the same way, what has no switch: SWA over the last 2 epochs of
phase 2, and RandAugment, AugMix and random erasing
(`kerasft.augment.augmentation`) mapped over the training batches.
`--quick` checks the machinery on a few images with random weights.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import statistics
import sys
import tempfile

from _common import ROOT
from _common import run_worker
from _common import setup_path

BASELINE = "baseline (demo defaults)"
VARIANTS = {
    BASELINE: {},
    "--lr auto --head-lr auto": {
        "learning_rate": "auto",
        "head_learning_rate": "auto",
    },
    "--label-smoothing 0.1": {"label_smoothing": 0.1},
    "--mixup": {"mixup": True},
    "--cutmix": {"cutmix": True},
    "--mixup --cutmix --mix-off-epochs 1": {
        "mixup": True,
        "cutmix": True,
        "mix_off_epochs": 1,
    },
    "--ema 0.99": {"ema": 0.99},
    "--patience 1": {"patience": 1},
}
POST_HOC = ("tta flip (baseline model)", "WiSE-FT vs probe (2nd half)")
# Features without a switch of their own: the same run, with the demo's
# pipeline changed where a user would change it (`--features`).
FEATURES = {
    "SWA, last 2 epochs of phase 2": ("swa", None),
    "RandAugment (tf.data)": ("augment", {"kind": "randaugment"}),
    "AugMix (tf.data)": ("augment", {"kind": "augmix"}),
    "light + random erasing 0.25 (tf.data)": (
        "augment",
        {"kind": "light", "erasing": 0.25},
    ),
}


@contextlib.contextmanager
def _feature(kind, options):
    """Adds SWA to phase 2, or an augmentation map to the training data."""
    import keras
    import tensorflow as tf

    import kerasft
    from kerasft._src.run import switches

    fit_inputs, phase_callbacks = switches.fit_inputs, switches.phase_callbacks

    def with_swa(config, inputs, phase_key, epochs):
        callbacks = phase_callbacks(config, inputs, phase_key, epochs)
        if phase_key == "finetune":
            start = max(epochs - 2, 0)
            swa = kerasft.callbacks.SWA(start, swap_on_evaluate=True)
            callbacks.append(swa)
        return callbacks

    def with_augmentation(config, dataset):
        inputs = fit_inputs(config, dataset)
        layer = kerasft.augment.augmentation(seed=config.seed, **options)
        x, y = inputs.train
        train = (
            tf.data.Dataset.from_tensor_slices((x, y))
            .shuffle(len(y), seed=config.seed)
            .batch(config.batch_size)
            .map(lambda x, y: (layer(x, training=True), y))
        )
        return dataclasses.replace(inputs, train=(train,), batch_size=None)

    if kind == "swa":
        switches.phase_callbacks = with_swa
    else:
        switches.fit_inputs = with_augmentation
    try:
        yield
    finally:
        switches.fit_inputs = fit_inputs
        switches.phase_callbacks = phase_callbacks
        keras.backend.clear_session()


def _quick_options():
    return {"max_per_class": 8, "weights": None, "epochs": 1, "head_epochs": 1}


def _accuracy(probabilities, labels):
    import numpy as np

    return float(np.mean(np.argmax(probabilities, -1) == labels))


def _post_hoc(out, probe_out, heldout):
    """TTA and WiSE-FT on the baseline's saved model."""
    import keras

    import kerasft

    x, y = heldout
    model = keras.saving.load_model(os.path.join(out, "model.keras"))
    tta = _accuracy(kerasft.tta_predict(model, x, n=2, policy="flip"), y)
    half = len(y) // 2
    plain_half = _accuracy(model.predict(x[half:], verbose=0), y[half:])
    probe = keras.saving.load_model(os.path.join(probe_out, "model.keras"))
    sweep = kerasft.wise_ft_sweep(
        model,
        probe,
        x[:half],
        y[:half],
        metric="accuracy",
        alphas=(0.0, 0.25, 0.5, 0.75, 0.9, 1.0),
    )
    wise = _accuracy(model.predict(x[half:], verbose=0), y[half:])
    return {
        POST_HOC[0]: tta,
        POST_HOC[1]: wise,
        "baseline (2nd half)": plain_half,
        "wise_alpha": sweep["alpha"],
    }


def worker(seeds, quick, features):
    setup_path()
    from kerasft import finetune
    from kerasft._src.run import data as run_data

    base = {"export": False, "verbose": 0, "log": lambda line: None}
    if quick:
        base.update(_quick_options())
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            row = {"seed": seed}
            for name, switch in _variants(features).items():
                out = os.path.join(tmp, f"{seed}-{len(row)}")
                kind, options = switch if features else (None, None)
                kwargs = {} if features else switch
                with _feature(kind, options) if kind else _nothing():
                    summary = finetune.finetune(
                        out=out, seed=seed, **base, **kwargs
                    )
                row[name] = summary["accuracy_after"]
                if name == BASELINE:
                    baseline_out = out
                    config = finetune.FinetuneConfig(**summary["args"])
            if not features:
                probe_out = os.path.join(tmp, f"{seed}-probe")
                finetune.finetune(
                    out=probe_out, seed=seed, strategy="probe", **base
                )
                heldout = run_data.load(config.validated()).heldout
                row.update(_post_hoc(baseline_out, probe_out, heldout))
            results.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    return results


def _variants(features):
    if not features:
        return VARIANTS
    return {BASELINE: (None, None), **FEATURES}


@contextlib.contextmanager
def _nothing():
    yield


def _table(rows, features):
    base = statistics.mean(r[BASELINE] for r in rows)
    lines = [
        "| variant | held-out accuracy (mean) | spread | vs baseline |",
        "| --- | --- | --- | --- |",
    ]
    names = list(_variants(features)) + ([] if features else list(POST_HOC))
    half = None
    if not features:
        half = statistics.mean(r["baseline (2nd half)"] for r in rows)
    for name in names:
        values = [r[name] for r in rows]
        mean = statistics.mean(values)
        ref = half if name == POST_HOC[1] else base
        spread = max(values) - min(values)
        lines.append(
            f"| {name} | {mean:.4f} | {spread:.4f} | {mean - ref:+.4f} |"
        )
    if half is not None:
        alphas = ", ".join(f"{r['wise_alpha']:g}" for r in rows)
        lines.append("")
        lines.append(
            f"WiSE-FT's alpha per seed (chosen on the 1st half): {alphas}; "
            f"the baseline on the 2nd half: {half:.4f}."
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--backend", default="tensorflow")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--features",
        action="store_true",
        help="SWA and augmentation policies instead of the switches",
    )
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.worker:
        rows = worker(seeds, args.quick, args.features)
        print("RESULT " + json.dumps({"results": rows}))
        return
    extra = ["--seeds", args.seeds] + (["--quick"] if args.quick else [])
    extra += ["--features"] if args.features else []
    out = run_worker(
        os.path.join(ROOT, "benchmarks", "toolkit_switches.py"),
        args.backend,
        extra,
        timeout=6 * 3600,
    )
    if "error" in out:
        sys.exit(f"worker failed: {out['error']}")
    rows = out["results"]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    print(f"backend: {args.backend}, seeds: {args.seeds}")
    print(_table(rows, args.features))


if __name__ == "__main__":
    main()
