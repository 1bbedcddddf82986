"""The `kerasft` command.

Examples:

    kerasft finetune
    kerasft finetune flowers/ --backbone mobilenetv2 --weights none
    kerasft summary runs/model.keras
    kerasft export runs/model.keras --base-dir serving --name flowers
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence

from kerasft._src.cli_parser import OneLineParser
from kerasft._src.logs import command_logging
from kerasft._src.logs import get_logger

EPILOG = """examples:
  kerasft finetune
      the default job: ImageNet MobileNet (offline once python -m
      kerasft.assets has provisioned it) fine-tuned on the bundled
      Fashion-MNIST subset; accuracy before/after, run folder in runs/
  kerasft finetune flowers/ --strategy discriminative --epochs 4 --out run1
      fine-tune on an image folder (one subfolder per class)
  kerasft finetune flowers/ --backbone resnet50 --weights none --backend jax
      another backbone, random weights, the JAX backend
  kerasft finetune reviews.csv --out runs/reviews
      fine-tune the offline MiniLM on text (columns text and label)
  kerasft summary model.keras
      the stage table: layers, parameters, what trains, BN mode
  kerasft export model.keras --base-dir serving --name flowers
      a TF Serving SavedModel in serving/flowers/1/ (any training backend)
  kerasft export model.keras --format onnx --output flowers.onnx
      an ONNX file checked by onnxruntime (--format litert: a .tflite file)
"""

FINETUNE_DESCRIPTION = """\
Fine-tune a pretrained backbone on an image folder (one subfolder per class)
or, without DATA, on the Fashion-MNIST subset bundled with kerasft; or a
keras-hub text backbone on text: a CSV or JSONL file with text and label
columns, or a folder with one subfolder of .txt files per class. Phase 1
trains the head alone (a linear probe: the accuracy before fine-tuning);
phase 2 fine-tunes with --strategy:
{strategies}
The run folder (--out) receives model.keras, history.csv, history.png,
summary.json (every option, so a run can be repeated), TensorBoard logs in
tensorboard/ with --tensorboard, and a TF Serving export in serving/NAME/1/.
"""

FINETUNE_EPILOG = """examples:
  kerasft finetune
  kerasft finetune flowers/ --out runs/flowers --epochs 4
  kerasft finetune flowers/ --backbone efficientnetb0 --weights none
  kerasft finetune --strategy lp-ft --backend jax --out runs/lpft
  kerasft finetune flowers/ --lr auto --patience 2 --class-weight auto
  kerasft finetune reviews.jsonl --text-column body --label-column stars
  kerasft finetune --mixed-precision mixed_bfloat16 --label-smoothing 0.1
  kerasft finetune --out runs/demo > log.txt    one line per epoch
  kerasft finetune flowers/ --backend jax --distribute jax
      in every process of a multi-host job (SLURM, Kubernetes, or
      --num-processes, --process-id, --coordinator); process 0 writes
