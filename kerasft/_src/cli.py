"""The `kerasft` command.

Examples:

    kerasft finetune
    kerasft finetune flowers/ --backbone mobilenetv2 --weights none
    kerasft summary runs/model.keras
    kerasft export runs/model.keras --base-dir serving --name flowers
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence

EPILOG = """examples:
  kerasft finetune
      the default job, offline: ImageNet MobileNet fine-tuned on the bundled
      Fashion-MNIST subset; accuracy before/after, run folder in runs/
  kerasft finetune flowers/ --strategy discriminative --epochs 4 --out run1
      fine-tune on an image folder (one subfolder per class)
  kerasft finetune flowers/ --backbone resnet50 --weights none --backend jax
      another backbone, random weights, the JAX backend
  kerasft summary model.keras
      the stage table: layers, parameters, what trains, BN mode
  kerasft export model.keras --base-dir serving --name flowers
      a TF Serving SavedModel in serving/flowers/1/ (any training backend)
"""

FINETUNE_DESCRIPTION = """\
Fine-tune a pretrained backbone on an image folder (one subfolder per class)
or, without DATA, on the Fashion-MNIST subset bundled with kerasft. Phase 1
trains the head alone (a linear probe: the accuracy before fine-tuning);
phase 2 fine-tunes with --strategy:
  feature-extraction  the backbone stays frozen, the head trains on
  full                the head is re-initialized, the whole model trains
  gradual             one more backbone stage per epoch, from the top
  discriminative      the whole model, each stage at its own rate
                      (learning rate / 100 at the bottom ... rate at the head)
  lp-ft               the whole model, starting from the probe's head
The run folder (--out) receives model.keras, history.csv, history.png,
summary.json and a TF Serving export in serving/NAME/1/.
"""

FINETUNE_EPILOG = """examples:
  kerasft finetune
  kerasft finetune flowers/ --out runs/flowers --epochs 4
  kerasft finetune flowers/ --backbone efficientnetb0 --weights none
  kerasft finetune --strategy lp-ft --backend jax --out runs/lpft
