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
its spread (max - min), and the difference to the baseline. `--quick`
checks the machinery on a few images with random weights.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile

from _common import ROOT
from _common import run_worker
from _common import setup_path

VARIANTS = {
    "baseline (demo defaults)": {},
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


def worker(seeds, quick):
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
            for name, switch in VARIANTS.items():
                out = os.path.join(tmp, f"{seed}-{len(row)}")
                summary = finetune.finetune(
                    out=out, seed=seed, **base, **switch
                )
                row[name] = summary["accuracy_after"]
                if not switch:
                    baseline_out = out
                    config = finetune.FinetuneConfig(**summary["args"])
            probe_out = os.path.join(tmp, f"{seed}-probe")
            finetune.finetune(
                out=probe_out, seed=seed, strategy="probe", **base
            )
            heldout = run_data.load(config.validated()).heldout
            row.update(_post_hoc(baseline_out, probe_out, heldout))
            results.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    return results


def _table(rows):
    names = [*VARIANTS, *POST_HOC]
    base = statistics.mean(r["baseline (demo defaults)"] for r in rows)
    half = statistics.mean(r["baseline (2nd half)"] for r in rows)
    lines = [
        "| variant | held-out accuracy (mean) | spread | vs baseline |",
        "| --- | --- | --- | --- |",
    ]
    for name in names:
        values = [r[name] for r in rows]
        mean = statistics.mean(values)
        ref = half if name == POST_HOC[1] else base
        spread = max(values) - min(values)
        lines.append(
            f"| {name} | {mean:.4f} | {spread:.4f} | {mean - ref:+.4f} |"
        )
    alphas = ", ".join(f"{r['wise_alpha']:g}" for r in rows)
    lines.append("")
    lines.append(
        f"WiSE-FT's alpha per seed (chosen on the 1st half): {alphas}; the "
        f"baseline on the 2nd half: {half:.4f}."
    )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--backend", default="tensorflow")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.worker:
        print("RESULT " + json.dumps({"results": worker(seeds, args.quick)}))
        return
    extra = ["--seeds", args.seeds] + (["--quick"] if args.quick else [])
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
    print(_table(rows))


if __name__ == "__main__":
    main()
