"""The `kerasft` command.

Examples:

    kerasft summary runs/model.keras
    kerasft export runs/model.keras --base-dir serving --name flowers
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

EPILOG = """examples:
  kerasft summary model.keras
      the stage table: layers, parameters, what trains, BN mode
  kerasft export model.keras --base-dir serving --name flowers
      a TF Serving SavedModel in serving/flowers/1/ (any training backend)
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


def build_parser() -> argparse.ArgumentParser:
    """Returns the argument parser of the `kerasft` command."""
    from kerasft.export._cli import add_export_subparser

    parser = argparse.ArgumentParser(
        prog="kerasft",
        description="Fine-tune pretrained Keras models on any backend.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
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
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
