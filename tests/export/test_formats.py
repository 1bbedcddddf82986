"""Tests for kerasft.export.onnx and kerasft.export.litert, every backend.

The test process's backend builds the model; the conversion always runs in
a TensorFlow process and the verification in a runtime process. One export
per format (module-scoped fixture, the LiteRT one through the CLI) is
shared by the checks; a separate process runs both files with the runtimes
alone on new raw 0-255 inputs. The other tests replace the processes.
"""

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from kerasft._src.export import serving_dir
from kerasft._src.export.cli import main as export_main
from kerasft.export import litert
from kerasft.export import onnx

formats_module = importlib.import_module("kerasft._src.export.formats")

EXPORTS = {"onnx": onnx, "litert": litert}
SUFFIX = {"onnx": ".onnx", "litert": ".tflite"}
# float32 kernels of onnxruntime, XNNPACK and the training backend round
# differently; the tiny model's outputs agree far closer than this.
ATOL = 1e-5
RTOL = 1e-5

RUNTIMES = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import onnxruntime
    from ai_edge_litert.interpreter import Interpreter

    onnx_path, tflite_path, x_path, out_path = sys.argv[1:]
    x = np.load(x_path)
    session = onnxruntime.InferenceSession(
        onnx_path, providers=["CPUExecutionProvider"]
    )
    (onnx_probs,) = session.run(["probs"], {"pixels": x})
    runner = Interpreter(model_path=tflite_path).get_signature_runner()
    litert_probs = runner(pixels=x)["probs"]
    np.savez(out_path, onnx=onnx_probs, litert=litert_probs)
    loaded = sorted(
        m for m in sys.modules
        if m.split(".")[0] in ("tensorflow", "keras", "jax", "torch")
    )
    print(json.dumps({
        "onnx_inputs": [
            [i.name, [d if isinstance(d, int) else None for d in i.shape]]
            for i in session.get_inputs()
        ],
        "onnx_outputs": [o.name for o in session.get_outputs()],
        "litert_signatures": Interpreter(
            model_path=tflite_path
        ).get_signature_list(),
        "frameworks_loaded": loaded,
        "litert_shapes": [
            [int(d) for d in t["shape"]]
            for t in Interpreter(model_path=tflite_path).get_tensor_details()
        ],
    }))
    """
)


def tiny_lora_model():
    """Raw 0-255 pixels in, preprocessing inside, a Dense with LoRA."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((16, 16, 3), name="pixels")
    x = keras.layers.Rescaling(1.0 / 255.0, name="preprocess")(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(6, name="hidden")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    model = keras.Model(inputs, outputs, name="tiny_lora")
    hidden = model.get_layer("hidden")
    hidden.enable_lora(2)
    # LoRA's B starts at zero; give the adapter a visible effect.
    rng = np.random.default_rng(5)
    hidden.lora_kernel_b.assign(rng.normal(size=(2, 6)).astype("float32"))
    return model


def tiny_model():
    inputs = keras.Input((4,), name="features")
    outputs = keras.layers.Dense(2, name="scores")(inputs)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.backend.clear_session()
    root = tmp_path_factory.mktemp("formats")
    model = tiny_lora_model()
    keras_path = root / "tiny.keras"
    model.save(keras_path)
    onnx_path = onnx(model, root / "out" / "tiny.onnx")
    code = export_main(
        [
            os.fspath(keras_path),
            "--format",
            "litert",
            "--output",
            os.fspath(root / "out" / "tiny.tflite"),
        ]
    )
    assert code == 0
    return {
        "model": model,
        "root": root,
        "onnx": Path(onnx_path),
        "litert": root / "out" / "tiny.tflite",
    }


@pytest.fixture(scope="module")
def runtime_run(exported):
    """Both files run by their runtimes alone, on new raw pixels."""
    x = np.random.default_rng(11).integers(0, 256, (3, 16, 16, 3))
    x = x.astype("float32")
    x_path = exported["root"] / "x.npy"
    out_path = exported["root"] / "runtime_outputs.npz"
    np.save(x_path, x)
    process = subprocess.run(
        [
            sys.executable,
            "-c",
            RUNTIMES,
            os.fspath(exported["onnx"]),
            os.fspath(exported["litert"]),
            os.fspath(x_path),
            os.fspath(out_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    with np.load(out_path) as data:
        outputs = {key: data[key] for key in data.files}
    info = json.loads(process.stdout.strip().splitlines()[-1])
    expected = exported["model"].predict(x, batch_size=3, verbose=0)
    return {"outputs": outputs, "info": info, "expected": expected}


def test_files_written_alone(exported):
    out = exported["onnx"].parent
    assert exported["onnx"].is_absolute()
    assert sorted(p.name for p in out.iterdir()) == ["tiny.onnx", "tiny.tflite"]


@pytest.mark.parametrize("export_format", ["onnx", "litert"])
def test_runtime_matches_keras_on_raw_pixels(runtime_run, export_format):
    got = runtime_run["outputs"][export_format]
    want = keras.ops.convert_to_numpy(runtime_run["expected"])
    assert got.shape == want.shape == (3, 3)
    bound = ATOL + RTOL * float(np.max(np.abs(want)))
    assert float(np.max(np.abs(got - want))) <= bound


def test_names_and_variable_batch(runtime_run):
    info = runtime_run["info"]
    assert info["onnx_inputs"] == [["pixels", [None, 16, 16, 3]]]
    assert info["onnx_outputs"] == ["probs"]
    assert info["litert_signatures"] == {
        "serving_default": {"inputs": ["pixels"], "outputs": ["probs"]}
    }
    # The runtimes ran without TensorFlow, Keras, JAX or torch.
    assert info["frameworks_loaded"] == []


def test_lora_model_exports_as_plain_model(exported, runtime_run):
    import onnx as onnx_package

    hidden = exported["model"].get_layer("hidden")
    assert hidden.lora_enabled
    delta = keras.ops.convert_to_numpy(
        keras.ops.matmul(hidden.lora_kernel_a, hidden.lora_kernel_b)
    )
    # The outputs matched with this adapter in the path...
    assert float(np.max(np.abs(delta))) > 0.05
    # ...and the converters folded it into one (4, 6) kernel: no LoRA
    # factor (4, 2) or (2, 6) is left in either file.
    factors = {(4, 2), (2, 4), (2, 6), (6, 2)}
    graph = onnx_package.load(os.fspath(exported["onnx"])).graph
    onnx_shapes = {tuple(t.dims) for t in graph.initializer}
    litert_shapes = {tuple(s) for s in runtime_run["info"]["litert_shapes"]}
    assert (4, 6) in onnx_shapes and (6, 4) in litert_shapes
    assert not (onnx_shapes | litert_shapes) & factors


@pytest.mark.parametrize("export_format", ["onnx", "litert"])
def test_refuses_existing_file_before_work(
    exported, monkeypatch, export_format
):
    path = exported[export_format]
    before = path.read_bytes()

    def no_worker(*args):
        raise AssertionError("no process may start")

    monkeypatch.setattr(formats_module, "_run_worker", no_worker)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        EXPORTS[export_format](exported["model"], path)
    assert path.read_bytes() == before


def _fake_worker(calls, outputs=None, fail=None):
    """Replaces the processes: writes a file, returns `outputs`."""

    def run(command, spec, work, timeout):
        calls.append(command)
        if command == fail:
            Path(spec["export_path"]).write_bytes(b"half")
            raise RuntimeError("simulated failure")
        if command.startswith("run-"):
            return outputs
        Path(spec["export_path"]).write_bytes(b"converted")
        return {"size": 9}

    return run


@pytest.mark.parametrize("export_format", ["onnx", "litert"])
@pytest.mark.parametrize("fail", ["convert", "mismatch"])
def test_failure_leaves_existing_file_untouched(
    tmp_path, monkeypatch, export_format, fail
):
    path = tmp_path / f"model{SUFFIX[export_format]}"
    path.write_bytes(b"previous export")
    calls = []
    if fail == "convert":
        worker = _fake_worker(calls, fail=export_format)
        match = "simulated failure"
    else:
        worker = _fake_worker(calls, outputs={"scores": np.ones((2, 2))})
        match = "differ by up to .* Nothing was written to"
    monkeypatch.setattr(formats_module, "_run_worker", worker)
    with pytest.raises(RuntimeError, match=match):
        EXPORTS[export_format](tiny_model(), path, overwrite=True)
    assert path.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


@pytest.mark.parametrize("export_format", ["onnx", "litert"])
def test_commit_replaces_and_cleans_stale_staging(
    tmp_path, monkeypatch, export_format
):
    model = tiny_model()
    suffix = SUFFIX[export_format]
    path = tmp_path / "sub" / f"m{suffix}"
    path.parent.mkdir()
    host = serving_dir._HOST
    dead = path.parent / f".m.tmp-{host}-999999999-{'a' * 32}{suffix}"
    live = path.parent / f".m.tmp-{host}-{os.getpid()}-{'b' * 32}{suffix}"
    other = path.parent / f".n.tmp-{host}-999999999-{'c' * 32}{suffix}"
    for leftover in (dead, live, other):
        leftover.write_bytes(b"x")
    calls = []

    def outputs_of_model(command, spec, work, timeout):
        if command.startswith("run-"):
            with np.load(spec["sample_path"]) as data:
                x = data["features"]
            return {"scores": model.predict(x, verbose=0)}
        return _fake_worker(calls)(command, spec, work, timeout)

    monkeypatch.setattr(formats_module, "_run_worker", outputs_of_model)
    written = EXPORTS[export_format](model, path)
    assert written == os.fspath(path.resolve())
    assert path.read_bytes() == b"converted"
    # The dead process's staging file of this path is gone; a live one's
    # and another path's are kept.
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == sorted([path.name, live.name, other.name])
    path.write_bytes(b"old")
    assert EXPORTS[export_format](model, path, overwrite=True) == written
    assert path.read_bytes() == b"converted"
    assert calls == [export_format, export_format]


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda p: onnx(tiny_model(), p / "m.tflite"), ValueError, r"\.onnx"),
        (lambda p: litert(tiny_model(), p / "m.onnx"), ValueError, "tflite"),
        (lambda p: onnx(tiny_model(), p), ValueError, "end with"),
        (lambda p: onnx(tiny_model(), p / "d.onnx"), ValueError, "folder"),
        (lambda p: onnx(tiny_model(), p / "f" / "m.onnx"), ValueError, "f is"),
        (lambda p: onnx(tiny_model(), None), TypeError, "path=None"),
        (lambda p: onnx(tiny_model(), p / "m.onnx", opset=6), ValueError, "6"),
        (
            lambda p: onnx(tiny_model(), p / "m.onnx", opset=19),
            ValueError,
            "Received: opset=19",
        ),
        (
            lambda p: onnx(tiny_model(), p / "m.onnx", opset=15.0),
            TypeError,
            "Received: opset=15.0",
        ),
        (
            lambda p: litert(tiny_model(), p / "m.tflite", atol=-1),
            ValueError,
            "Received: atol=-1",
        ),
        (
            lambda p: litert(tiny_model(), p / "m.tflite", verify=1),
            TypeError,
            "Received: verify=1",
        ),
        (
            lambda p: litert(tiny_model(), p / "m.tflite", timeout=0),
            ValueError,
            "Received: timeout=0",
        ),
        (lambda p: litert(42, p / "m.tflite"), TypeError, "model=42"),
        (
            lambda p: litert(os.fspath(p / "x.keras"), p / "m.tflite"),
            ValueError,
            "existing .keras file",
        ),
    ],
)
def test_bad_arguments_change_nothing(tmp_path, call, error, match):
    (tmp_path / "d.onnx").mkdir()
    (tmp_path / "f").write_text("a file")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(error, match=match):
        call(tmp_path)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize(
    "export_format, module, package, verify",
    [
        ("onnx", "tf2onnx", "tf2onnx", False),
        ("onnx", "onnxruntime", "onnxruntime", True),
        ("litert", "tensorflow", "tensorflow", False),
        ("litert", "ai_edge_litert", "ai-edge-litert", True),
    ],
)
def test_missing_dependency_names_pip_command(
    tmp_path, monkeypatch, export_format, module, package, verify
):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name == module:
            return None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    pattern = rf'needs {package}, .*"kerasft\[{export_format}\]"'
    path = tmp_path / f"m{SUFFIX[export_format]}"
    with pytest.raises(ImportError, match=pattern):
        EXPORTS[export_format](tiny_model(), path, verify=verify)
    assert not any(tmp_path.iterdir())


def test_runtime_dependency_not_needed_without_verify(tmp_path, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a, **k: (
            None if name == "onnxruntime" else real_find_spec(name, *a, **k)
        ),
    )
    calls = []
    monkeypatch.setattr(formats_module, "_run_worker", _fake_worker(calls))
    onnx(tiny_model(), tmp_path / "m.onnx", verify=False)
    assert calls == ["onnx"]
