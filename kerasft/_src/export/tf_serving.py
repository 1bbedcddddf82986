"""Export a Keras model, trained on any backend, as a TF Serving SavedModel."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kerasft._src.export import serving_dir
from kerasft._src.export.serving_dir import MODELS_CONFIG
from kerasft._src.model_files import load_model_file
from kerasft._src.naming import unique_name
from kerasft._src.validation import check_bool
from kerasft._src.validation import check_number
from kerasft._src.validation import check_path
from kerasft._src.walk import nested_layers

PIP_COMMAND = 'pip install "kerasft[tensorflow]"'
SIGNATURE_NAME = "serving_default"
SAMPLE_REQUEST = os.path.join("assets.extra", "sample_request.json")

_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
# The longest folder name most file systems allow (ext4, XFS, APFS, NTFS),
# also assumed for a file system that does not say.
_MAX_NAME_LENGTH = 255
_SAMPLE_BATCH = 2
# The signature input of a model that takes raw text (`takes_raw_text`).
TEXT_INPUT = {"key": "text", "name": "text", "shape": [None], "dtype": "string"}
_SAMPLE_TEXTS = ("a short sample text", "another sample, a little longer")


def takes_raw_text(model: keras.Model) -> bool:
    """Whether `model` is a keras-hub text classifier with a preprocessor.

    Its TF Serving signature then takes raw strings: the preprocessor
    (tokenizer and packer) runs inside the SavedModel.
    """
    keras_hub = sys.modules.get("keras_hub")
    return (
        keras_hub is not None
        and isinstance(model, keras_hub.models.TextClassifier)
        and model.preprocessor is not None
    )


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
    names of its output layers, or under the keys of its output dict. A
    keras-hub text classifier that carries its preprocessor
    (`keras_hub.models.TextClassifier` with `preprocessor` set) gets a
    signature that takes raw strings instead: one input `text`, a 1-D
    `tf.string` tensor, tokenized inside the SavedModel. keras-hub's
    tokenizers use tensorflow-text ops: load the export in Python after
    `import tensorflow_text`; the stock TF Serving image lacks them.

    Next to the SavedModel, the function writes
    `assets.extra/sample_request.json` (a REST body in the
    `{"instances": ...}` form; TF Serving ignores `assets.extra`) and
    creates or updates `base_dir/models.config` (a `model_config_list`,
    read and written with TF Serving's own schema), keeping the entries of
    other models and the fields kerasft does not set.

    Everything is written to a hidden staging folder inside `base_dir/name`
    and renamed into place only after verification passed, so a failure
    leaves existing versions untouched. Exports into one `base_dir` may run
    at the same time, in any processes: a lock file
    (`base_dir/.models.config.lock`) orders their updates of
    `models.config`, which is replaced atomically, so every entry is kept.
    What a killed export leaves (its staging folder, its work folder in the
    temporary directory) is removed by the next export of the same name
    once provably stale.

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
            with a letter or digit; at most 255 characters.
        version: int or `None`. The version folder. Defaults to `None`: one
            more than the highest existing version, or 1.
        overwrite: bool. Whether to replace an existing version folder.
            Defaults to `False`.
        sample_inputs: array, dict of arrays (keyed by signature input name)
            or `None`. Inputs used for verification and for the REST sample.
            Defaults to `None`: a batch of 2 drawn with a fixed seed
            (floats in [0, 255], integers in {0, 1}; two sentences for a
            model that takes raw text, whose samples are a list of str).
            Required when an input has an undefined dimension other than
            the batch dimension.
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
        timeout: float. Seconds allowed to each TensorFlow process, and to
            waiting for the lock of `base_dir`. Defaults to `900.0`.

    Returns:
        The absolute path of the version folder, as a str.

    Raises:
        ImportError: if TensorFlow or tensorflow-serving-api is not
            installed.
        ValueError: if an argument is invalid (`base_dir` a file, say), the
            `.keras` file cannot be loaded, the model has no defined input
            shape, a layer cannot be serialized or re-created in another
            process, or `models.config` exists but TF Serving would refuse
            it (the message gives the line and column).
        FileExistsError: if the version folder exists and `overwrite` is
            `False`.
        RuntimeError: if the TensorFlow process fails or times out, the
            lock of `base_dir` is not acquired within `timeout`, or the
            verification finds a mismatch.
    """
    _require_dependencies()
    name = _validate_name(name)
    version = _validate_version(version)
    base_dir = _validate_base_dir(base_dir, name)
    check_bool("overwrite", overwrite)
    check_bool("verify", verify)
    if config_base_path is not None:
        config_base_path = check_path("config_base_path", config_base_path)
    check_number("timeout", timeout, minimum=0, min_inclusive=False)
    atol = check_number("atol", atol, minimum=0)
    rtol = check_number("rtol", rtol, minimum=0)
    model, keras_path = _load_model(model)

    if takes_raw_text(model):
        inputs, input_structure = [dict(TEXT_INPUT)], "text"
    else:
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
    # Refuse a file TF Serving would reject before any work; it is read
    # again under the lock when the entry is written.
    serving_dir.read_models_config(config_path)
    if version is not None:
        _check_version_free(model_dir / str(version), overwrite)
    if config_base_path is None:
        base_path = os.fspath(model_dir)
    else:
        base_path = config_base_path.rstrip("/") + "/" + name

    with serving_dir.staging_folder(
        base_dir, model_dir, version or _next_version(model_dir), timeout
    ) as staging:
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
        with serving_dir.locked(base_dir, timeout):
            if version is None:
                # Another export of this model may have taken the number
                # chosen above; the SavedModel does not record it.
                version_dir = model_dir / str(_next_version(model_dir))
            else:
                version_dir = model_dir / str(version)
                _check_version_free(version_dir, overwrite)
            serving_dir.commit(staging, version_dir)
            serving_dir.update_models_config(config_path, name, base_path)
    return os.fspath(version_dir)


