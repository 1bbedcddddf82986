"""Fine-tuning strategies compared: ImageNet MobileNet on Fashion-MNIST.

The same pretrained MobileNet, the same data and the same number of epochs,
trained five ways with strategies of `kerasft.finetune.STRATEGIES` (any
other name of the registry can be passed to `--strategies`); the script
prints a table of held-out accuracy:

- `probe`: linear probe. The backbone is frozen (feature extraction); only
  the new head trains.
- `full`: full fine-tuning. Every stage trains at one small learning rate
  (a tenth of the base rate).
- `gradual`: gradual unfreezing (ULMFiT). `kerasft.callbacks.
  UnfreezeSchedule.gradual` trains the head first, then adds one stage per
  epoch from the top (`block5`, then `block4`: `stages=3`), inside a single
  `fit`; the head trains at the base rate and thawed stages at a tenth of
  it (`factors`).
- `discriminative`: discriminative learning rates. Every stage trains, the
  top at the base rate and lower stages at geometrically smaller ones
  (`kerasft.optimizers.lr_range`, fastai's `slice(low, high)`; pass
  `--decay 0.7` to use `layerwise_decay` instead).
- `auto`: kerasft's default (`strategy="auto"`). It reads the model family
  and the step budget: BatchNorm frozen, the stages join one by one in
  steps until half the budget, warm-up then cosine decay, layer-wise rates,
  and the new head at 10x the top stage's rate (`--learning-rate` here).

Every strategy starts from a fresh copy of the ImageNet weights. Batch
normalization stays in inference mode (kerasft's default, `bn="frozen"`).

Data: the Fashion-MNIST subset that ships with kerasft (Zalando Research,
MIT). Weights: Google's MobileNet v1 ImageNet weights, provisioned offline by
`python -m kerasft.assets --only mobilenet_v1` (run here when missing).

Run from the repository root:

    python examples/mobilenet_strategies.py                 # several minutes
    python examples/mobilenet_strategies.py --backend jax   # or torch
    python examples/mobilenet_strategies.py --strategies probe gradual
    python examples/mobilenet_strategies.py --smoke         # random weights

Measured with the defaults (1,500 training and 1,000 test images at 64x64,
4 epochs per strategy, batch 64, base rate 1e-3) on TensorFlow, Keras
3.15.1, on 2 CPU cores shared with other jobs (times compare only with each
other):

    strategy         trainable params  test accuracy  time
    probe                      10,250          0.743   16 s
    full                    3,195,338          0.836   49 s
    gradual                 3,064,074          0.789   38 s
    discriminative          3,195,338          0.832   41 s
    auto                    3,195,338          0.827   60 s

With BatchNorm frozen (kerasft's default here), full fine-tuning at a
tenth of the base rate, discriminative rates and `auto` end within a
point of each other: one run, one seed, so that is noise (the transfer
benchmark, docs/transfer.md, has three seeds per strategy). Gradual
unfreezing trains `block4` for one epoch only and ends between the probe
and the others. The `lr_range` split gives `block5` 4.6e-4, almost the
head's rate; `auto` gives it a tenth of the head's (`--decay 0.5` with
`discriminative` would put it at 5e-4).
"""

import argparse
import math
import os
import sys
import time
import warnings