"""


def _summary(args) -> int:
    import keras

    import kerasft

    try:
        model = keras.saving.load_model(args.model, compile=False)
    except (OSError, ValueError) as error:
        print(f"kerasft summary: cannot load {args.model!r}: {error}")
        return 2
    kerasft.summary(model)
    return 0


def _add_finetune_subparser(subparsers) -> argparse.ArgumentParser:
    from kerasft._src.finetune import BACKBONES
    from kerasft._src.finetune import STRATEGIES

    parser = subparsers.add_parser(
        "finetune",
        help="Fine-tune a pretrained backbone on an image folder.",
        description=FINETUNE_DESCRIPTION,
        epilog=FINETUNE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "data",
        nargs="?",
        default=None,
        metavar="DATA",
        help="Image folder with one subfolder per class. Default: the "
        "bundled Fashion-MNIST subset (3,000 training / 1,000 held-out).",
    )
    parser.add_argument(
        "--backbone",
        choices=list(BACKBONES),
        default="mobilenet",
        help="Default: mobilenet.",
    )
    parser.add_argument(
        "--weights",
        default="imagenet",
        metavar="{imagenet,none,PATH}",
        help="imagenet (MobileNet's are provisioned offline into Keras's "
        "cache; others are downloaded by Keras), none (random), or a "
        "weights file. Default: imagenet.",
    )
    parser.add_argument(
        "--strategy",
        choices=list(STRATEGIES),
        default="gradual",
        help="Fine-tuning strategy of phase 2. Default: gradual.",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=3,
        help="Epochs of phase 2 (fine-tuning). Default: 3.",
    )
    parser.add_argument(
        "--head-epochs",
        type=int,
        default=2,
        help="Epochs of phase 1 (head only). Default: 2.",
    )
    parser.add_argument(
        "--batch-size", type=int, default=64, help="Default: 64."
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="Square input size in pixels, at least 32. Default: 64 for the "
        "bundled data, 128 for a folder.",
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=1e-4,
        help="Adam's rate in phase 2 (the head's with discriminative). "
        "Default: 1e-4.",
    )
    parser.add_argument(
        "--head-learning-rate",
        type=float,
        default=3e-3,
        help="Adam's rate in phase 1. Default: 3e-3.",
    )
    parser.add_argument(
        "--validation-split",
        type=float,
        default=0.2,
        help="Fraction of each class of DATA held out. Default: 0.2.",
    )
    parser.add_argument(
        "--max-per-class",
        type=int,
        default=None,
        help="Use at most N images per class (per split for the bundled "
        "data). Default: all.",
    )
    parser.add_argument("--seed", type=int, default=0, help="Default: 0.")
    parser.add_argument(
        "--backend",
        choices=("tensorflow", "jax", "torch"),
        default=None,
        help="Keras backend. Default: $KERAS_BACKEND or Keras's config.",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="Run folder. Default: runs/finetune-YYYYmmdd-HHMMSS.",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="Replace a run already in --out.",
    )
    parser.add_argument(
        "--name",
        default=None,
        help="Model name of the TF Serving export. Default: the data "
        "folder's name, or fashion_mnist.",
    )
    parser.add_argument(
        "--run-eagerly",
        action="store_true",
        help="Compile no graphs (Keras's run_eagerly): faster for smoke "
        "tests of a few steps, much slower for real runs.",
    )
    parser.add_argument(
        "--no-export",
        dest="export",
        action="store_false",
        help="Skip the TF Serving export.",
    )
    parser.set_defaults(func=_finetune)
    return parser


def _finetune(args) -> int:
    import keras

    prog = "kerasft finetune"
    if args.backend and args.backend != keras.backend.backend():
        # Keras reads KERAS_BACKEND once, when it is imported, and importing
        # kerasft (which this command is part of) imported it already: run
        # the command again in a process that starts on the chosen backend.
        env = dict(os.environ, KERAS_BACKEND=args.backend)
        command = [sys.executable, "-m", "kerasft.cli", *args.argv]
        return subprocess.call(command, env=env)

    from kerasft._src import finetune

    out = args.out or os.path.join(
        "runs", time.strftime("finetune-%Y%m%d-%H%M%S")
    )
    options = {k: v for k, v in vars(args).items() if k not in ("func", "argv")}
    options["backend"] = keras.backend.backend()
    options["out"] = out
    try:
        finetune.finetune(
            args.data,
            out=out,
            backbone=args.backbone,
            weights=args.weights,
            strategy=args.strategy,
            epochs=args.epochs,
            head_epochs=args.head_epochs,
            batch_size=args.batch_size,
            image_size=args.image_size,
            validation_split=args.validation_split,
            seed=args.seed,
            learning_rate=args.learning_rate,
            head_learning_rate=args.head_learning_rate,
            max_per_class=args.max_per_class,
            name=args.name,
            export=args.export,
            overwrite=args.overwrite,
            run_eagerly=args.run_eagerly,
            args=options,
        )
    except (ValueError, TypeError, FileExistsError, ImportError) as error:
        message = " ".join(str(error).split())
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        message = " ".join(str(error).split())
        print(f"{prog}: failed: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Returns the argument parser of the `kerasft` command."""
    from kerasft._src.export.cli import add_export_subparser

    parser = argparse.ArgumentParser(
        prog="kerasft",
        description="Fine-tune pretrained Keras models on any backend.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_finetune_subparser(subparsers)
    summary = subparsers.add_parser(
        "summary", help="Print the stages of a .keras model and what trains."
    )
    summary.add_argument("model", help="Path of a .keras file.")
    summary.set_defaults(func=_summary)
    add_export_subparser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the `kerasft` command and returns its exit code."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
