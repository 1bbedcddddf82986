"""Feature fusion: two ImageNet backbones, one gated head, on any backend.

Two pretrained backbones look at the same raw image; their pooled features
are fused by a learned gate and classified by one linear layer. The script
trains the fusion layer and the head on frozen features (a linear probe on
both backbones at once), reports test accuracy, prints the average gate of
each branch (how much the trained head relies on each backbone), then
saves the model to `.keras`, loads it back and checks the predictions.

Backbones: MobileNet v1 (Google's ImageNet weights) and the VGG16
convolution stack of the HED edge detector (fine-tuned from ImageNet VGG16),
both provisioned offline by `python -m kerasft.assets` (this script runs it
when they are missing). Each backbone carries its own preprocessing, so the
model takes raw 0-255 pixels. Data: the Fashion-MNIST subset that ships
with kerasft (Zalando Research, MIT).

Run from the repository root:

    python examples/fusion.py                       # a few minutes on CPU
    python examples/fusion.py --backend jax         # or tensorflow, torch
    python examples/fusion.py --mode attention      # mean, max, concat, ...
    python examples/fusion.py --smoke               # random weights, tiny
"""

import argparse
import os
import sys
import tempfile
import time
import warnings

MODES = ("mean", "max", "concat", "gated", "attention")


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
        help="tiny run (random weights, 32 px, few images, 1 epoch) to "
        "check that everything works",
    )
    parser.add_argument("--mode", choices=MODES, default="gated")
    parser.add_argument(
        "--units", type=int, default=256, help="common width of the fusion"
    )
    parser.add_argument(
        "--image-size", type=int, default=64, help="input size in pixels"
    )
    parser.add_argument(
        "--train-size",
        type=int,
        default=2000,
        help="training images used (at most 3000)",
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    if args.smoke:
        args.image_size = 32
        args.train_size = 128
        args.epochs = 1
        args.units = 32
    return args


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
    print(f"Keras {keras.__version__}, backend {keras.backend.backend()}")
    keras.utils.set_random_seed(0)

    # 1. Weights: real ImageNet-derived weights, or random ones in --smoke.
    if args.smoke:
        mobilenet_weights = vgg_weights = None
    else:
        missing = [
            name
            for name in ("mobilenet_v1", "vgg16_hed")
            if not assets.is_provisioned(name)
        ]
        if missing:
            print(f"Provisioning offline weights: {missing}")
            assets.provision(missing)
        mobilenet_weights = "imagenet"
        vgg_weights = assets.vgg16_hed_path()

    # 2. Data: 28x28 grayscale -> RGB at the backbones' input size, 0-255.
    (x_train, y_train), (x_test, y_test), class_names = (
        assets.load_fashion_mnist_subset()
    )
    x_train, y_train = x_train[: args.train_size], y_train[: args.train_size]
    if args.smoke:
        x_test, y_test = x_test[:64], y_test[:64]
    x_train = to_rgb(x_train, args.image_size)
    x_test = to_rgb(x_test, args.image_size)
    print(
        f"Fashion-MNIST subset: {len(x_train)} train / {len(x_test)} test "
        f"images at {args.image_size}x{args.image_size}"
    )

    # 3. Two backbones on the same raw input, fused, one linear head.
    warnings.filterwarnings("ignore", message="`input_shape` is undefined")
    shape = (args.image_size, args.image_size, 3)
    mobilenet = kerasft.backbones.MobileNet(
        weights=mobilenet_weights, input_shape=shape
    )
    vgg = kerasft.backbones.VGG16(weights=vgg_weights, input_shape=shape)
    model = kerasft.build_fusion_model(
        [mobilenet, vgg],
        fusion=args.mode,
        units=args.units,
        num_classes=len(class_names),
        dropout=0.2,
    )
    print("stages:", [s.name for s in kerasft.stages(model)])

    # 4. Linear probe on both backbones: freeze them, train fusion + head.
    kerasft.freeze(model, ["mobilenet", "vgg16"])
    kerasft.summary(model)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(
        x_train,
        y_train,
        batch_size=args.batch_size,
        epochs=args.epochs,
        verbose=2,
    )
    _, accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    print(f"fused linear probe ({args.mode}): test accuracy {accuracy:.3f}")

    # 5. Gates: the share of each branch in the fused vector, per image.
    if args.mode in ("gated", "attention"):
        gates = kerasft.fusion_gates(model, x_test, batch_size=256)
        for name, share in zip(("mobilenet", "vgg16"), gates.mean(axis=0)):
            print(f"mean gate of {name}: {share:.3f}")

    # 6. The fused model saves and loads like any Keras model.
    path = os.path.join(tempfile.mkdtemp(), "fusion.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    sample = x_test[:8]
    np.testing.assert_allclose(
        restored.predict(sample, verbose=0),
        model.predict(sample, verbose=0),
        rtol=1e-5,
        atol=1e-6,
    )
    print(f"saved and reloaded {path}: identical predictions")
    print(f"total {time.perf_counter() - start:.0f} s")
    return accuracy


def to_rgb(images, size):
    """Resizes (n, 28, 28) uint8 images to (n, size, size, 3) float32."""
    import keras
    import numpy as np

    batches = []
    for i in range(0, len(images), 500):
        batch = images[i : i + 500, :, :, None].astype("float32")
        resized = keras.ops.image.resize(batch, (size, size))
        batches.append(keras.ops.convert_to_numpy(resized))
    gray = np.clip(np.concatenate(batches), 0.0, 255.0)
    return np.repeat(gray, 3, axis=-1)


if __name__ == "__main__":
    main()
