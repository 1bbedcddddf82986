"""The argument parser of kerasft's commands: usage errors in one line.

argparse prints its usage block and then the error; a wrong option then
fills a CI log with the whole usage. kerasft's commands print one line on
stderr, `PROG: error: MESSAGE (see 'PROG --help')`, and exit with status
2, like argparse.
"""

from __future__ import annotations

import argparse
import sys


class OneLineParser(argparse.ArgumentParser):
    """An `argparse.ArgumentParser` whose usage errors take one line."""

    def error(self, message: str):
        message = " ".join(str(message).split())
        sys.stderr.write(
            f"{self.prog}: error: {message} (see '{self.prog} --help')\n"
        )
        sys.exit(2)
