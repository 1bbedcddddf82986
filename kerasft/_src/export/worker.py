"""The processes behind `kerasft.export`: conversion and verification.

`tf_serving`, `onnx` and `litert` run this file as a script, in fresh
processes, whatever backend trained the model. It is not imported by the
library and imports nothing from kerasft itself, so each process only loads
what its step needs.

Usage: `python worker.py COMMAND SPEC.json`; the spec is written by
`tf_serving.py` (`_run_worker`). The commands:

- `write` (`KERAS_BACKEND=tensorflow`) loads the `.keras` file and saves a
  SavedModel whose object graph holds each variable once: a bare
  `tf.Module` tracks the `tf.Variable` behind every `keras.Variable` and one
  `tf.function` (the `serving_default` signature) calls the Keras model.
  `keras.export.ExportArchive` tracks both the `keras.Variable` wrappers and
  the `tf.Variable`s inside them, and the checkpoint then holds every
  variable twice (keras-team/keras#23553).
- `verify` loads the SavedModel with `tf.saved_model.load` only (no Keras
  objects) and runs the signature on the sample inputs.
- `onnx` and `litert` (`KERAS_BACKEND=tensorflow`) load the `.keras` file
  and write it with Keras's `model.export(format="onnx")` (tf2onnx) or
  `model.export(format="litert")` (the TFLite converter), through a
  Functional wrapper whose inputs and outputs carry the names of the
  TF Serving signature.
- `run-onnx` and `run-litert` load the file with the runtime alone
  (`onnxruntime`, or `ai_edge_litert`'s interpreter; neither imports
  TensorFlow or Keras) and run it on the sample inputs.
"""

import importlib
import json
import os
import sys


def _custom_objects(classes):
    objects = {}
    for entry in classes:
        module = importlib.import_module(entry["module"])
        obj = module
        for part in entry["qualname"].split("."):
            obj = getattr(obj, part)
        objects[entry["registered_name"]] = obj
        objects[entry["qualname"].split(".")[-1]] = obj
    return objects


def _load_model(spec):
    import keras

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            "The export worker must run with KERAS_BACKEND=tensorflow. "
            f"Received: backend={keras.backend.backend()}"
        )
    custom_objects = _custom_objects(spec["custom_classes"])
    return keras.saving.load_model(
        spec["keras_path"], custom_objects=custom_objects, compile=False
    )


def _structured(spec, tensors):
    """The model's input structure, from one tensor per signature input."""
    if spec["input_structure"] in ("single", "text"):
        return tensors[0]
    if spec["input_structure"] == "dict":
        return {
            entry["key"]: tensor
            for entry, tensor in zip(spec["inputs"], tensors)
        }
    return list(tensors)


def _flat_outputs(spec, result):
    """The model's outputs in the order of the signature outputs."""
    if spec["output_structure"] == "single":
        return [result]
    if spec["output_structure"] == "dict":
        return [result[entry["key"]] for entry in spec["outputs"]]
    return list(result)


def _write(spec):
    import keras
    import numpy as np
    import tensorflow as tf

    model = _load_model(spec)

    inputs = spec["inputs"]
    outputs = spec["outputs"]
    input_specs = [
        tf.TensorSpec(
            [None if d is None else int(d) for d in entry["shape"]],
            tf.as_dtype(entry["dtype"]),
            name=entry["name"],
        )
        for entry in inputs
    ]

    def serve(*tensors):
        x = _structured(spec, tensors)
        if spec["input_structure"] == "text":
            # A keras-hub text classifier: its preprocessor (tokenizer and
            # packer) turns the raw strings into token ids in the graph.
            x = model.preprocessor(x)
        result = model(x, training=False)
        flat = _flat_outputs(spec, result)
        return {
            entry["name"]: tf.identity(tensor, name=entry["name"])
            for entry, tensor in zip(outputs, flat)
        }

    module = tf.Module()
    # Each tf.Variable is tracked exactly once, through this list.
    module.model_variables = [v.value for v in model.variables]
    # Lookup tables (IntegerLookup, StringLookup, TextVectorization) are
    # resources, not variables; track them too (ExportArchive does the same).
    module.model_resources = [
        trackable
        for trackable in tf.train.TrackableView(model).descendants()
        if isinstance(trackable, tf.saved_model.experimental.TrackableResource)
    ]
    # One trace, shared by `loaded.serve` and the signature.
    module.serve = tf.function(serve, input_signature=input_specs)
    tf.saved_model.save(
        module,
        spec["export_dir"],
        signatures={"serving_default": module.serve},
    )
    sample = np.load(spec["sample_path"])
    result = {
        "num_variables": len(model.variables),
        "tf_version": tf.__version__,
        "keras_version": keras.__version__,
        "sample_keys": sorted(sample.files),
    }
    with open(spec["result_path"], "w") as f:
        json.dump(result, f)


