"""Benchmark: Transformer recipes for `strategy="auto"`, on validation only.

The comparison behind `auto`'s Transformer recipe (docs/transfer.md,
"What `auto` chooses"). Each variant fine-tunes all-MiniLM-L6-v2 with a
new head on the text tasks of `benchmarks/transfer.py` (same data, same
splits, same seeds, same budget) and reports the accuracy on the
**validation** split, the split choices are made on; the test split is
not read.

Variants (AdamW, weight decay 0.01, every stage from the start, base
rate 1e-4 at the top stage):

- `plain`: a constant rate; plain full fine-tuning, what `auto` does.
- `warmup-decay`: 10% linear warm-up, layer-wise decay 0.9 per stage.
- `warmup`: 10% warm-up, no layer-wise decay.
- `decay`: layer-wise decay 0.9, no warm-up.
- `warmup-decay-head10`: as `warmup-decay`, the new head at 10x.

`--averages` also scores, on the same runs, averages of the weights
along the run (an EMA with decay 0.8, 0.9 and 0.95; the mean of the last
half and last quarter of the steps) against the last weights.

Usage (the backend is fixed per process):

    python benchmarks/transfer.py --provision   # once
    KERAS_BACKEND=jax python benchmarks/text_recipes.py \\
        [--variants plain,warmup-decay] [--tasks bbc_news,rotten_tomatoes] \\
        [--seeds 3] [--epochs 3] [--averages]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402
import transfer  # noqa: E402

VARIANTS = {  # name: (warm-up share, layer-wise decay, head factor)
    "plain": (0.0, 1.0, 1.0),
    "warmup-decay": (0.1, 0.9, 1.0),
    "warmup": (0.1, 1.0, 1.0),
    "decay": (0.0, 0.9, 1.0),
    "warmup-decay-head10": (0.1, 0.9, 10.0),
}
EMA_DECAYS = (0.8, 0.9, 0.95)
TAILS = (0.5, 0.75)  # average the steps after this share of the run


def build_optimizer(model, variant, total_steps):
    """The variant's optimizer, built as `auto` builds its own."""
    import keras

    import kerasft

    warmup, decay, head_factor = VARIANTS[variant]
    rate = transfer.RATES["finetune"]
    if warmup:
        rate = kerasft.schedules.WarmUp(rate, round(total_steps * warmup))
    optimizer = keras.optimizers.AdamW(rate, weight_decay=0.01)
    kerasft.unfreeze(model)
    if decay == 1.0 and head_factor == 1.0:
        return optimizer
    factors = kerasft.optimizers.layerwise_decay(model, decay)
    factors = {k: v / decay for k, v in factors.items()}
    factors[kerasft.stages(model)[-1].name] = head_factor
    return kerasft.optimizers.discriminative(optimizer, model, factors)


def _averages_callback(total_steps):
    import keras
    import numpy as np

    class Averages(keras.callbacks.Callback):
        """EMAs and tail means of the weights, kept in NumPy."""

        def on_train_begin(self, logs=None):
            weights = self.model.get_weights()
            self.floating = [
                np.issubdtype(w.dtype, np.floating) for w in weights
            ]
            self.ema = {d: [w.copy() for w in weights] for d in EMA_DECAYS}
            self.tail = dict.fromkeys(TAILS)
            self.count = dict.fromkeys(TAILS, 0)
            self.step = 0

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            weights = self.model.get_weights()
            for d, average in self.ema.items():
                for i, (a, w) in enumerate(zip(average, weights)):
                    if self.floating[i]:
                        a += (1 - d) * (w - a)
            for share in TAILS:
                if self.step <= share * total_steps:
                    continue
                self.count[share] += 1
                if self.tail[share] is None:
                    self.tail[share] = [w.copy() for w in weights]
                    continue
                for i, (a, w) in enumerate(zip(self.tail[share], weights)):
                    if self.floating[i]:
                        a += (w - a) / self.count[share]

        def on_train_end(self, logs=None):
            self.last = self.model.get_weights()

        def weight_sets(self):
            sets = {"last": self.last}
            sets.update({f"ema {d:g}": a for d, a in self.ema.items()})
            sets.update({f"last {1 - s:.0%}": a for s, a in self.tail.items()})
            return sets

    return Averages()


def run_one(task, variant, epochs, seed, data, averages=False):
    """One run; `{"task", "variant", ..., "val_accuracy"}` (and the
    averages' validation accuracies with `averages`)."""
    import keras
    import numpy as np

    from kerasft._src.text_dataset import text_dataset

    train, val, _, num_classes = data
    model = transfer.build_model(task, num_classes, seed)
    dataset = text_dataset(*train, transfer.BATCH_SIZE, seed=seed)
    total = epochs * len(dataset)
    model.compile(
        build_optimizer(model, variant, total),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    callbacks = [_averages_callback(total)] if averages else []
    model.fit(
        dataset, epochs=epochs, callbacks=callbacks, verbose=0, shuffle=False
    )
    x, y = val[0], np.asarray(val[1])
    row = {
        "backend": keras.backend.backend(),
        "task": task,
        "variant": variant,
        "epochs": epochs,
        "seed": seed,
    }
    sets = callbacks[0].weight_sets() if averages else {"last": None}
    for name, weights in sets.items():
        if weights is not None:
            model.set_weights(weights)
        result = model.evaluate(x, y, verbose=0, return_dict=True)
        key = "val_accuracy" if name == "last" else f"val_accuracy ({name})"
        row[key] = float(result["accuracy"])
    return row


def _label(key):
    """`val_accuracy` -> `last`; `val_accuracy (ema 0.9)` -> `ema 0.9`."""
    return "last" if key == "val_accuracy" else key[len("val_accuracy (") : -1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--tasks", default=",".join(transfer.TEXT_TASKS))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--averages", action="store_true")
    args = parser.parse_args(argv)
    for flag, allowed in (
        ("variants", tuple(VARIANTS)),
        ("tasks", transfer.TEXT_TASKS),
    ):
        unknown = set(getattr(args, flag).split(",")) - set(allowed)
        if unknown:
            parser.error(
                f"--{flag}: unknown {sorted(unknown)}; choose from "
                f"{list(allowed)}"
            )
    if args.epochs < 1 or args.seeds < 1:
        parser.error(
            "--epochs and --seeds take integers >= 1. Received: --epochs "
            f"{args.epochs} --seeds {args.seeds}"
        )
    _common.setup_path()
    rows = []
    for task in args.tasks.split(","):
        data = transfer.load_task(task)
        for variant in args.variants.split(","):
            for seed in range(args.seeds):
                row = run_one(
                    task, variant, args.epochs, seed, data, args.averages
                )
                print(json.dumps(row), flush=True)
                rows.append(row)
    print("\nmean validation accuracy over the seeds:")
    for task in args.tasks.split(","):
        for variant in args.variants.split(","):
            picked = [
                r for r in rows if r["task"] == task and r["variant"] == variant
            ]
            keys = [k for k in picked[0] if k.startswith("val_accuracy")]
            means = ", ".join(
                f"{_label(k)} {sum(r[k] for r in picked) / len(picked):.3f}"
                for k in keys
            )
            print(f"  {task:16} {variant:20} {means}")
    return rows


if __name__ == "__main__":
    main()
