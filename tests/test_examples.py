"""Runs every example in `examples/` in its `--smoke` mode.

Each example is a plain script with `--backend` and `--smoke`; here each one
runs on the backend of the test session (`KERAS_BACKEND`, as set by
`tools/run_tests.py`) and must exit with 0. New examples are picked up by
the glob.

The examples run one after the other in one fresh process
(`_examples_driver.py`: each as `__main__` with its own `sys.argv`, in its
own folder, after `keras.backend.clear_session()`), which saves importing
the backend once per example. Those that import TensorFlow themselves run
last, so that the others run as they do alone.
"""

import glob
import os
import re
import subprocess
import sys

import keras
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVER = os.path.join(ROOT, "tests", "_examples_driver.py")
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "examples", "*.py")))
TIMEOUT = 900  # seconds per example; the smoke runs take about a minute.
_MARKER = re.compile(r"^@@kerasft-example (\S+) exit=(-?\d+)@@$", re.M)


def _imports_tensorflow(path):
    with open(path) as f:
        return re.search(r"^\s*import tensorflow\b", f.read(), re.M) is not None


def test_examples_exist():
    names = {os.path.basename(p) for p in EXAMPLES}
    assert {
        "bert_lora.py",
        "export_and_serve.py",
        "fusion.py",
        "llm_lora.py",
        "mobilenet_strategies.py",
        "quickstart.py",
        "resnet_vgg_unfreeze.py",
        "toolkit.py",
    } <= names


@pytest.fixture(scope="module")
def smoke_runs(request, tmp_path_factory):
    """{example name: (exit code, its output)} of one driver process.

    Runs the examples whose test this session selected (`-k`, `-m`).
    """
    backend = keras.backend.backend()
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(
        [ROOT] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    env["PYTHONUNBUFFERED"] = "1"
    selected = {
        item.callspec.params["path"]
        for item in request.session.items
        if item.originalname == "test_example_smoke_run"
    }
    # Stable sort: by name, those that import TensorFlow last.
    paths = sorted(selected, key=lambda p: (_imports_tensorflow(p), p))
    workdir = tmp_path_factory.mktemp("examples")
    try:
        proc = subprocess.run(
            [sys.executable, DRIVER, backend, str(workdir), *paths],
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=TIMEOUT * len(paths),
        )
        output, note = proc.stdout, f"driver exit code {proc.returncode}"
    except subprocess.TimeoutExpired as error:
        output = error.stdout or ""
        if isinstance(output, bytes):
            output = output.decode(errors="replace")
        note = f"driver stopped after {TIMEOUT * len(paths)} s"
    runs, start = {}, 0
    for match in _MARKER.finditer(output):
        runs[match[1]] = (int(match[2]), output[start : match.start()])
        start = match.end()
    # An example that never closed its output (a crash, a time-out).
    rest = f"{output[start:]}\n({note})"
    for path in paths:
        runs.setdefault(os.path.basename(path), (None, rest))
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=os.path.basename)
def test_example_smoke_run(path, smoke_runs):
    backend = keras.backend.backend()
    name = os.path.basename(path)
    code, output = smoke_runs[name]
    assert code == 0, (
        f"{name} --smoke --backend {backend} exited with {code} (it ran in "
        f"one process with the other examples; alone: `python "
        f"examples/{name} --smoke --backend {backend}`). Output (last 4000 "
        f"characters):\n{output[-4000:]}"
    )
