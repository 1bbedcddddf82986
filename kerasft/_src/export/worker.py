"""TensorFlow-side half of `kerasft.export.tf_serving`.

`tf_serving` runs this file as a script, in a fresh process with
`KERAS_BACKEND=tensorflow`, whatever backend trained the model. It is not
imported by the library and imports nothing from kerasft itself, so the
process only loads what the saved model needs.

Usage: `python _worker.py write SPEC.json` or `python _worker.py verify
SPEC.json`. The spec is written by `tf_serving.py`; see `_write_spec` there.

`write` loads the `.keras` file and saves a SavedModel whose object graph
holds each variable once: a bare `tf.Module` tracks the `tf.Variable` behind
every `keras.Variable` and one `tf.function` (the `serving_default`
signature) calls the Keras model. `keras.export.ExportArchive` tracks both
the `keras.Variable` wrappers and the `tf.Variable`s inside them, and the
checkpoint then holds every variable twice (keras-team/keras#23553).

`verify` loads the SavedModel with `tf.saved_model.load` only (no Keras
objects) and runs the signature on the sample inputs.
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


def _write(spec):
    import keras
    import numpy as np
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            "The export worker must run with KERAS_BACKEND=tensorflow. "
            f"Received: backend={keras.backend.backend()}"
        )
    custom_objects = _custom_objects(spec["custom_classes"])
    model = keras.saving.load_model(
        spec["keras_path"], custom_objects=custom_objects, compile=False
    )

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
        if spec["input_structure"] == "single":
            model_inputs = tensors[0]
        elif spec["input_structure"] == "dict":
            model_inputs = {
                entry["key"]: tensor for entry, tensor in zip(inputs, tensors)
            }
        else:
            model_inputs = list(tensors)
        result = model(model_inputs, training=False)
        if spec["output_structure"] == "single":
            flat = [result]
        elif spec["output_structure"] == "dict":
            flat = [result[entry["key"]] for entry in outputs]
        else:
            flat = list(result)
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


def main(argv):
    command, spec_path = argv
    with open(spec_path) as f:
        spec = json.load(f)
    if command == "write":
        _write(spec)
    elif command == "verify":
        _verify(spec)
    else:
        raise ValueError(
            "Unknown command. Expected 'write' or 'verify'. "
            f"Received: command={command}"
        )


if __name__ == "__main__":
    # Running by path puts this folder first on sys.path; drop it so that
    # nothing here shadows a top-level module.
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(
        os.path.abspath(__file__)
    ):
        sys.path.pop(0)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main(sys.argv[1:])
