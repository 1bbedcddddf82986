"""The `kerasft export` subcommand.

`kerasft._src.cli` wires it in with `add_export_subparser(subparsers)`; the
parsed namespace carries `func`, which runs the export and returns the exit
code, and `export_parser`, whose `error()` refuses options that do not fit
`--format` in one line. `main(argv)` runs the subcommand on its own (used
by the tests).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from kerasft._src.cli_parser import OneLineParser

DESCRIPTION = (
    "Export a .keras model, trained on any backend, after checking the "
    "export against the Keras model in a separate process. --format "
    "tf-serving (the default) writes a versioned SavedModel for TensorFlow "
    "Serving: BASE_DIR/NAME/VERSION/, a sample REST request and "
    "BASE_DIR/models.config. --format onnx and --format litert write one "
    "file, --output, run by onnxruntime or the LiteRT interpreter."
)
FORMATS = ("tf-serving", "onnx", "litert")
# The options of one format only, by destination, with their flag.
_FORMAT_OPTIONS = {
    "tf-serving": {
        "base_dir": "--base-dir",
        "name": "--name",
        "version": "--version",
        "config_base_path": "--config-base-path",
    },
    "onnx": {"output": "--output", "opset": "--opset"},
    "litert": {"output": "--output"},
}
_REQUIRED = {
    "tf-serving": ("base_dir", "name"),
    "onnx": ("output",),
    "litert": ("output",),
}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Adds the `export` arguments to `parser` and sets `func=run`."""
    parser.add_argument("model", help="Path of the .keras file to export.")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="tf-serving",
        help="Export format. Defaults to tf-serving.",
    )
    parser.add_argument(
        "--base-dir",
        help="tf-serving (required): base directory (created if missing).",
    )
    parser.add_argument(
        "--name", help="tf-serving (required): model name, as served."
    )
    parser.add_argument(
        "--version",
        type=int,
        default=None,
        help="tf-serving: version number. Defaults to the next free integer.",
    )
    parser.add_argument(
        "-o",
        "--output",
        help="onnx, litert (required): the file to write (.onnx, .tflite).",
    )
    parser.add_argument(
        "--opset",
        type=int,
        default=None,
        help="onnx: the ONNX opset (7-18). Defaults to tf2onnx's.",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="Replace the version folder or the file if it exists.",
    )
    parser.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="Skip running and checking the export in a separate process.",
    )
    parser.add_argument(
        "--atol", type=float, default=1e-5, help="Absolute tolerance."
    )
    parser.add_argument(
        "--rtol",
        type=float,
        default=1e-5,
        help="Tolerance relative to the largest absolute expected output.",
    )
    parser.add_argument(
        "--config-base-path",
        default=None,
        help=(
            "tf-serving: folder holding the model folders as TF Serving "
            "sees it (e.g. "
            "/models in a container), written into models.config. Defaults "
            "to the absolute path of --base-dir."
        ),
    )
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help=(
            "Module to import before loading the model, for custom layers "
            "registered with keras.saving.register_keras_serializable. "
            "Repeatable."
        ),
    )
    parser.set_defaults(func=run, export_parser=parser)


def add_export_subparser(subparsers) -> argparse.ArgumentParser:
    """Registers `export` on an `argparse` subparsers object."""
    parser = subparsers.add_parser(
        "export",
        help="Export a .keras model for TF Serving, ONNX or LiteRT.",
        description=DESCRIPTION,
    )
    configure_parser(parser)
    return parser


def _check_format_options(args: argparse.Namespace) -> None:
    """Refuses a missing option of the format, or one of another format."""
    given = {
        flag
        for options in _FORMAT_OPTIONS.values()
        for dest, flag in options.items()
        if getattr(args, dest) is not None
    }
    own = _FORMAT_OPTIONS[args.format]
    missing = [own[dest] for dest in _REQUIRED[args.format]]
    missing = [flag for flag in missing if flag not in given]
    if missing:
        args.export_parser.error(
            f"--format {args.format} needs {', '.join(missing)}"
        )
    foreign = sorted(given - set(own.values()))
    if foreign:
        args.export_parser.error(
            f"{', '.join(foreign)} cannot be used with --format {args.format}"
        )


def _export(args: argparse.Namespace) -> str:
    common = {
        "overwrite": args.overwrite,
        "verify": args.verify,
        "atol": args.atol,
        "rtol": args.rtol,
    }
    if args.format == "onnx":
        from kerasft._src.export.formats import onnx

        return onnx(args.model, args.output, opset=args.opset, **common)
    if args.format == "litert":
        from kerasft._src.export.formats import litert

        return litert(args.model, args.output, **common)
    from kerasft._src.export.tf_serving import tf_serving

    return tf_serving(
        args.model,
        args.base_dir,
        args.name,
        version=args.version,
        config_base_path=args.config_base_path,
        **common,
    )


def run(args: argparse.Namespace) -> int:
    """Runs the export described by parsed `args`; returns the exit code."""
    _check_format_options(args)
    try:
        for module in args.imports:
            importlib.import_module(module)
        path = _export(args)
    except (ValueError, TypeError, FileExistsError, ImportError) as error:
        # A bad input: one line, and nothing was written.
        print(f"kerasft export: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        # The export process's own error output follows the message.
        print(f"kerasft export: failed: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"kerasft export: failed: {_one_line(error)}", file=sys.stderr)
        return 1
    print(path)
    return 0


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def main(argv: Sequence[str] | None = None) -> int:
    """Parses `argv` as `kerasft export` arguments and runs the export."""
    parser = OneLineParser(prog="kerasft export", description=DESCRIPTION)
    configure_parser(parser)
    args = parser.parse_args(argv)
    return args.func(args)