def _check_version_free(version_dir: Path, overwrite: bool) -> None:
    if version_dir.exists() and not overwrite:
        version = version_dir.name
        raise FileExistsError(
            f"Version {version} of model '{version_dir.parent.name}' already "
            f"exists at {version_dir}. Pass `overwrite=True` to replace it, "
            "or choose another `version` (the default picks the next free "
            f"integer). Received: version={version}, overwrite={overwrite}"
        )


def _load_model(model):
    """The model to export and its `.keras` file, when it came as one."""
    if isinstance(model, (str, os.PathLike)):
        keras_path = Path(model)
        if keras_path.suffix != ".keras" or not keras_path.is_file():
            raise ValueError(
                "`model` must be a keras.Model or the path of an existing "
                f".keras file. Received: model={os.fspath(model)!r}"
            )
        return load_model_file(keras_path), keras_path
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
    with serving_dir.work_folder() as work:
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


def _require_dependencies() -> None:
    needed = {
        "tensorflow": "TensorFlow",
        # models.config is read and written with TF Serving's schema.
        "tensorflow_serving": "tensorflow-serving-api",
    }
    missing = [
        package
        for module, package in needed.items()
        if importlib.util.find_spec(module) is None
    ]
    if missing:
        raise ImportError(
            f"Exporting for TF Serving needs {' and '.join(missing)}, not "
            f"installed. Install it with: {PIP_COMMAND}"
        )


def _validate_name(name: Any) -> str:
    if (
        not isinstance(name, str)
        or not _NAME_PATTERN.fullmatch(name)
        or len(name) > _MAX_NAME_LENGTH
    ):
        shown = repr(name)
        if len(shown) > 80:
            shown = f"{shown[:60]}... ({len(name)} characters)"
        raise ValueError(
            f"`name` must be a non-empty str of at most {_MAX_NAME_LENGTH} "
            "letters, digits, '_', '.' and '-', starting with a letter or "
            f"digit. Received: name={shown}"
        )
    return name


def _exists(path: Path) -> bool:
    """Like `Path.exists`, but False for a name too long to look up."""
    try:
        path.stat()
    except (OSError, ValueError):
        return False
    return True


def _validate_base_dir(base_dir: Any, name: str) -> Path:
    """The absolute base directory, once it is known to be usable.

    Checked before anything is written: the nearest existing folder above
    it is a folder, every folder still to create has a name the file system
    accepts, and `NAME` and `models.config` inside it, if they exist, are a
    folder and a file.
    """
    raw = check_path("base_dir", base_dir)
    path = Path(raw).resolve()
    received = f"Received: base_dir={raw!r}"
    existing = path
    while not _exists(existing):
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(
            f"`base_dir` must be a folder, or a path where one can be "
            f"created, but {existing} is a file. {received}"
        )
    try:
        name_max = os.pathconf(existing, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):
        name_max = _MAX_NAME_LENGTH
    for part in path.relative_to(existing).parts:
        if len(os.fsencode(part)) > name_max:
            raise ValueError(
                f"`base_dir` has a folder name longer than {name_max} "
                f"bytes, the limit of the file system. {received}"
            )
    for entry, is_kind, kind in (
        (path / name, Path.is_dir, "a folder"),
        (path / MODELS_CONFIG, Path.is_file, "a file"),
    ):
        if _exists(entry) and not is_kind(entry):
            raise ValueError(
                f"{entry} must be {kind} (or not exist), and it is not. "
                f"{received}, name={name!r}"
            )
    return path


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
            if entry["dtype"] == "string":
                samples[entry["name"]] = np.asarray(_SAMPLE_TEXTS)
                continue
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
        if entry["dtype"] == "string":
            samples[entry["name"]] = _sample_texts(array)
            continue
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


