"""The `kerasft export` subcommand.

`kerasft._src.cli` wires it in with `add_export_subparser(subparsers)`; the
parsed namespace carries `func`, which runs the export and returns the exit
code. `main(argv)` runs the subcommand on its own (used by the tests).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from kerasft._src.cli_parser import OneLineParser

DESCRIPTION = (
    "Export a .keras model, trained on any backend, as a versioned "
    "SavedModel for TensorFlow Serving: writes BASE_DIR/NAME/VERSION/, a "
    "sample REST request and BASE_DIR/models.config, after checking the "
    "SavedModel against the Keras model in a separate process."
)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Adds the `export` arguments to `parser` and sets `func=run`."""
    parser.add_argument("model", help="Path of the .keras file to export.")
    parser.add_argument(
        "--base-dir",
        required=True,
        help="TF Serving base directory (created if missing).",
    )
    parser.add_argument(
        "--name", required=True, help="Model name, as TF Serving serves it."
    )
    parser.add_argument(
        "--version",
        type=int,
        default=None,
        help="Version number. Defaults to the next free integer.",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="Replace the version folder if it exists.",
    )
    parser.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="Skip reloading and checking the SavedModel.",
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
            "Folder holding the model folders as TF Serving sees it (e.g. "
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
    parser.set_defaults(func=run)


def add_export_subparser(subparsers) -> argparse.ArgumentParser:
    """Registers `export` on an `argparse` subparsers object."""
    parser = subparsers.add_parser(
        "export",
        help="Export a .keras model for TensorFlow Serving.",
        description=DESCRIPTION,
    )
    configure_parser(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Runs the export described by parsed `args`; returns the exit code."""
    from kerasft._src.export.tf_serving import tf_serving

    try:
        for module in args.imports:
            importlib.import_module(module)
        path = tf_serving(
            args.model,
            args.base_dir,
            args.name,
            version=args.version,
            overwrite=args.overwrite,
            verify=args.verify,
            atol=args.atol,
            rtol=args.rtol,
            config_base_path=args.config_base_path,
        )
    except (ValueError, TypeError, FileExistsError, ImportError) as error:
        # A bad input: one line, and nothing was written.
        print(f"kerasft export: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        # The TensorFlow process's own error output follows the message.
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
