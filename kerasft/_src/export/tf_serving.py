"""Export a Keras model, trained on any backend, as a TF Serving SavedModel."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kerasft._src.naming import unique_name
from kerasft._src.validation import check_bool
from kerasft._src.validation import check_number
from kerasft._src.validation import check_path
from kerasft._src.walk import nested_layers

PIP_COMMAND = 'pip install "kerasft[tensorflow]"'
SIGNATURE_NAME = "serving_default"
SAMPLE_REQUEST = os.path.join("assets.extra", "sample_request.json")
MODELS_CONFIG = "models.config"

_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_SAMPLE_BATCH = 2


def tf_serving(
    model: keras.Model | str | os.PathLike,
    base_dir: str | os.PathLike,
    name: str,
    *,
    version: int | None = None,
    overwrite: bool = False,
    sample_inputs: np.ndarray | dict[str, np.ndarray] | None = None,
    verify: bool = True,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    config_base_path: str | None = None,
    timeout: float = 900.0,
) -> str:
    """Export a model as a versioned SavedModel for TensorFlow Serving.

    The model can come from any backend. It is saved as a `.keras` file,
    then a separate Python process with `KERAS_BACKEND=tensorflow` loads it
    and writes a plain TensorFlow graph (no `XlaCallModule`, no torch) to
    `base_dir/name/version/`. The SavedModel stores each variable once, so
    its size is close to the parameter bytes; `keras.Model.export` stores
    them twice (keras-team/keras#23553).

    The `serving_default` signature takes the model's raw inputs under the
    names of its `keras.Input`s (for kerasft backbones: 0-255 pixels, since
    preprocessing is a layer inside the model) and returns the model's
    outputs (probabilities or logits, whatever the model returns) under the
    names of its output layers, or under the keys of its output dict.

    Next to the SavedModel, the function writes
    `assets.extra/sample_request.json` (a REST body in the
    `{"instances": ...}` form; TF Serving ignores `assets.extra`) and
    creates or updates `base_dir/models.config` (a `model_config_list`),
    keeping the entries of other models.

    Everything is written to a hidden temporary directory inside
    `base_dir/name` and renamed into place only after verification passed,
    so a failure leaves existing versions untouched.

    With `verify=True` (the default), another fresh process loads the
    SavedModel with `tf.saved_model.load` alone and runs the signature on
    the sample inputs. For every output, the largest absolute difference
    from the Keras model's outputs in this process must be at most
    `atol + rtol * max(abs(expected))`: float32 kernels differ between
    backends by rounding, which grows with the magnitude of the outputs
    (logits), so the tolerance scales with it.

    Example:

    ```python
    inputs = keras.Input((16, 16, 3), name="pixels")
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    model = keras.Model(inputs, outputs)
    path = kerasft.export.tf_serving(model, "serving", "tiny")
    # serving/tiny/1/saved_model.pb, serving/models.config
    ```

    Args:
        model: `keras.Model` or path to a `.keras` file. The model must have
            defined inputs (a Functional model, or a Sequential model that
            starts with a `keras.Input`).
        base_dir: str or path. The TF Serving model base directory; created
            if missing.
        name: str. The model name, used as the folder name and in
            `models.config`. Letters, digits, `_`, `.` and `-`, starting
            with a letter or digit.
        version: int or `None`. The version folder. Defaults to `None`: one
            more than the highest existing version, or 1.
        overwrite: bool. Whether to replace an existing version folder.
            Defaults to `False`.
        sample_inputs: array, dict of arrays (keyed by signature input name)
            or `None`. Inputs used for verification and for the REST sample.
            Defaults to `None`: a batch of 2 drawn with a fixed seed
            (floats in [0, 255], integers in {0, 1}). Required when an input
            has an undefined dimension other than the batch dimension.
        verify: bool. Whether to reload and check the export in a separate
            process. Defaults to `True`.
        atol: float. Absolute tolerance of the verification. Defaults to
            `1e-5`.
        rtol: float. Tolerance of the verification relative to the largest
            absolute expected output. Defaults to `1e-5`.
        config_base_path: str or `None`. The folder that holds the model
            folders as TF Serving sees it, written into `models.config`
            (e.g. `"/models"` when `base_dir` is mounted there in a
            container). Defaults to `None`: the absolute path of `base_dir`.
        timeout: float. Seconds allowed to each TensorFlow process. Defaults
            to `900.0`.

    Returns:
        The absolute path of the version folder, as a str.

    Raises:
        ImportError: if TensorFlow is not installed.
        ValueError: if an argument is invalid, the model has no defined
            input shape, a layer cannot be serialized or re-created in
            another process, or `models.config` exists but is not a
            `model_config_list`.
        FileExistsError: if the version folder exists and `overwrite` is
            `False`.
        RuntimeError: if the TensorFlow process fails or the verification
            finds a mismatch.
    """
    _require_tensorflow()
    name = _validate_name(name)
    version = _validate_version(version)
    base_dir = Path(check_path("base_dir", base_dir)).resolve()
    check_bool("overwrite", overwrite)
    check_bool("verify", verify)
    if config_base_path is not None:
        config_base_path = check_path("config_base_path", config_base_path)
    check_number("timeout", timeout, minimum=0, min_inclusive=False)
    atol = check_number("atol", atol, minimum=0)
    rtol = check_number("rtol", rtol, minimum=0)
    model, keras_path = _load_model(model)

    inputs, input_structure = _input_entries(model)
    samples = _sample_inputs(inputs, sample_inputs)
    expected, outputs, output_structure = _reference_outputs(
        model, inputs, input_structure, samples
    )
    spec = {
        "inputs": inputs,
        "input_structure": input_structure,
        "outputs": outputs,
        "output_structure": output_structure,
        "custom_classes": _custom_classes(model),
    }

    model_dir = base_dir / name
    config_path = base_dir / MODELS_CONFIG
    config_entries = _read_models_config(config_path)
    if version is None:
        version = _next_version(model_dir)
    version_dir = model_dir / str(version)
    if version_dir.exists() and not overwrite:
        raise FileExistsError(
            f"Version {version} of model '{name}' already exists at "
            f"{version_dir}. Pass `overwrite=True` to replace it, or choose "
            "another `version` (the default picks the next free integer). "
            f"Received: version={version}, overwrite={overwrite}"
        )

    model_dir.mkdir(parents=True, exist_ok=True)
    staging = model_dir / f".tmp-{version}-{uuid.uuid4().hex}"
    try:
        _write_saved_model(
            model,
            keras_path,
            samples,
            spec,
            staging,
            timeout,
            expected=expected if verify else None,
            atol=atol,
            rtol=rtol,
        )
        _commit(staging, version_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)

    if config_base_path is None:
        base_path = os.fspath(model_dir)
    else:
        base_path = config_base_path.rstrip("/") + "/" + name
    _write_models_config(config_path, config_entries, name, base_path)
    return os.fspath(version_dir)


def _load_model(model):
    """The model to export and its `.keras` file, when it came as one."""
    if isinstance(model, (str, os.PathLike)):
        keras_path = Path(model)
        if keras_path.suffix != ".keras" or not keras_path.is_file():
            raise ValueError(
                "`model` must be a keras.Model or the path of an existing "
                f".keras file. Received: model={os.fspath(model)!r}"
            )
        return keras.saving.load_model(keras_path, compile=False), keras_path
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a keras.Model or the path of a .keras file. "
            f"Received: model={model!r}"
        )
    return model, None


def _write_saved_model(
    model, keras_path, samples, spec, staging, timeout, *, expected, atol, rtol
):
    """Writes the SavedModel into `staging` in a TensorFlow process.

    With `expected` (the Keras outputs on `samples`), a second TensorFlow
    process loads what was written and its outputs must match.
    """
    with tempfile.TemporaryDirectory(prefix="kerasft-export-") as work:
        work = Path(work)
        if keras_path is None:
            keras_path = work / "model.keras"
            model.save(keras_path)
        sample_path = work / "sample.npz"
        np.savez(sample_path, **samples)
        spec = dict(
            spec,
            keras_path=os.fspath(keras_path),
            export_dir=os.fspath(staging),
            sample_path=os.fspath(sample_path),
        )
        _run_worker("write", spec, work, timeout)
        _write_sample_request(staging, spec["inputs"], samples)
        if expected is not None:
            actual = _run_worker("verify", spec, work, timeout)
            _compare(expected, actual, atol=atol, rtol=rtol)


def _require_tensorflow() -> None:
    if importlib.util.find_spec("tensorflow") is None:
        raise ImportError(
            "Exporting for TF Serving needs TensorFlow, which is not "
            f"installed. Install it with: {PIP_COMMAND}"
        )


def _validate_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
        raise ValueError(
            "`name` must be a non-empty str of letters, digits, '_', '.' and "
            f"'-', starting with a letter or digit. Received: name={name!r}"
        )
    return name


def _validate_version(version: Any) -> int | None:
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)):
        raise TypeError(
            "`version` must be a positive int or None. "
            f"Received: version={version!r}"
        )
    if version < 1:
        raise ValueError(
            "`version` must be a positive int or None. "
            f"Received: version={version!r}"
        )
    return int(version)


def _next_version(model_dir: Path) -> int:
    if not model_dir.is_dir():
        return 1
    versions = [
        int(entry.name) for entry in model_dir.iterdir() if entry.name.isdigit()
    ]
    return max(versions, default=0) + 1


def _signature_name(raw: str, used: set[str]) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]", "_", raw)
    if not cleaned or not cleaned[0].isalnum():
        cleaned = "x" + cleaned
    return unique_name(cleaned, used)


def _input_entries(model: keras.Model) -> tuple[list[dict], str]:
    try:
        structure = model.input
    except (AttributeError, ValueError) as error:
        raise ValueError(
            f"Model '{model.name}' has no defined input shape, so its "
            "serving signature cannot be written. Build it with "
            "`keras.Input` (Functional API), or start a Sequential model "
            f"with `keras.Input(shape=...)`. Details: {error}"
        ) from None
    if isinstance(structure, dict):
        kind, items = "dict", list(structure.items())
    elif isinstance(structure, (list, tuple)) and len(structure) != 1:
        kind, items = "list", [(t.name, t) for t in structure]
    else:
        if isinstance(structure, (list, tuple)):
            structure = structure[0]
        kind, items = "single", [(structure.name, structure)]
    used: set[str] = set()
    entries = []
    for key, tensor in items:
        if not hasattr(tensor, "shape") or not hasattr(tensor, "dtype"):
            raise ValueError(
                f"Model '{model.name}' has no defined input shape. "
                f"Received: input={structure!r}"
            )
        entries.append(
            {
                "key": key,
                "name": _signature_name(key, used),
                "shape": list(tensor.shape),
                "dtype": str(tensor.dtype),
            }
        )
    return entries, kind


def _sample_inputs(
    inputs: list[dict], sample_inputs: Any
) -> dict[str, np.ndarray]:
    names = [entry["name"] for entry in inputs]
    if sample_inputs is None:
        rng = np.random.default_rng(0)
        samples = {}
        for entry in inputs:
            dims = entry["shape"][1:]
            if any(d is None for d in dims):
                raise ValueError(
                    f"Input '{entry['name']}' has an undefined dimension "
                    f"(shape={tuple(entry['shape'])}), so sample inputs "
                    "cannot be generated for the verification and the REST "
                    "sample. Pass `sample_inputs=` with concrete arrays."
                )
            shape = (_SAMPLE_BATCH, *dims)
            dtype = np.dtype(entry["dtype"])
            if np.issubdtype(dtype, np.floating):
                array = np.round(rng.uniform(0.0, 255.0, shape))
            elif np.issubdtype(dtype, np.integer):
                array = rng.integers(0, 2, shape)
            elif dtype == np.bool_:
                array = rng.integers(0, 2, shape).astype(bool)
            else:
                raise ValueError(
                    f"Cannot generate sample data for input "
                    f"'{entry['name']}' of dtype {entry['dtype']}. Pass "
                    "`sample_inputs=`."
                )
            samples[entry["name"]] = array.astype(dtype)
        return samples

    if not isinstance(sample_inputs, dict):
        if len(inputs) != 1:
            raise ValueError(
                "The model has several inputs, so `sample_inputs` must be a "
                f"dict keyed by {names}. Received: "
                f"sample_inputs={type(sample_inputs).__name__}"
            )
        sample_inputs = {names[0]: sample_inputs}
    if sorted(sample_inputs) != sorted(names):
        raise ValueError(
            f"`sample_inputs` must have exactly the keys {names}. "
            f"Received: keys={sorted(sample_inputs)}"
        )
    samples = {}
    for entry in inputs:
        array = np.asarray(sample_inputs[entry["name"]])
        shape = entry["shape"]
        if array.ndim != len(shape) or any(
            d is not None and d != a for d, a in zip(shape[1:], array.shape[1:])
        ):
            raise ValueError(
                f"`sample_inputs['{entry['name']}']` must have shape "
                f"{tuple(shape)} (None: any size). "
                f"Received: shape={array.shape}"
            )
        samples[entry["name"]] = array.astype(entry["dtype"])
    return samples


def _model_inputs(inputs, structure, samples):
    if structure == "single":
        return samples[inputs[0]["name"]]
    if structure == "dict":
        return {entry["key"]: samples[entry["name"]] for entry in inputs}
    return [samples[entry["name"]] for entry in inputs]


def _batch_size(samples):
    return int(next(iter(samples.values())).shape[0])


def _reference_outputs(model, inputs, input_structure, samples):
    # predict() compiles the model once; an eager call on JAX dispatches op
    # by op and is ~10x slower for a MobileNet.
    result = model.predict(
        _model_inputs(inputs, input_structure, samples),
        batch_size=_batch_size(samples),
        verbose=0,
    )
    used: set[str] = set()
    if isinstance(result, dict):
        structure = "dict"
        items = list(result.items())
    elif isinstance(result, (list, tuple)):
        structure = "list"
        names = list(getattr(model, "output_names", []) or [])
        if len(names) != len(result):
            names = [f"output_{i}" for i in range(len(result))]
        items = list(zip(names, result))
    else:
        structure = "single"
        names = list(getattr(model, "output_names", []) or [])
        items = [(names[0] if len(names) == 1 else "output_0", result)]
    outputs, expected = [], {}
    for key, tensor in items:
        signature_name = _signature_name(key, used)
        outputs.append({"key": key, "name": signature_name})
        expected[signature_name] = keras.ops.convert_to_numpy(tensor)
    return expected, outputs, structure


def _is_builtin(module: str) -> bool:
    package = module.split(".", 1)[0]
    return package in {"keras", "keras_hub", "builtins"}


def _custom_classes(model: keras.Model) -> list[dict]:
    """Checks custom layers and lists the classes the worker must import."""
    for layer in [model, *nested_layers(model)]:
        cls = type(layer)
        if _is_builtin(cls.__module__):
            continue
        try:
            config = layer.get_config()
        except NotImplementedError as error:
            raise ValueError(
                f"Layer '{layer.name}' ({cls.__qualname__}) cannot be "
                "serialized: its get_config() is not implemented. Implement "
                "get_config() returning its constructor arguments and "
                "register the class with "
                "`@keras.saving.register_keras_serializable()`. "
                f"Details: {error}"
            ) from None
        if not isinstance(layer, keras.Model):
            try:
                cls.from_config(config)
            except Exception as error:
                raise ValueError(
                    f"Layer '{layer.name}' ({cls.__qualname__}) cannot be "
                    "re-created from its get_config(); make get_config() "
                    "return every constructor argument. "
                    f"Details: {type(error).__name__}: {error}"
                ) from None

    found: dict[tuple[str, str], dict] = {}

    def walk(node, layer_name):
        if isinstance(node, dict):
            config = node.get("config")
            if isinstance(config, dict) and isinstance(config.get("name"), str):
                layer_name = config["name"]
            module = node.get("module")
            class_name = node.get("class_name")
            if (
                isinstance(module, str)
                and isinstance(class_name, str)
                and not _is_builtin(module)
            ):
                attr = config if class_name == "function" else class_name
                _check_importable(module, attr, layer_name)
                found[(module, attr)] = {
                    "module": module,
                    "qualname": attr,
                    "registered_name": node.get("registered_name") or attr,
                }
            for value in node.values():
                walk(value, layer_name)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value, layer_name)

    walk(keras.saving.serialize_keras_object(model), model.name)
    return list(found.values())


def _check_importable(module: str, attr: Any, layer_name: str) -> None:
    where = f"'{attr}' from module '{module}'"
    if module == "__main__":
        raise ValueError(
            f"Layer '{layer_name}' uses {where}. The export runs in a "
            "separate TensorFlow process, which cannot import `__main__`. "
            "Move the class or function into an importable module."
        )
    try:
        obj = importlib.import_module(module)
        for part in str(attr).split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        raise ValueError(
            f"Layer '{layer_name}' uses {where}, which cannot be imported by "
            "name (a class defined inside a function, or a module that is "
            "not importable). The export runs in a separate TensorFlow "
            "process that must import it: define it at the top level of an "
            "importable module."
        ) from None


def _run_worker(command, spec, work, timeout):
    spec_path = work / f"{command}_spec.json"
    result_name = "write_result.json" if command == "write" else "actual.npz"
    spec = dict(spec, result_path=os.fspath(work / result_name))
    spec_path.write_text(json.dumps(spec))
    env = dict(os.environ)
    env["KERAS_BACKEND"] = "tensorflow"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    paths = [p or os.getcwd() for p in sys.path]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    process = subprocess.run(
        [sys.executable, _WORKER, command, os.fspath(spec_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if process.returncode != 0:
        step = "write" if command == "write" else "verification (load)"
        raise RuntimeError(
            f"The TensorFlow export process failed during {step} "
            f"(exit code {process.returncode}). Its error output ends "
            f"with:\n{process.stderr[-4000:]}"
        )
    if command == "verify":
        with np.load(spec["result_path"]) as data:
            return {key: data[key] for key in data.files}
    return json.loads(Path(spec["result_path"]).read_text())


def _compare(expected, actual, *, atol, rtol):
    if sorted(expected) != sorted(actual):
        raise RuntimeError(
            "Export verification failed: the SavedModel signature returns "
            f"outputs {sorted(actual)}, the Keras model {sorted(expected)}."
        )
    for key, want in expected.items():
        got = actual[key]
        if got.shape != want.shape:
            raise RuntimeError(
                f"Export verification failed for output '{key}': shape "
                f"{got.shape} from the SavedModel, {want.shape} from Keras."
            )
        want = want.astype(np.float64)
        got = got.astype(np.float64)
        diff = float(np.max(np.abs(got - want), initial=0.0))
        scale = float(np.max(np.abs(want), initial=0.0))
        if not diff <= atol + rtol * scale:
            raise RuntimeError(
                f"Export verification failed for output '{key}': the "
                "SavedModel and the Keras model differ by up to "
                f"{diff:.3g}, beyond atol + rtol * max|expected| = "
                f"{atol} + {rtol} * {scale:.3g}. Nothing was written to the "
                "version folder."
            )


def _write_sample_request(export_dir, inputs, samples):
    instance = {}
    for entry in inputs:
        value = samples[entry["name"]][0]
        if np.issubdtype(value.dtype, np.floating) and np.all(
            value == np.round(value)
        ):
            # Whole numbers (pixels) written as JSON integers keep the file
            # small; TF Serving accepts them for float tensors.
            value = value.astype(np.int64)
        instance[entry["name"]] = value.tolist()
    body = {"signature_name": SIGNATURE_NAME, "instances": [instance]}
    path = Path(export_dir) / SAMPLE_REQUEST
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body))


def _commit(staging: Path, version_dir: Path) -> None:
    if not version_dir.exists():
        os.rename(staging, version_dir)
        return
    retired = version_dir.parent / f".old-{version_dir.name}-{uuid.uuid4().hex}"
    os.rename(version_dir, retired)
    try:
        os.rename(staging, version_dir)
    except OSError:
        os.rename(retired, version_dir)
        raise
    shutil.rmtree(retired, ignore_errors=True)


def _blocks(text: str, start: int) -> list[tuple[int, int]]:
    """Spans of the `config { ... }` blocks inside the braces at `start`."""
    spans, depth, index, in_string = [], 0, start, False
    block_start = None
    while index < len(text):
        char = text[index]
        if in_string:
            if char == "\\":
                index += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "#":
            newline = text.find("\n", index)
            index = len(text) if newline < 0 else newline
            continue
        elif char == "{":
            depth += 1
            if depth == 2:
                head = re.search(r"config\s*:?\s*$", text[:index])
                block_start = head.start() if head else index
        elif char == "}":
            depth -= 1
            if depth == 1 and block_start is not None:
                spans.append((block_start, index + 1))
                block_start = None
            if depth == 0:
                return spans
        index += 1
    raise ValueError("unbalanced braces")


def _read_models_config(path: Path) -> list[tuple[str, str]]:
    if not path.exists():
        return []
    text = path.read_text()
    head = re.search(r"model_config_list\s*:?\s*\{", text)
    problem = None
    if head is None:
        problem = "it has no `model_config_list { ... }`"
    else:
        try:
            spans = _blocks(text, head.end() - 1)
        except ValueError as error:
            problem = str(error)
    if problem is not None:
        raise ValueError(
            f"{path} exists but cannot be read as a TF Serving "
            f"model_config_list ({problem}). Fix or move it; it was left "
            "untouched."
        )
    entries = []
    for begin, end in spans:
        block = text[begin:end]
        match = re.search(r'(?m)^\s*name\s*:\s*"([^"]*)"', block)
        entries.append((match.group(1) if match else "", block))
    return entries


def _write_models_config(path, entries, name, base_path):
    new_block = (
        "config {\n"
        f'    name: "{name}"\n'
        f'    base_path: "{base_path}"\n'
        '    model_platform: "tensorflow"\n'
        "  }"
    )
    blocks, replaced = [], False
    for entry_name, block in entries:
        if entry_name == name:
            replaced = True
            block = re.sub(
                r'base_path\s*:\s*"[^"]*"',
                lambda _: f'base_path: "{base_path}"',
                block,
                count=1,
            )
        blocks.append(block)
    if not replaced:
        blocks.append(new_block)
    text = "model_config_list {\n" + "".join(f"  {b}\n" for b in blocks) + "}\n"
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    temporary.write_text(text)
    os.replace(temporary, path)
