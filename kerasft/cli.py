"""The `kerasft` command (`kerasft --help`, or `python -m kerasft.cli`)."""

from kerasft._src.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