def _sample_texts(array):
    """Sample inputs of a raw-text signature: a 1-D array of str."""
    if array.ndim != 1 or not all(isinstance(t, str) for t in array):
        raise ValueError(
            "`sample_inputs` of a model that takes raw text must be a list "
            f"of str. Received: sample_inputs={array.tolist()!r}"
        )
    return array.astype(str)


def _model_inputs(inputs, structure, samples):
    if structure in ("single", "text"):
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


# What each worker command does, for messages: its step and the process.
_TF_PROCESS = "The TensorFlow export process"
_STEPS = {
    "write": ("write", _TF_PROCESS),
    "verify": ("verification (load)", _TF_PROCESS),
    "onnx": ("ONNX conversion", _TF_PROCESS),
    "litert": ("LiteRT conversion", _TF_PROCESS),
    "run-onnx": ("verification", "The onnxruntime process"),
    "run-litert": ("verification", "The LiteRT interpreter process"),
}
# Commands whose result is the outputs on the sample inputs (an .npz).
_RUN_COMMANDS = ("verify", "run-onnx", "run-litert")


def _run_worker(command, spec, work, timeout):
    """Runs `worker.py COMMAND` in a fresh process; returns its result.

    The result is a dict of outputs for the commands that run the export
    on the sample inputs, and the JSON the worker wrote otherwise.
    """
    step, process_name = _STEPS[command]
    runs = command in _RUN_COMMANDS
    spec_path = work / f"{command}_spec.json"
    result_name = f"{command}_actual.npz" if runs else f"{command}_result.json"
    spec = dict(spec, result_path=os.fspath(work / result_name))
    spec_path.write_text(json.dumps(spec))
    env = dict(os.environ)
    env["KERAS_BACKEND"] = "tensorflow"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    paths = [p or os.getcwd() for p in sys.path]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    try:
        process = subprocess.run(
            [sys.executable, _WORKER, command, os.fspath(spec_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(
            f"{process_name} did not finish its {step} "
            f"within timeout={timeout} s, and was stopped."
        ) from None
    if process.returncode != 0:
        raise RuntimeError(
            f"{process_name} failed during {step} "
            f"(exit code {process.returncode}). Its error output ends "
            f"with:\n{process.stderr[-4000:]}"
        )
    if runs:
        with np.load(spec["result_path"]) as data:
            return {key: data[key] for key in data.files}
    return json.loads(Path(spec["result_path"]).read_text())


def _compare(
    expected,
    actual,
    *,
    atol,
    rtol,
    artifact="SavedModel",
    untouched="Nothing was written to the version folder.",
):
    """Raises `RuntimeError` unless `actual` matches `expected` within
    `atol + rtol * max|expected|` for every output."""
    if sorted(expected) != sorted(actual):
        raise RuntimeError(
            f"Export verification failed: the {artifact} returns "
            f"outputs {sorted(actual)}, the Keras model {sorted(expected)}."
        )
    for key, want in expected.items():
        got = actual[key]
        if got.shape != want.shape:
            raise RuntimeError(
                f"Export verification failed for output '{key}': shape "
                f"{got.shape} from the {artifact}, {want.shape} from Keras."
            )
        want = want.astype(np.float64)
        got = got.astype(np.float64)
        diff = float(np.max(np.abs(got - want), initial=0.0))
        scale = float(np.max(np.abs(want), initial=0.0))
        if not diff <= atol + rtol * scale:
            raise RuntimeError(
                f"Export verification failed for output '{key}': the "
                f"{artifact} and the Keras model differ by up to "
                f"{diff:.3g}, beyond atol + rtol * max|expected| = "
                f"{atol} + {rtol} * {scale:.3g}. {untouched}"
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
