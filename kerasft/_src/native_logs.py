"""Quiets the native libraries' start-up lines when kerasft runs as a command.

TensorFlow's and XLA's C++ logging (oneDNN notices, "Could not find cuda
drivers", cpu_feature_guard, "failed call to cuInit") and gRPC read their
levels from the environment once, when they load, so the levels must be
set before Keras imports TensorFlow or JAX: `kerasft/__init__.py` calls
`quiet_for_command()` first thing. It does nothing when kerasft is
imported as a library, nothing for a variable the user has set, and
nothing with `-v`/`--verbose` on the command line.

TensorFlow 2.21 logs its start-up notices through absl before absl's log
is initialised, and those lines ignore `TF_CPP_MIN_LOG_LEVEL`. So the
command also imports Keras and TensorFlow with the process's stderr sent
to a temporary file, and writes back every line that is not such a notice
(`quiet_imports`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sys
import tempfile

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


def _quiet_command(argv=None, orig_argv=None) -> bool:
    """A kerasft command run without `-v`/`--verbose`."""
    argv = sys.argv if argv is None else argv
    return is_command(argv, orig_argv) and not {"-v", "--verbose"} & set(argv)


def quiet_for_command(environ=None, argv=None, orig_argv=None) -> dict:
    """Sets the quiet defaults for the command; returns what it set."""
    environ = os.environ if environ is None else environ
    if not _quiet_command(argv, orig_argv):
        return {}
    added = {k: v for k, v in DEFAULTS.items() if k not in environ}
    environ.update(added)
    return added


# The native libraries' start-up notices: absl's preamble, and INFO or
# WARNING lines of the glog/absl form
# `I0000 00:00:1796083156.4  123 port.cc:153] `.
NOTICE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IW]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\] )"
)


@contextlib.contextmanager
def filtered_stderr(pattern=NOTICE):
    """Drops the stderr lines (of this process, native ones too) `pattern`
    matches while the block runs; the other lines are written back after."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", errors="replace")
            kept = [
                line
                for line in text.splitlines(keepends=True)
                if not pattern.match(line)
            ]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def quiet_imports(environ=None, argv=None, orig_argv=None) -> bool:
    """For a command, imports Keras and TensorFlow without their notices.

    Does nothing (and returns False) for a library import, with
    `-v`/`--verbose`, or when `TF_CPP_MIN_LOG_LEVEL` is set to another
    level than the quiet default (the user's choice).
    """
    environ = os.environ if environ is None else environ
    if not _quiet_command(argv, orig_argv):
        return False
    if environ.get("TF_CPP_MIN_LOG_LEVEL") != DEFAULTS["TF_CPP_MIN_LOG_LEVEL"]:
        return False
    with filtered_stderr():
        import keras  # noqa: F401  (imports the backend)

        # Image folders are read with tf.data on every backend.
        if importlib.util.find_spec("tensorflow") is not None:
            import tensorflow  # noqa: F401
    return True
