"""Runs every example in `examples/` in its `--smoke` mode.

Each example is a plain script with `--backend` and `--smoke`; here each one
runs in a fresh process on the backend of the test session
(`KERAS_BACKEND`, as set by `tools/run_tests.py`), and must exit with 0.
New examples are picked up by the glob.
"""

import glob
import os
import subprocess
import sys

import keras
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "examples", "*.py")))
TIMEOUT = 900  # seconds per example; the smoke runs take about a minute.


def test_examples_exist():
    names = {os.path.basename(p) for p in EXAMPLES}
    assert {
        "bert_lora.py",
        "export_and_serve.py",
        "fusion.py",
        "mobilenet_strategies.py",
        "quickstart.py",
        "resnet_vgg_unfreeze.py",
    } <= names


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=os.path.basename)
def test_example_smoke_run(path, tmp_path):
    backend = keras.backend.backend()
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(
        [ROOT] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    proc = subprocess.run(
        [sys.executable, path, "--smoke", "--backend", backend],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, (
        f"{os.path.basename(path)} --smoke --backend {backend} exited with "
        f"{proc.returncode}. Output (last 4000 characters):\n"
        f"{proc.stdout[-4000:]}"
    )
