"""Runs a distribution worker script in a fresh process; returns its result.

Device counts (`XLA_FLAGS`, TensorFlow logical devices) and process groups
must be set up before the backend initializes, which a pytest process has
already done, so every distributed run happens in a subprocess.
"""

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
# Generous: the suite runs on shared 2-core machines.
TIMEOUT = 900


def run_worker(script, backend, env=None, args=()):
    """Runs `script` (in this folder) and returns its `RESULT` JSON."""
    full_env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    full_env.update(env or {})
    try:
        proc = subprocess.run(
            [sys.executable, os.path.join(HERE, script), *args],
            env=full_env,
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{script} did not finish in {TIMEOUT} s: {e.stderr}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        pytest.fail(
            f"{script} failed (exit code {proc.returncode}).\n"
            f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-8000:]}"
        )
    return json.loads(lines[-1][len("RESULT ") :])
