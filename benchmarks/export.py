"""Benchmark kerasft.export.tf_serving: export size and serving latency.

Measured side by side, for one model built on the current Keras backend:

- size: the kerasft SavedModel (variables + graph) and the SavedModel that
  Keras writes itself (`model.export(format="tf_saved_model")`, run in a
  TensorFlow-backend process on the same `.keras` file), each as a ratio to
  the model's parameter bytes. The target for kerasft is <= 1.05x;
  keras-team/keras#23553 stores every variable twice.
- latency: the `serving_default` signature of the kerasft export
  (`tf.saved_model.load`, in a TensorFlow process) against `model.predict`
  on the same batch in this process; median of `--repeats` runs after one
  warm-up run.

Usage:
    KERAS_BACKEND=jax python benchmarks/export.py --model mobilenet
    python benchmarks/export.py --model resnet50 --batch 8 --json out.json

Prints a table and one JSON object (also written to `--json` if given).
This is a benchmark, not a test: numbers depend on the machine.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import keras
import numpy as np

sys.path.insert(0, os.fspath(Path(__file__).resolve().parents[1]))

from kerasft.export import tf_serving  # noqa: E402

TF_SIDE = textwrap.dedent(
    """
    import json, os, statistics, sys, time
    import numpy as np
    import keras
    import tensorflow as tf

    keras_path, keras_export_dir, kerasft_dir, sample_path, repeats = (
        sys.argv[1:6]
    )
    model = keras.saving.load_model(keras_path, compile=False)
    model.export(keras_export_dir, format="tf_saved_model", verbose=False)
    loaded = tf.saved_model.load(kerasft_dir)
    signature = loaded.signatures["serving_default"]
    sample = np.load(sample_path)
    feeds = {k: tf.constant(sample[k]) for k in sample.files}
    signature(**feeds)
    times = []
    for _ in range(int(repeats)):
        start = time.perf_counter()
        out = signature(**feeds)
        [v.numpy() for v in out.values()]
        times.append(time.perf_counter() - start)
    print("RESULT " + json.dumps({"signature_s": statistics.median(times)}))
    """
)


def build_model(kind):
    if kind == "tiny":
        inputs = keras.Input((32, 32, 3), name="pixels")
        x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
        x = keras.layers.GlobalAveragePooling2D()(x)
        outputs = keras.layers.Dense(10, activation="softmax", name="probs")(x)
        return keras.Model(inputs, outputs), (32, 32, 3)
    shape = (224, 224, 3)
    application = {
        "mobilenet": keras.applications.MobileNet,
        "resnet50": keras.applications.ResNet50,
    }[kind]
    return application(weights=None, input_shape=shape), shape


def dir_bytes(path):
    """Bytes of the SavedModel files; `assets.extra` (the REST sample) is
    reported separately."""
    root = Path(path)
    return sum(
        p.stat().st_size
        for p in root.rglob("*")
        if p.is_file() and "assets.extra" not in p.relative_to(root).parts
    )


def variables_bytes(path):
    return dir_bytes(Path(path) / "variables")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", choices=("tiny", "mobilenet", "resnet50"), default="tiny"
    )
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", default=None, help="Also write JSON here.")
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(0)
    model, shape = build_model(args.model)
    param_bytes = sum(
        int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
        for v in model.variables
    )
    rng = np.random.default_rng(0)
    x = np.round(rng.uniform(0, 255, (args.batch, *shape))).astype("float32")

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        start = time.perf_counter()
        path = tf_serving(model, work / "serving", "bench", sample_inputs=x)
        export_s = time.perf_counter() - start
        keras_path = work / "model.keras"
        model.save(keras_path)
        (input_name,) = [
            t.name for t in keras.tree.flatten(model.input)
        ]  # single-input models only
        sample_path = work / "sample.npz"
        np.savez(sample_path, **{input_name: x})
        env = dict(os.environ, KERAS_BACKEND="tensorflow")
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        keras_export = work / "keras_export"
        process = subprocess.run(
            [
                sys.executable,
                "-c",
                TF_SIDE,
                os.fspath(keras_path),
                os.fspath(keras_export),
                path,
                os.fspath(sample_path),
                str(args.repeats),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if process.returncode != 0:
            raise RuntimeError(process.stderr[-4000:])
        line = [
            ln for ln in process.stdout.splitlines() if ln.startswith("RESULT ")
        ][-1]
        tf_side = json.loads(line[len("RESULT ") :])

        model.predict(x, batch_size=args.batch, verbose=0)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            model.predict(x, batch_size=args.batch, verbose=0)
            times.append(time.perf_counter() - start)
        predict_s = statistics.median(times)

        result = {
            "model": args.model,
            "backend": keras.backend.backend(),
            "keras": keras.__version__,
            "batch": args.batch,
            "repeats": args.repeats,
            "param_bytes": param_bytes,
            "kerasft_total_bytes": dir_bytes(path),
            "kerasft_variables_bytes": variables_bytes(path),
            "keras_export_total_bytes": dir_bytes(keras_export),
            "sample_request_bytes": (
                Path(path) / "assets.extra" / "sample_request.json"
            )
            .stat()
            .st_size,
            "keras_export_variables_bytes": variables_bytes(keras_export),
            "export_seconds": export_s,
            "signature_seconds": tf_side["signature_s"],
            "predict_seconds": predict_s,
        }
    for prefix in ("kerasft", "keras_export"):
        for part in ("total", "variables"):
            result[f"{prefix}_{part}_ratio"] = (
                result[f"{prefix}_{part}_bytes"] / param_bytes
            )
    result["signature_over_predict"] = (
        result["signature_seconds"] / result["predict_seconds"]
    )

    rows = [
        ("parameter bytes", f"{param_bytes / 1e6:.2f} MB", "1.00x"),
        (
            "kerasft SavedModel (pb + variables)",
            f"{result['kerasft_total_bytes'] / 1e6:.2f} MB",
            f"{result['kerasft_total_ratio']:.3f}x",
        ),
        (
            "kerasft variables/",
            f"{result['kerasft_variables_bytes'] / 1e6:.2f} MB",
            f"{result['kerasft_variables_ratio']:.3f}x",
        ),
        (
            "keras model.export (pb + variables)",
            f"{result['keras_export_total_bytes'] / 1e6:.2f} MB",
            f"{result['keras_export_total_ratio']:.3f}x",
        ),
        (
            "keras model.export variables/",
            f"{result['keras_export_variables_bytes'] / 1e6:.2f} MB",
            f"{result['keras_export_variables_ratio']:.3f}x",
        ),
        (
            f"model.predict, batch {args.batch} ({result['backend']})",
            f"{predict_s * 1e3:.1f} ms",
            "1.00x",
        ),
        (
            "serving_default signature (TF)",
            f"{result['signature_seconds'] * 1e3:.1f} ms",
            f"{result['signature_over_predict']:.2f}x",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>12}  {'ratio':>8}")
    for label, value, ratio in rows:
        print(f"{label:<{width}}  {value:>12}  {ratio:>8}")
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
