"""Quiets the native libraries' start-up lines when kerasft runs as a command.

TensorFlow's and XLA's C++ logging (oneDNN notices, "Could not find cuda
drivers", cpu_feature_guard, "failed call to cuInit") and gRPC read their
levels from the environment once, when they load, so the levels must be
set before Keras imports TensorFlow or JAX: `kerasft/__init__.py` calls
`quiet_for_command()` first thing. It does nothing when kerasft is
imported as a library, nothing for a variable the user has set, and
nothing with `-v`/`--verbose` on the command line.
"""

from __future__ import annotations

import os
import sys

DEFAULTS = {
    # 3: errors too (cuInit's, on a machine without a GPU, is an error).
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "GRPC_VERBOSITY": "ERROR",
    "GLOG_minloglevel": "2",
}


# `python -m` modules that are kerasft commands.
COMMAND_MODULES = ("kerasft.cli", "kerasft.assets")


def is_command(argv=None, orig_argv=None) -> bool:
    """Whether this process is `kerasft ...` or `python -m` a kerasft command.

    `python -m kerasft.assets` counts: converting MobileNet imports
    TensorFlow, and Keras has imported its backend by the time the
    command's own code runs, too late to set the levels there.
    """
    argv = sys.argv if argv is None else argv
    orig_argv = (
        getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv
    )
    script = os.path.basename(argv[0]) if argv else ""
    if os.path.splitext(script)[0] in ("kerasft", "kerasft-script"):
        return True
    if "-m" in orig_argv:
        index = orig_argv.index("-m")
        return orig_argv[index + 1 : index + 2] in (
            [m] for m in COMMAND_MODULES
        )
    return False


def quiet_for_command(environ=None, argv=None, orig_argv=None) -> dict:
    """Sets the quiet defaults for the command; returns what it set."""
    environ = os.environ if environ is None else environ
    argv = sys.argv if argv is None else argv
    if not is_command(argv, orig_argv) or {"-v", "--verbose"} & set(argv):
        return {}
    added = {k: v for k, v in DEFAULTS.items() if k not in environ}
    environ.update(added)
    return added