"""
_FLAG_ONLY = {"out": "Default: runs/finetune-YYYYmmdd-HHMMSS."}


def _summary(args) -> int:
    import kerasft
    from kerasft._src.model_files import load_model_file

    try:
        model = load_model_file(args.model, suffixes=(".keras", ".h5", ".hdf5"))
    except (OSError, ValueError, TypeError) as error:
        message = " ".join(str(error).split())
        print(f"kerasft summary: error: {message}", file=sys.stderr)
        return 2
    kerasft.summary(model)
    return 0


def _flag(field) -> str:
    return "--" + field.name.replace("_", "-")


def _strategy_type(value: str) -> str:
    from kerasft._src.run.strategies import get_strategy

    try:
        return get_strategy(value).name
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"invalid choice: {value!r} ({_to_flags(str(error))})"
        ) from None


def _rate_type(value: str) -> float | str:
    """A learning rate flag: a float, or `auto` (`kerasft.lr_find`)."""
    from kerasft._src.run.config import AUTO

    if value == AUTO:
        return value
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid value: {value!r} (a float such as 1e-4, or {AUTO})"
        ) from None


def _backbone_type(value: str) -> str:
    """A backbone name, or a path (a keras-hub preset folder, for text)."""
    from kerasft._src.run.config import BACKBONES
    from kerasft._src.run.config import TEXT_BACKBONES

    names = [*BACKBONES, *TEXT_BACKBONES]
    if value in names or os.sep in value or os.path.exists(value):
        return value
    raise argparse.ArgumentTypeError(
        f"invalid choice: {value!r} (choose from {', '.join(names)}, or "
        "the path of a keras-hub preset folder for text)"
    )


# The flags whose type is not the type of the field's default.
_FLAG_TYPES = {
    "backbone": _backbone_type,
    "sequence_length": int,
    "image_size": int,
    "max_per_class": int,
    "patience": int,
    "num_processes": int,
    "process_id": int,
    "ema": float,
    "strategy": _strategy_type,
    "learning_rate": _rate_type,
    "head_learning_rate": _rate_type,
}


def _has_value(default) -> bool:
    return default is not None and default is not dataclasses.MISSING


def _add_config_argument(parser, field) -> None:
    """One flag from a `FinetuneConfig` field: its help, default and type."""
    meta = field.metadata
    default = field.default
    shown = meta.get("default_help", default)
    help_text = f"{meta['help']} Default: {shown}."
    if field.name in _FLAG_ONLY:
        help_text = f"{meta['help']} {_FLAG_ONLY[field.name]}"
    if "positional" in meta:
        parser.add_argument(
            field.name,
            nargs="?",
            default=default,
            metavar=meta["positional"],
            help=help_text,
        )
    elif isinstance(default, bool):
        flag = _flag(field) if not default else f"--no-{field.name}"
        parser.add_argument(
            flag,
            dest=field.name,
            action="store_false" if default else "store_true",
            help=meta.get("off_help", meta["help"]),
        )
    else:
        kind = _FLAG_TYPES.get(
            field.name, type(default) if _has_value(default) else None
        )
        metavar = meta.get("metavar")
        if field.name == "strategy":
            from kerasft._src.run.strategies import STRATEGIES

            metavar = "{" + ",".join(STRATEGIES) + "}"
        parser.add_argument(
            _flag(field),
            *meta.get("aliases", ()),
            type=kind,
            default=None if default is dataclasses.MISSING else default,
            choices=list(meta["choices"]) if "choices" in meta else None,
            metavar=metavar,
            help=help_text,
        )


def _add_finetune_subparser(subparsers) -> argparse.ArgumentParser:
    from kerasft._src.run.config import FinetuneConfig
    from kerasft._src.run.strategies import STRATEGIES

    width = max(len(name) for name in STRATEGIES) + 2
    strategies = "\n".join(
        f"  {name:<{width}}{strategy.description}"
        for name, strategy in STRATEGIES.items()
    )
    parser = subparsers.add_parser(
        "finetune",
        help="Fine-tune a pretrained backbone on images or text.",
        description=FINETUNE_DESCRIPTION.format(strategies=strategies),
        epilog=FINETUNE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for field in dataclasses.fields(FinetuneConfig):
        _add_config_argument(parser, field)
    parser.add_argument(
        "--backend",
        choices=("tensorflow", "jax", "torch"),
        default=None,
        help="Keras backend. Default: $KERAS_BACKEND or Keras's config.",
    )
    volume = parser.add_mutually_exclusive_group()
    volume.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="Print only warnings and errors.",
    )
    volume.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="Print debug lines too, and the native libraries' start-up "
        "logs (TensorFlow, XLA), which are hidden by default.",
    )
    parser.set_defaults(func=_finetune)
    return parser


def _to_flags(message: str) -> str:
    """Rewrites an error's `param` and `param=value` as flags.

    A closing `Received: param=value` (kerasft's argument checks end their
    messages so, without backticks) is rewritten too.
    """
    from kerasft._src.run.config import FinetuneConfig

    fields = {f.name: f for f in dataclasses.fields(FinetuneConfig)}

    def quoted(match):
        if match[1] not in fields:
            return match[0]
        return f"Received: `{match[1]}={match[2]}`{match[3] or ''}"

    message = re.sub(r"Received: (\w+)=(.*?)( of type \w+)?$", quoted, message)

    def flag(match):
        name, value = match.group(1), match.group(2)
        field = fields.get(name)
        if field is None:
            return match.group(0)
        if "positional" in field.metadata:
            return field.metadata["positional"]
        if isinstance(field.default, bool):
            on = value is None or value == "True"
            return _flag(field) if on else f"--no-{name}"
        return _flag(field) + ("" if value is None else f" {value}")

    return re.sub(r"`(\w+)(?:=([^`]*))?`", flag, message)


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

    from kerasft._src.run.config import FinetuneConfig
    from kerasft._src.run.loop import finetune

    options = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(FinetuneConfig)
    }
    options["out"] = args.out or os.path.join(
        "runs", time.strftime("finetune-%Y%m%d-%H%M%S")
    )
    recorded = {**options, "backend": keras.backend.backend()}
    # A terminal gets Keras's progress bar; a file or a pipe one line per
    # epoch (logged by the run).
    verbose = 1 if sys.stdout.isatty() and not args.quiet else 0
    logger = get_logger()
    # The header comes with the run's first line: input the run refuses
    # gets its one error line on stderr and nothing on stdout.
    header = [
        f"kerasft {_version()} finetune: Keras {keras.__version__}, "
        f"backend {keras.backend.backend()}"
    ]

    def log(message):
        if header:
            logger.info(header.pop())
        logger.info(message)

    with command_logging(prog, quiet=args.quiet, debug=args.verbose):
        try:
            finetune(verbose=verbose, args=recorded, log=log, **options)
        except (ValueError, TypeError, FileExistsError, ImportError) as error:
            logger.error(_to_flags(" ".join(str(error).split())))
            return 2
        except RuntimeError as error:
            logger.critical(" ".join(str(error).split()))
            return 1
        except KeyboardInterrupt:
            logger.critical("interrupted", extra={"bare": True})
            return 130
    return 0


def _version() -> str:
    import kerasft

    return kerasft.__version__


def build_parser() -> argparse.ArgumentParser:
    """Returns the argument parser of the `kerasft` command."""
    from kerasft._src.export.cli import add_export_subparser

    parser = OneLineParser(
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
