"""Train on any backend, export for TF Serving, and call the SavedModel.

A small CNN is trained on Fashion-MNIST under the current backend (JAX,
PyTorch or TensorFlow), then `kerasft.export.tf_serving` writes it as a
versioned SavedModel (`serving/fashion/1/`) with a `serving_default`
signature that takes raw 0-255 pixels, plus `serving/models.config`. The
export runs in a separate TensorFlow process and is verified there. This
script then loads the SavedModel with TensorFlow alone, as a server would,
prints its signature (what `saved_model_cli show` prints) and checks that
calling the signature gives the Keras model's predictions.

Serving it (not run here):

    docker run -p 8501:8501 -p 8500:8500 \\
        -v "$PWD/serving:/models" tensorflow/serving \\
        --model_config_file=/models/models.config

(export with `config_base_path="/models"` so `models.config` names the
container's paths). A REST request, with one image per instance, keyed by
the signature's input name:

    POST http://localhost:8501/v1/models/fashion:predict
    {"signature_name": "serving_default",
     "instances": [{"pixels": [[[0.0], [12.0], ...], ...]}]}
    -> {"predictions": [[0.01, 0.002, ..., 0.93]]}

`serving/fashion/1/assets.extra/sample_request.json` holds such a body.
With gRPC (`tensorflow-serving-api`):

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "fashion"
    request.model_spec.signature_name = "serving_default"
    request.inputs["pixels"].CopyFrom(tf.make_tensor_proto(images))
    response = stub.Predict(request, 10.0)  # PredictionServiceStub
    probs = tf.make_ndarray(response.outputs["probs"])

Data: the Fashion-MNIST subset that ships with kerasft (Zalando Research,
MIT). Run from the repository root:

    python examples/export_and_serve.py                   # about a minute
    python examples/export_and_serve.py --backend torch   # or jax
    python examples/export_and_serve.py --base-dir /tmp/serving
    python examples/export_and_serve.py --smoke
"""

import argparse
import json
import os
import sys
import tempfile
import time


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend",
        choices=("tensorflow", "jax", "torch"),
        help="Keras backend (default: $KERAS_BACKEND or Keras's config)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny run (few images, 1 epoch) to check that everything works",
    )
    parser.add_argument(
        "--base-dir",
        default=None,
        help="TF Serving base directory (default: a new temporary one)",
    )
    parser.add_argument("--name", default="fashion", help="model name")
    parser.add_argument(
        "--train-size",
        type=int,
        default=3000,
        help="training images used (at most 3000)",
    )
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)
    if not 1 <= args.train_size <= 3000:
        parser.error(
            f"--train-size must be in [1, 3000]. Received: {args.train_size}"
        )
    if args.smoke:
        args.train_size = 256
        args.epochs = 1
    return args


def build_model(num_classes):
    """A small CNN on raw 0-255 pixels, with named input and output."""
    import keras

    inputs = keras.Input((28, 28, 1), name="pixels")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(16, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", name="probs"
    )(x)
    return keras.Model(inputs, outputs, name="fashion_cnn")


def main(argv=None):
    args = parse_args(argv)
    if args.backend:
        # Must be set before Keras is imported.
        os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    try:
        import kerasft
    except ImportError:  # Running from a source checkout, not installed.
        sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
        import kerasft
    import keras
    import numpy as np

    from kerasft import assets

    start = time.perf_counter()
    backend = keras.backend.backend()
    print(f"Keras {keras.__version__}, backend {backend}")
    keras.utils.set_random_seed(0)

    # 1. Train under the current backend.
    (x_train, y_train), (x_test, y_test), class_names = (
        assets.load_fashion_mnist_subset()
    )
    x_train = x_train[: args.train_size, :, :, None].astype("float32")
    y_train = y_train[: args.train_size]
    x_test = x_test[:, :, :, None].astype("float32")
    model = build_model(len(class_names))
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, batch_size=64, epochs=args.epochs, verbose=2)
    _, accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    print(f"test accuracy ({backend}): {accuracy:.3f}")

    # 2. Export: a TensorFlow process writes and verifies the SavedModel.
    base_dir = args.base_dir or tempfile.mkdtemp(prefix="serving-")
    version_dir = kerasft.export.tf_serving(
        model,
        base_dir,
        args.name,
        overwrite=True,
        version=1,
        sample_inputs={"pixels": x_test[:2]},
    )
    print(f"exported to {version_dir}")
    with open(os.path.join(base_dir, "models.config")) as f:
        print("models.config:\n" + f.read())
    sample = os.path.join(version_dir, "assets.extra", "sample_request.json")
    with open(sample) as f:
        body = json.load(f)
    print(
        "sample REST body: keys",
        sorted(body),
        "with",
        len(body["instances"]),
        "instances",
    )

    # 3. Load it with TensorFlow alone, as TF Serving does, and call the
    #    serving signature. TensorFlow can share the process with JAX or
    #    torch; it is imported only here.
    import tensorflow as tf

    loaded = tf.saved_model.load(version_dir)
    signature = loaded.signatures["serving_default"]
    # What `saved_model_cli show --dir DIR --tag_set serve
    # --signature_def serving_default` prints, in short:
    _, input_specs = signature.structured_input_signature
    for key, spec in input_specs.items():
        print(f"  input  {key}: {spec.dtype.name} {spec.shape}")
    for key, spec in signature.structured_outputs.items():
        print(f"  output {key}: {spec.dtype.name} {spec.shape}")

    batch = x_test[:16]
    served = signature(pixels=tf.constant(batch))["probs"].numpy()
    expected = model.predict(batch, verbose=0)
    np.testing.assert_allclose(served, expected, rtol=1e-4, atol=1e-5)
    agree = (served.argmax(-1) == expected.argmax(-1)).mean()
    print(
        f"serving_default on {len(batch)} images matches the Keras model "
        f"trained on {backend} (max difference "
        f"{np.abs(served - expected).max():.1e}, classes agree {agree:.0%})"
    )
    print(f"total {time.perf_counter() - start:.0f} s")
    return accuracy


if __name__ == "__main__":
    main()
