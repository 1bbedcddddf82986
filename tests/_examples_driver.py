"""Runs several examples with `--smoke`, one after the other, in this process.

Usage: python _examples_driver.py BACKEND WORKDIR EXAMPLE.py [EXAMPLE.py ...]

Each example runs as `python EXAMPLE.py --smoke --backend BACKEND` would run
it (`runpy` with `__name__ == "__main__"` and that `sys.argv`), in its own
folder `WORKDIR/NAME` and after a `keras.backend.clear_session()`, so the
examples share only the cost of importing the backend. After each one a line
`@@kerasft-example NAME exit=CODE@@` closes its output.
"""

import os
import runpy
import sys
import time
import traceback

import _fast_compile

MARKER = "@@kerasft-example {name} exit={code}@@"


def _exit_code(error):
    if error.code is None or error.code == 0:
        return 0
    if not isinstance(error.code, int):
        print(error.code, file=sys.stderr)
        return 1
    return error.code


def run(path, backend):
    """Runs one example; returns its exit code."""
    import keras

    keras.backend.clear_session()
    argv, sys.argv = sys.argv, [path, "--smoke", "--backend", backend]
    try:
        runpy.run_path(path, run_name="__main__")
        return 0
    except SystemExit as error:
        return _exit_code(error)
    except BaseException:
        traceback.print_exc()
        return 1
    finally:
        sys.argv = argv


def main(backend, workdir, paths):
    os.environ["KERAS_BACKEND"] = backend
    # As in the test session (conftest.py); XLA_FLAGS comes from it.
    _fast_compile.skip_graph_optimizer(backend)
    for path in [os.path.abspath(p) for p in paths]:
        folder = os.path.join(workdir, os.path.basename(path)[: -len(".py")])
        os.makedirs(folder)
        os.chdir(folder)
        start = time.monotonic()
        code = run(path, backend)
        sys.stderr.flush()
        name = os.path.basename(path)
        seconds = time.monotonic() - start
        print(f"\n[{name} took {seconds:.1f}s]", flush=True)
        print(f"{MARKER.format(name=name, code=code)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
