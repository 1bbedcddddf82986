"""Export a Keras model, trained on any backend, as an ONNX or LiteRT file.

Both take the route of `tf_serving`: the model is checked and run in the
caller's process, saved as a `.keras` file, converted in a fresh process
with `KERAS_BACKEND=tensorflow` by Keras's own `model.export`, and run by
the format's runtime in another fresh process before it is moved into
place. Most of the steps are `tf_serving`'s own functions.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kerasft._src.export import serving_dir
from kerasft._src.export.tf_serving import _compare
from kerasft._src.export.tf_serving import _custom_classes
from kerasft._src.export.tf_serving import _exists
from kerasft._src.export.tf_serving import _input_entries
from kerasft._src.export.tf_serving import _load_model
from kerasft._src.export.tf_serving import _reference_outputs
from kerasft._src.export.tf_serving import _run_worker
from kerasft._src.export.tf_serving import _sample_inputs
from kerasft._src.validation import check_bool
from kerasft._src.validation import check_int
from kerasft._src.validation import check_number
from kerasft._src.validation import check_path

# Per format: the file suffix, the name in messages, the pip extra, and the
# modules the conversion (in the TensorFlow process) and the verification
# (in the runtime process) import, with their pip package names.
_FORMATS = {
    "onnx": {
        "suffix": ".onnx",
        "title": "ONNX",
        "extra": "onnx",
        "convert": {
            "tensorflow": "tensorflow",
            "tf2onnx": "tf2onnx",
            "onnx": "onnx",
        },
        "verify": {"onnxruntime": "onnxruntime"},
    },
    "litert": {
        "suffix": ".tflite",
        "title": "LiteRT",
        "extra": "litert",
        "convert": {"tensorflow": "tensorflow"},
        "verify": {"ai_edge_litert": "ai-edge-litert"},
    },
}
# The opsets tf2onnx 1.17 converts to (its `constants.OPSET_TO_IR_VERSION`
# stops at 18; below 7 it cannot express a Keras graph's placeholders).
_MIN_OPSET = 7
_MAX_OPSET = 18


def onnx(
    model: keras.Model | str | os.PathLike,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    sample_inputs: np.ndarray | dict[str, np.ndarray] | None = None,
    verify: bool = True,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    opset: int | None = None,
    timeout: float = 900.0,
) -> str:
    """Export a model as an ONNX file, checked with ONNX Runtime.

    The model can come from any backend. It is saved as a `.keras` file,
    then a separate Python process with `KERAS_BACKEND=tensorflow` loads it
    and writes the ONNX file with Keras's `model.export(format="onnx")`
    (tf2onnx). The graph's inputs are the model's raw inputs (for kerasft
    backbones 0-255 pixels: preprocessing is a layer inside the model), with
    a variable batch dimension, named as in `tf_serving`'s signature: after
    the model's `keras.Input`s, and its outputs after its output layers.

    With `verify=True` (the default), another fresh process loads the file
    with `onnxruntime` alone and runs it on the sample inputs; for every
    output, the largest absolute difference from the Keras model's outputs
    in this process must be at most `atol + rtol * max(abs(expected))`.

    The file is written next to `path` under a hidden name and moved into
    place only after verification passed, so a failure leaves an existing
    file untouched; what a killed export leaves is removed by the next
    export to the same `path`.

    Example:

    ```python
    inputs = keras.Input((16, 16, 3), name="pixels")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    model = keras.Model(inputs, outputs)
    kerasft.export.onnx(model, "tiny.onnx")
    ```

    Args:
        model: `keras.Model` or path to a `.keras` file. The model must have
            defined inputs (a Functional model, or a Sequential model that
            starts with a `keras.Input`).
        path: str or path. The file to write, ending in `.onnx`; its folder
            is created if missing.
        overwrite: bool. Whether to replace an existing file. Defaults to
            `False`.
        sample_inputs: array, dict of arrays (keyed by input name) or
            `None`. Inputs used for verification. Defaults to `None`: a
            batch of 2 drawn with a fixed seed (floats in [0, 255],
            integers in {0, 1}). Required when an input has an undefined
            dimension other than the batch dimension.
        verify: bool. Whether to run the file with `onnxruntime` in a
            separate process and compare. Defaults to `True`.
        atol: float. Absolute tolerance of the verification. Defaults to
            `1e-5`.
        rtol: float. Tolerance of the verification relative to the largest
            absolute expected output. Defaults to `1e-5`.
        opset: int or `None`. The ONNX opset, 7 to 18. Defaults to `None`:
            tf2onnx's default (15 for tf2onnx 1.17).
        timeout: float. Seconds allowed to each separate process. Defaults
            to `900.0`.

    Returns:
        The absolute path of the ONNX file, as a str.

    Raises:
        ImportError: if TensorFlow, tf2onnx or onnx (or, with `verify`,
            onnxruntime) is not installed.
        ValueError: if an argument is invalid (`path` a folder, say), the
            `.keras` file cannot be loaded, the model has no defined input
            shape, or a layer cannot be serialized or re-created in another
            process.
        FileExistsError: if `path` exists and `overwrite` is `False`.
        RuntimeError: if the conversion or the runtime process fails or
            times out, or the verification finds a mismatch.
    """
    opset = check_int(
        "opset", opset, minimum=_MIN_OPSET, maximum=_MAX_OPSET, allow_none=True
    )
    return _export_file(
        "onnx",
        model,
        path,
        overwrite=overwrite,
        sample_inputs=sample_inputs,
        verify=verify,
        atol=atol,
        rtol=rtol,
        timeout=timeout,
        options={"opset": opset},
    )


def litert(
    model: keras.Model | str | os.PathLike,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    sample_inputs: np.ndarray | dict[str, np.ndarray] | None = None,
    verify: bool = True,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    timeout: float = 900.0,
) -> str:
    """Export a model as a LiteRT (TFLite) file, checked by its interpreter.

    The model can come from any backend. It is saved as a `.keras` file,
    then a separate Python process with `KERAS_BACKEND=tensorflow` loads it
    and writes a float32 `.tflite` file with Keras's
    `model.export(format="litert")` (the TFLite converter of TensorFlow).
    Its `serving_default` signature takes the model's raw inputs (for
    kerasft backbones 0-255 pixels: preprocessing is a layer inside the
    model) under the names of `tf_serving`'s signature, and returns its
    outputs under the names of its output layers. The batch dimension is
    variable (the interpreter resizes the inputs).

    With `verify=True` (the default), another fresh process loads the file
    with the LiteRT interpreter alone (`ai_edge_litert`) and runs the
    signature on the sample inputs; for every output, the largest absolute
    difference from the Keras model's outputs in this process must be at
    most `atol + rtol * max(abs(expected))`.

    The file is written next to `path` under a hidden name and moved into
    place only after verification passed, so a failure leaves an existing
    file untouched; what a killed export leaves is removed by the next
    export to the same `path`.

    Example:

    ```python
    inputs = keras.Input((16, 16, 3), name="pixels")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    model = keras.Model(inputs, outputs)
    kerasft.export.litert(model, "tiny.tflite")
    ```

    Args:
        model: `keras.Model` or path to a `.keras` file. The model must have
            defined inputs (a Functional model, or a Sequential model that
            starts with a `keras.Input`).
        path: str or path. The file to write, ending in `.tflite`; its
            folder is created if missing.
        overwrite: bool. Whether to replace an existing file. Defaults to
            `False`.
        sample_inputs: array, dict of arrays (keyed by input name) or
            `None`. Inputs used for verification. Defaults to `None`: a
            batch of 2 drawn with a fixed seed (floats in [0, 255],
            integers in {0, 1}). Required when an input has an undefined
            dimension other than the batch dimension.
        verify: bool. Whether to run the file with the LiteRT interpreter
            in a separate process and compare. Defaults to `True`.
        atol: float. Absolute tolerance of the verification. Defaults to
            `1e-5`.
        rtol: float. Tolerance of the verification relative to the largest
            absolute expected output. Defaults to `1e-5`.
        timeout: float. Seconds allowed to each separate process. Defaults
            to `900.0`.

    Returns:
        The absolute path of the `.tflite` file, as a str.

    Raises:
        ImportError: if TensorFlow (or, with `verify`, ai-edge-litert) is
            not installed.
        ValueError: if an argument is invalid (`path` a folder, say), the
            `.keras` file cannot be loaded, the model has no defined input
            shape, or a layer cannot be serialized or re-created in another
            process.
        FileExistsError: if `path` exists and `overwrite` is `False`.
        RuntimeError: if the conversion or the interpreter process fails or
            times out, or the verification finds a mismatch.
    """
    return _export_file(
        "litert",
        model,
        path,
        overwrite=overwrite,
        sample_inputs=sample_inputs,
        verify=verify,
        atol=atol,
        rtol=rtol,
        timeout=timeout,
        options={},
    )


def _export_file(
    export_format,
    model,
    path,
    *,
    overwrite,
    sample_inputs,
    verify,
    atol,
    rtol,
    timeout,
    options,
):
    """Validates everything, then converts, verifies and commits."""
    fmt = _FORMATS[export_format]
    path = _validate_path(path, fmt["suffix"])
    check_bool("overwrite", overwrite)
    check_bool("verify", verify)
    atol = check_number("atol", atol, minimum=0)
    rtol = check_number("rtol", rtol, minimum=0)
    check_number("timeout", timeout, minimum=0, min_inclusive=False)
    _require_dependencies(fmt, verify)
    _check_free(path, overwrite)
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
        **options,
    }
    with serving_dir.staged_file(path) as staging:
        with serving_dir.work_folder() as work:
            if keras_path is None:
                keras_path = work / "model.keras"
                model.save(keras_path)
            sample_path = work / "sample.npz"
            np.savez(sample_path, **samples)
            spec.update(
                keras_path=os.fspath(keras_path),
                export_path=os.fspath(staging),
                sample_path=os.fspath(sample_path),
            )
            _run_worker(export_format, spec, work, timeout)
            if verify:
                actual = _run_worker(
                    f"run-{export_format}", spec, work, timeout
                )
                _compare(
                    expected,
                    actual,
                    atol=atol,
                    rtol=rtol,
                    artifact=f"{fmt['title']} file",
                    untouched=f"Nothing was written to {path}.",
                )
        try:
            serving_dir.commit_file(staging, path, overwrite)
        except FileExistsError:
            # Another export created the file since the check above.
            _check_free(path, overwrite)
            raise
    return os.fspath(path)


def _validate_path(path: Any, suffix: str) -> Path:
    """The absolute file path, once it is known to be writable.

    Checked before anything is written: the suffix, the nearest existing
    folder above it is a folder, and the path itself is not a folder.
    """
    raw = check_path("path", path)
    received = f"Received: path={raw!r}"
    resolved = Path(raw).resolve()
    if resolved.suffix != suffix:
        raise ValueError(f"`path` must end with '{suffix}'. {received}")
    if _exists(resolved) and resolved.is_dir():
        raise ValueError(f"`path` must be a file, not a folder. {received}")
    existing = resolved.parent
    while not _exists(existing):
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(
            f"`path` must be in a folder, or where one can be created, but "
            f"{existing} is a file. {received}"
        )
    return resolved


def _check_free(path: Path, overwrite: bool) -> None:
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(
            f"{path} already exists. Pass `overwrite=True` to replace it, or "
            f"choose another `path`. Received: path={os.fspath(path)!r}, "
            f"overwrite={overwrite}"
        )


def _require_dependencies(fmt: dict, verify: bool) -> None:
    needed = dict(fmt["convert"])
    if verify:
        needed.update(fmt["verify"])
    missing = [
        package
        for module, package in needed.items()
        if importlib.util.find_spec(module) is None
    ]
    if missing:
        raise ImportError(
            f"Exporting to {fmt['title']} needs {' and '.join(missing)}, "
            "not installed. Install it with: "
            f'pip install "kerasft[{fmt["extra"]}]"'
        )