COMPARED = ("probe", "full", "gradual", "discriminative", "auto")


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
        help="tiny run (random weights, a narrow MobileNet, 32 px, few "
        "images, 1 epoch) to check that everything works",
    )
    parser.add_argument(
        "--strategies",
        nargs="+",
        default=list(COMPARED),
        help="names in kerasft.finetune.STRATEGIES (default: "
        f"{' '.join(COMPARED)})",
    )
    parser.add_argument(
        "--image-size", type=int, default=64, help="input size in pixels"
    )
    parser.add_argument(
        "--train-size",
        type=int,
        default=1500,
        help="training images used (at most 3000)",
    )
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=1e-3,
        help="head learning rate; the backbone's rates derive from it",
    )
    parser.add_argument(
        "--decay",
        type=float,
        default=None,
        help="use layerwise_decay(model, DECAY) for the discriminative "
        "strategy instead of lr_range",
    )
    args = parser.parse_args(argv)
    if args.image_size < 32:
        parser.error(
            "--image-size must be at least 32 (MobileNet's smallest input). "
            f"Received: {args.image_size}"
        )
    if not 1 <= args.train_size <= 3000:
        parser.error(
            f"--train-size must be in [1, 3000]. Received: {args.train_size}"
        )
    if args.smoke:
        args.image_size = 32
        args.train_size = 64
        args.epochs = 1
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

    from kerasft import assets

    print(f"Keras {keras.__version__}, backend {keras.backend.backend()}")

    # 1. Weights: real ImageNet weights, or a narrow random MobileNet.
    if args.smoke:
        weights, alpha = None, 0.25
    else:
        if not assets.is_provisioned("mobilenet_v1"):
            print("Provisioning the MobileNet ImageNet weights offline.")
            assets.provision(["mobilenet_v1"])
        weights, alpha = "imagenet", 1.0

    # 2. Data: 28x28 grayscale -> RGB at the backbone's input size, 0-255.
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
    warnings.filterwarnings("ignore", message="`input_shape` is undefined")

    def fresh_model():
        keras.utils.set_random_seed(0)
        backbone = kerasft.backbones.MobileNet(
            weights=weights,
            input_shape=(args.image_size, args.image_size, 3),
            alpha=alpha,
        )
        return kerasft.build_classifier(
            backbone, num_classes=len(class_names), dropout=0.2
        )

    unknown = set(args.strategies) - set(kerasft.finetune.STRATEGIES)
    if unknown:
        raise SystemExit(
            f"--strategies: unknown {sorted(unknown)}; choose from "
            f"{list(kerasft.finetune.STRATEGIES)}"
        )
    results = []
    for name in args.strategies:
        print(f"\n== {name}")
        strategy = kerasft.finetune.STRATEGIES[name]
        model = fresh_model()
        steps_per_epoch = math.ceil(len(x_train) / args.batch_size)
        options = strategy_options(name, model, args, steps_per_epoch)
        optimizer, callbacks = strategy.build(
            model, epochs=args.epochs, **options
        )
        if isinstance(optimizer, kerasft.optimizers.DiscriminativeOptimizer):
            rate = options["learning_rate"]
            print(
                "stage rates:",
                ", ".join(
                    f"{k} {rate * v:.1e}"
                    for k, v in optimizer.stage_factors.items()
                ),
            )
        model.compile(
            optimizer=optimizer,
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        tic = time.perf_counter()
        model.fit(
            x_train,
            y_train,
            batch_size=args.batch_size,
            epochs=args.epochs,
            callbacks=callbacks,
            verbose=2,
        )
        seconds = time.perf_counter() - tic
        _, accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
        trainable = sum(s.trainable_params for s in kerasft.stages(model))
        results.append((name, trainable, accuracy, seconds))
        print(f"{name}: test accuracy {accuracy:.3f} ({seconds:.0f} s)")

    print(f"\nResults ({keras.backend.backend()}, {args.epochs} epochs):")
    print(
        f"{'strategy':<15} {'trainable params':>17} {'test accuracy':>14}  time"
    )
    for strategy, trainable, accuracy, seconds in results:
        print(
            f"{strategy:<15} {trainable:>17,} {accuracy:>14.3f} "
            f"{seconds:>4.0f} s"
        )
    return results


def strategy_options(name, model, args, steps_per_epoch):
    """This comparison's rates and options for a registry strategy."""
    import kerasft

    lr = args.learning_rate
    if name == "auto":
        # `auto` reads the step budget. `learning_rate` is its top backbone
        # stage's rate; the new head trains at 10x it, so at `lr` here.
        return {"learning_rate": lr / 10, "steps_per_epoch": steps_per_epoch}
    if name == "full":
        # One small rate for every stage (the new head learns slowly).
        return {"learning_rate": lr / 10}
    if name == "gradual":
        # Epoch 0: head; epoch 1: + block5; epoch 2: + block4. As in ULMFiT,
        # the new head trains at `lr` and pretrained stages, once thawed,
        # at `lr / 10`.
        backbone_stages = [s.name for s in kerasft.stages(model)][:-1]
        return {
            "learning_rate": lr,
            "stages": 3,
            "factors": dict.fromkeys(backbone_stages, 0.1),
        }
    if name == "discriminative" and args.decay is not None:
        factors = kerasft.optimizers.layerwise_decay(model, args.decay)
        return {"learning_rate": lr, "factors": factors}
    return {"learning_rate": lr}


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
