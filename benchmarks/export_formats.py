"""Benchmark kerasft.export's formats: file size and agreement with Keras.

For one kerasft classifier (MobileNet, `weights=None`, preprocessing inside,
raw 0-255 pixels in) built on the current Keras backend, exports it with
`tf_serving`, `onnx` and `litert` (each verified by its runtime) and
reports, side by side:

- size: the SavedModel (`saved_model.pb` + `variables/`, without the REST
  sample in `assets.extra`), the `.onnx` file and the `.tflite` file, each
  as a ratio to the model's parameter bytes (float32);
- agreement: the largest absolute difference between each runtime's
  outputs (TensorFlow, onnxruntime, the LiteRT interpreter, run in one
  separate process) and `model.predict` in this process, on a new batch of
  raw pixels.

Usage:
    KERAS_BACKEND=jax python benchmarks/export_formats.py
    python benchmarks/export_formats.py --size 96 --json out.json

Prints a table and one JSON object (also written to `--json` if given).
This is a benchmark, not a test: differences depend on the machine's
kernels; the sizes do not.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import keras
import numpy as np

sys.path.insert(0, os.fspath(Path(__file__).resolve().parents[1]))

import kerasft  # noqa: E402

RUNTIMES = textwrap.dedent(
    """
    import json, sys
    import numpy as np

    saved_model, onnx_path, tflite_path, x_path, out_path = sys.argv[1:]
    x = np.load(x_path)
    import onnxruntime
    from ai_edge_litert.interpreter import Interpreter

    session = onnxruntime.InferenceSession(
        onnx_path, providers=["CPUExecutionProvider"]
    )
    name = session.get_inputs()[0].name
    outputs = {"onnx": session.run(None, {name: x})[0]}
    runner = Interpreter(model_path=tflite_path).get_signature_runner()
    outputs["litert"] = next(iter(runner(**{name: x}).values()))
    import tensorflow as tf

    signature = tf.saved_model.load(saved_model).signatures["serving_default"]
    result = signature(**{name: tf.constant(x)})
    outputs["tf_serving"] = next(iter(result.values())).numpy()
    np.savez(out_path, **outputs)
    """
)


def saved_model_bytes(path):
    root = Path(path)
    return sum(
        p.stat().st_size
        for p in root.rglob("*")
        if p.is_file() and "assets.extra" not in p.relative_to(root).parts
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96, help="Image size.")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--json", default=None, help="Also write JSON here.")
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(0)
    shape = (args.size, args.size, 3)
    backbone = kerasft.backbones.MobileNet(weights=None, input_shape=shape)
    model = kerasft.build_classifier(backbone, args.classes)
    # The head starts at zero (uniform probabilities); random weights make
    # the outputs, and so the comparison, depend on every layer.
    head = [layer for layer in model.layers if layer.weights][-1]
    rng = np.random.default_rng(0)
    head.set_weights(
        [rng.normal(0, 0.5, w.shape).astype("float32") for w in head.weights]
    )
    param_bytes = sum(
        int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
        for v in model.variables
    )
    x = rng.integers(0, 256, (args.batch, *shape)).astype("float32")
    expected = keras.ops.convert_to_numpy(
        model.predict(x, batch_size=args.batch, verbose=0)
    )

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        paths = {
            "tf_serving": kerasft.export.tf_serving(
                model, work / "serving", "bench"
            ),
            "onnx": kerasft.export.onnx(model, work / "bench.onnx"),
            "litert": kerasft.export.litert(model, work / "bench.tflite"),
        }
        sizes = {
            "tf_serving": saved_model_bytes(paths["tf_serving"]),
            "onnx": Path(paths["onnx"]).stat().st_size,
            "litert": Path(paths["litert"]).stat().st_size,
        }
        np.save(work / "x.npy", x)
        out_path = work / "outputs.npz"
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        process = subprocess.run(
            [
                sys.executable,
                "-c",
                RUNTIMES,
                paths["tf_serving"],
                paths["onnx"],
                paths["litert"],
                os.fspath(work / "x.npy"),
                os.fspath(out_path),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if process.returncode != 0:
            raise RuntimeError(process.stderr[-4000:])
        with np.load(out_path) as data:
            diffs = {
                key: float(np.max(np.abs(data[key] - expected)))
                for key in data.files
            }

    result = {
        "model": f"kerasft MobileNet {args.size}px, {args.classes} classes",
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "param_bytes": param_bytes,
        "max_abs_expected": float(np.max(np.abs(expected))),
    }
    rows = [("parameters (float32)", param_bytes, 1.0, None)]
    for key, label in (
        ("tf_serving", "TF Serving (saved_model.pb + variables/)"),
        ("onnx", "ONNX (.onnx)"),
        ("litert", "LiteRT (.tflite)"),
    ):
        result[f"{key}_bytes"] = sizes[key]
        result[f"{key}_ratio"] = sizes[key] / param_bytes
        result[f"{key}_max_abs_diff"] = diffs[key]
        rows.append((label, sizes[key], sizes[key] / param_bytes, diffs[key]))
    width = max(len(r[0]) for r in rows)
    print(f"{'export':<{width}}  {'size':>10}  {'ratio':>7}  max |diff|")
    for label, size, ratio, diff in rows:
        shown = "" if diff is None else f"{diff:.2g}"
        print(
            f"{label:<{width}}  {size / 1e6:>7.3f} MB  {ratio:>6.3f}x  {shown}"
        )
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
