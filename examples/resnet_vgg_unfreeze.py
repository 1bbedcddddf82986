"""Gradual unfreezing of VGG16 or ResNet50 inside one fit, on any backend.

A pretrained convolutional backbone gets a new head. `kerasft.freeze_until`
freezes everything below the head, then one `model.fit` call with
`kerasft.callbacks.UnfreezeSchedule.gradual` thaws one more stage from the
top every epoch (head, then `block5`, then `block4` for VGG16; head,
`conv5`, `conv4` for ResNet50). At each change the callback rebuilds the
optimizer for the new trainable set, keeping Adam's moments, and Keras
continues the same `fit`. `kerasft.summary` before and after shows what
trains; the script checks that the stages the schedule never reached are
bit-identical after training.

Weights (offline): VGG16 uses the convolution stack of the HED edge
detector (fine-tuned from ImageNet VGG16; `python -m kerasft.assets --only
vgg16_hed`, run here when missing). No ResNet50 ImageNet weights exist
offline, so `--arch resnet50` trains from random weights unless you pass
`--weights PATH` (a keras.applications `.h5` file). Data: the Fashion-MNIST
subset that ships with kerasft (Zalando Research, MIT).

Run from the repository root:

    python examples/resnet_vgg_unfreeze.py                    # VGG16 (HED)
    python examples/resnet_vgg_unfreeze.py --arch resnet50    # random init
    python examples/resnet_vgg_unfreeze.py --backend torch    # or jax
    python examples/resnet_vgg_unfreeze.py --smoke            # tiny

Measured with the defaults on TensorFlow (VGG16 with the HED weights,
1,000 training images at 48x48, 3 epochs: head, + block5, + block4; 2
shared CPU cores): test accuracy 0.559 on the 1,000 test images, 152 s.
The trainable parameters go 5,130 -> 7,084,554 -> 12,984,330 inside the
one `fit`. The HED weights were tuned for edge detection and give large,
unnormalized features (the first epoch's loss is high), so they transfer
much worse than ImageNet weights: for accuracy, see
`examples/mobilenet_strategies.py`; the point here is the mechanism.
"""

import argparse
import os
import sys
import time
import warnings

# --arch: the kerasft backbone.
ARCHS = {"vgg16": "VGG16", "resnet50": "ResNet50"}


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
        help="tiny run (random weights, 32 px, few images, one epoch per "
        "phase) to check that everything works",
    )
    parser.add_argument("--arch", choices=tuple(ARCHS), default="vgg16")
    parser.add_argument(
        "--weights",
        default=None,
        help="weights file for the backbone (default: the offline HED "
        "weights for vgg16, random for resnet50)",
    )
    parser.add_argument(
        "--image-size", type=int, default=48, help="input size in pixels"
    )
    parser.add_argument(
        "--train-size",
        type=int,
        default=1000,
        help="training images used (at most 3000)",
    )
    parser.add_argument(
        "--stages",
        type=int,
        default=3,
        help="stages that train at the end, counted from the head",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    args = parser.parse_args(argv)
    if args.image_size < 32:
        parser.error(
            f"--image-size must be at least 32. Received: {args.image_size}"
        )
    if not 1 <= args.train_size <= 3000:
        parser.error(
            f"--train-size must be in [1, 3000]. Received: {args.train_size}"
        )
    if args.stages < 1:
        parser.error(f"--stages must be at least 1. Received: {args.stages}")
    if args.smoke:
        args.image_size = 32
        args.train_size = 64
        args.stages = 2
        args.batch_size = 32
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

    # 1. Weights: the offline VGG16 conv stack, a file, or random.
    weights = args.weights
    if weights is None and args.arch == "vgg16" and not args.smoke:
        if not assets.is_provisioned("vgg16_hed"):
            print("Provisioning the VGG16 (HED) weights offline.")
            assets.provision(["vgg16_hed"])
        weights = assets.vgg16_hed_path()
    print(f"{args.arch} weights: {weights or 'random'}")

    # 2. Data: 28x28 grayscale -> RGB at the backbone's input size, 0-255.
    (x_train, y_train), (x_test, y_test), class_names = (
        assets.load_fashion_mnist_subset()
    )
    x_train, y_train = x_train[: args.train_size], y_train[: args.train_size]
    if args.smoke:
        x_test, y_test = x_test[:64], y_test[:64]
    x_train = to_rgb(x_train, args.image_size)
    x_test = to_rgb(x_test, args.image_size)

    # 3. Backbone (preprocessing inside: it takes raw pixels) + new head.
    warnings.filterwarnings("ignore", message="`input_shape` is undefined")
    family = ARCHS[args.arch]
    backbone = getattr(kerasft.backbones, family)(
        weights=weights, input_shape=(args.image_size, args.image_size, 3)
    )
    model = kerasft.build_classifier(
        backbone, num_classes=len(class_names), dropout=0.2
    )
    names = [s.name for s in kerasft.stages(model)]
    print("stages:", names)

    # 4. Start with the head only, then thaw one stage per epoch from the
    #    top: epoch 0 head, epoch 1 + the last backbone stage, ...
    kerasft.freeze_until(model, "head", inclusive=False)
    kerasft.summary(model)
    schedule = kerasft.callbacks.UnfreezeSchedule.gradual(
        every=1, stages=args.stages, verbose=1
    )
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    never_thawed = names[: len(names) - args.stages]
    before = {
        name: [
            keras.ops.convert_to_numpy(v) for v in stage_variables(model, name)
        ]
        for name in never_thawed
    }
    history = model.fit(
        x_train,
        y_train,
        batch_size=args.batch_size,
        epochs=args.stages,
        callbacks=[schedule],
        verbose=2,
    )
    print("trainable params per epoch:", history.history["trainable_params"])
    kerasft.summary(model)

    # 5. What the schedule never reached did not move.
    for name, values in before.items():
        for old, v in zip(values, stage_variables(model, name)):
            np.testing.assert_array_equal(old, keras.ops.convert_to_numpy(v))
    print(f"stages never thawed are unchanged: {never_thawed}")

    _, accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    total = time.perf_counter() - start
    print(
        f"\nResult ({keras.backend.backend()}, {args.arch}): test accuracy "
        f"{accuracy:.3f} after {args.stages} epochs of gradual unfreezing; "
        f"total {total:.0f} s"
    )
    return accuracy


def stage_variables(model, name):
    """The variables of one stage, as `keras.Variable`s."""
    import kerasft

    (stage,) = kerasft.resolve_stages(model, name)
    return stage.variables


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
