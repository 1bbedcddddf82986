"""The fine-tuning toolkit in one run: LR finder, MixUp, EMA, WiSE-FT, TTA.

ImageNet MobileNet on the Fashion-MNIST subset that ships with kerasft, on
any backend:

1. `kerasft.lr_find` picks the probe's learning rate (and plots the range
   test to `lr_find.png`);
2. a linear probe trains the head at that rate;
3. fine-tuning runs inside one `fit`: an `UnfreezeSchedule` adds the top
   backbone stage, the batches are mixed (`kerasft.augment.mix`, MixUp or
   CutMix per batch) except in the last epoch (`kerasft.augment.MixOff`),
   and `kerasft.callbacks.EMA` keeps an average of the weights, which the
   validation uses and which the model holds at the end;
4. `kerasft.wise_ft_sweep` mixes the fine-tuned weights with the probe's
   (WiSE-FT), choosing alpha on held-out images;
5. `kerasft.tta_predict` averages the predictions of each test image and
   its mirror image.

What each of these does to accuracy on this data, measured over seeds, is
in docs/strategies.md ("Measured: the toolkit switches on the demo",
from `benchmarks/toolkit_switches.py`): on a run this short, most of them
cost a little accuracy or change nothing, so measure before adopting one.

Run from the repository root:

    python examples/toolkit.py                  # a few minutes on CPU
    python examples/toolkit.py --backend torch  # or tensorflow, jax
    python examples/toolkit.py --smoke          # tiny, to check it runs

Weights: provisioned offline by `python -m kerasft.assets --only
mobilenet_v1` (this script runs it when they are missing). The mixing runs
in `tf.data`, so it needs TensorFlow installed on every backend.
"""

import argparse
import os
import sys
import warnings


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
        help="tiny run (few images, 32 px, random weights) to check that "
        "everything works",
    )
    parser.add_argument("--epochs", type=int, default=3, help="fine-tuning")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error(f"--epochs must be at least 2. Received: {args.epochs}")
    args.train_size, args.image_size = (64, 32) if args.smoke else (2000, 64)
    if args.smoke:
        args.epochs = 2
    return args


def load_data(args):
    """Fashion-MNIST subset as RGB float images at the backbone's size."""
    import keras
    import numpy as np

    from kerasft import assets

    (x_train, y_train), (x_test, y_test), names = (
        assets.load_fashion_mnist_subset()
    )
    test_size = 64 if args.smoke else len(x_test)
    x_train, y_train = x_train[: args.train_size], y_train[: args.train_size]
    x_test, y_test = x_test[:test_size], y_test[:test_size]

    def rgb(images):
        size = (args.image_size, args.image_size)
        resized = keras.ops.image.resize(images[..., None] * 1.0, size)
        return np.repeat(keras.ops.convert_to_numpy(resized), 3, axis=-1)

    return (rgb(x_train), y_train), (rgb(x_test), y_test), names


def main(argv=None):
    args = parse_args(argv)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend  # before Keras's import
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import kerasft
    except ImportError:  # Running from a source checkout, not installed.
        sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
        import kerasft
    import keras
    import numpy as np
    import tensorflow as tf

    from kerasft import assets

    keras.utils.set_random_seed(0)
    weights = None if args.smoke else "imagenet"
    if weights and not assets.is_provisioned("mobilenet_v1"):
        assets.provision(["mobilenet_v1"])
    (x_train, y_train), (x_test, y_test), names = load_data(args)
    half = len(y_test) // 2  # 1st half chooses WiSE-FT's alpha
    print(f"Keras {keras.__version__}, backend {keras.backend.backend()}")

    warnings.filterwarnings("ignore", message="`input_shape` is undefined")
    backbone = kerasft.backbones.MobileNet(
        weights=weights, input_shape=(args.image_size, args.image_size, 3)
    )
    model = kerasft.build_classifier(backbone, num_classes=len(names))

    # 1-2. The probe's rate from the range test, then the probe.
    kerasft.freeze_until(model, "head", inclusive=False)
    loss = keras.losses.CategoricalCrossentropy()
    model.compile("adam", loss, metrics=["accuracy"])
    one_hot = keras.utils.to_categorical
    y_train_1h, y_test_1h = one_hot(y_train, 10), one_hot(y_test, 10)
    found = kerasft.lr_find(
        model, x_train, y_train_1h, batch_size=32, num_steps=30, seed=0
    )
    found.plot("lr_find.png")
    print(f"lr_find suggestions: {found.suggestions}")
    model.optimizer.learning_rate = found.valley
    model.fit(x_train, y_train_1h, batch_size=32, epochs=1, verbose=2)
    probe = [w.copy() for w in model.get_weights()]  # WiSE-FT's reference

    # 3. Fine-tuning: schedule, mixed batches, EMA, all in one fit.
    mixer = kerasft.augment.mix("both", num_classes=10, seed=0)
    train = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(y_train), seed=0)
        .batch(32)
        .map(mixer)
    )
    model.compile(keras.optimizers.Adam(1e-4), loss, metrics=["accuracy"])
    callbacks = [
        kerasft.callbacks.UnfreezeSchedule({0: "head", 1: "block5"}),
        kerasft.augment.MixOff(mixer, off_epoch=args.epochs - 1),
        kerasft.callbacks.EMA(0.99, warmup=True),
    ]
    model.fit(
        train,
        epochs=args.epochs,
        validation_data=(x_test[:half], y_test_1h[:half]),
        callbacks=callbacks,
        shuffle=False,  # the dataset shuffles itself
        verbose=2,
    )

    def accuracy(probabilities):
        return float(np.mean(np.argmax(probabilities, -1) == y_test[half:]))

    tuned = accuracy(model.predict(x_test[half:], verbose=0))
    # 4. WiSE-FT: alpha chosen on the 1st half, measured on the 2nd.
    sweep = kerasft.wise_ft_sweep(
        model, probe, x_test[:half], y_test_1h[:half], metric="accuracy"
    )
    wise = accuracy(model.predict(x_test[half:], verbose=0))
    # 5. Test-time augmentation: each image and its mirror image.
    tta = accuracy(kerasft.tta_predict(model, x_test[half:], policy="flip"))
    print(
        f"\nTest accuracy (2nd half of the test images): fine-tuned with "
        f"EMA {tuned:.3f}; WiSE-FT alpha={sweep['alpha']:g} {wise:.3f}; "
        f"with flip TTA {tta:.3f}"
    )
    return tuned, wise, tta


if __name__ == "__main__":
    main()