def _verify(spec):
    import numpy as np
    import tensorflow as tf

    if spec["input_structure"] == "text":
        # keras-hub's tokenizers use tensorflow-text ops, which TensorFlow
        # knows once the package is imported.
        import tensorflow_text  # noqa: F401

    loaded = tf.saved_model.load(spec["export_dir"])
    signature = loaded.signatures["serving_default"]
    sample = np.load(spec["sample_path"])
    feeds = {
        entry["name"]: tf.constant(sample[entry["name"]])
        for entry in spec["inputs"]
    }
    result = signature(**feeds)
    arrays = {name: tensor.numpy() for name, tensor in result.items()}
    np.savez(spec["result_path"], **arrays)


def _named_model(spec, model):
    """A Functional model around `model` with the signature's names.

    Its inputs are `keras.Input`s named as the signature inputs, and its
    output a dict keyed by the signature output names: the ONNX and LiteRT
    converters name the file's inputs and outputs after them.
    """
    import keras

    tensors = [
        keras.Input(
            shape=tuple(entry["shape"][1:]),
            dtype=entry["dtype"],
            name=entry["name"],
        )
        for entry in spec["inputs"]
    ]
    flat = _flat_outputs(spec, model(_structured(spec, tensors)))
    outputs = {
        entry["name"]: tensor for entry, tensor in zip(spec["outputs"], flat)
    }
    inputs = tensors[0] if len(tensors) == 1 else tensors
    return keras.Model(inputs, outputs, name=model.name)


def _convert(spec, export_format):
    import numpy as np

    named = _named_model(spec, _load_model(spec))
    sample = np.load(spec["sample_path"])
    first = [sample[entry["name"]][:1] for entry in spec["inputs"]]
    # Keras exports only a model that has been called.
    named(first[0] if len(first) == 1 else first)
    options = {}
    if export_format == "onnx" and spec.get("opset") is not None:
        options["opset_version"] = spec["opset"]
    named.export(
        spec["export_path"], format=export_format, verbose=False, **options
    )
    with open(spec["result_path"], "w") as f:
        json.dump({"size": os.path.getsize(spec["export_path"])}, f)


def _run_onnx(spec):
    import numpy as np
    import onnxruntime

    session = onnxruntime.InferenceSession(
        spec["export_path"], providers=["CPUExecutionProvider"]
    )
    sample = np.load(spec["sample_path"])
    feeds = {entry["name"]: sample[entry["name"]] for entry in spec["inputs"]}
    names = [output.name for output in session.get_outputs()]
    arrays = session.run(names, feeds)
    np.savez(spec["result_path"], **dict(zip(names, arrays)))


def _run_litert(spec):
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=spec["export_path"])
    runner = interpreter.get_signature_runner("serving_default")
    sample = np.load(spec["sample_path"])
    feeds = {entry["name"]: sample[entry["name"]] for entry in spec["inputs"]}
    result = runner(**feeds)
    np.savez(spec["result_path"], **result)


_COMMANDS = {
    "write": _write,
    "verify": _verify,
    "onnx": lambda spec: _convert(spec, "onnx"),
    "litert": lambda spec: _convert(spec, "litert"),
    "run-onnx": _run_onnx,
    "run-litert": _run_litert,
}


def main(argv):
    command, spec_path = argv
    if command not in _COMMANDS:
        raise ValueError(
            f"Unknown command. Expected one of {sorted(_COMMANDS)}. "
            f"Received: command={command}"
        )
    with open(spec_path) as f:
        spec = json.load(f)
    _COMMANDS[command](spec)


if __name__ == "__main__":
    # Running by path puts this folder first on sys.path; drop it so that
    # nothing here shadows a top-level module.
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(
        os.path.abspath(__file__)
    ):
        sys.path.pop(0)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main(sys.argv[1:])
