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


def free_port():
    """A TCP port on 127.0.0.1 that is free now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_job(script, args, processes=2, timeout=TIMEOUT):
    """Runs `processes` copies of `script` as one JAX job on 127.0.0.1.

    The environment is the one docs/distributed.md shows. Returns, per
    process, its exit code, its `RESULT` (or None), its stderr and the
    time it ended. Processes still running after `timeout` are killed.
    """
    import time

    port = free_port()
    procs = []
    for i in range(processes):
        env = dict(
            os.environ,
            KERAS_BACKEND="jax",
            JAX_PLATFORMS="cpu",
            TF_CPP_MIN_LOG_LEVEL="3",
            JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
            JAX_NUM_PROCESSES=str(processes),
            JAX_PROCESS_ID=str(i),
        )
        # One CPU device per process; the suite's other XLA flags stay.
        env["XLA_FLAGS"] = " ".join(
            flag
            for flag in env.get("XLA_FLAGS", "").split()
            if "host_platform_device_count" not in flag
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, os.path.join(HERE, script), *args],
                env=env,
                cwd=HERE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    deadline = time.time() + timeout
    out = []
    for proc in procs:
        try:
            stdout, stderr = proc.communicate(
                timeout=max(1.0, deadline - time.time())
            )
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            stdout, stderr = proc.communicate()
        lines = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
        out.append(
            {
                "returncode": proc.returncode,
                "result": json.loads(lines[-1][7:]) if lines else None,
                "stdout": stdout,
                "stderr": stderr,
                "ended": time.time(),
            }
        )
    return out


def job_results(runs, script):
    """The `RESULT`s of a job whose processes all succeeded."""
    if any(r["returncode"] != 0 or r["result"] is None for r in runs):
        details = "\n".join(
            f"process {i}: exit code {r['returncode']}\n"
            f"stdout:\n{r['stdout'][-3000:]}\nstderr:\n{r['stderr'][-6000:]}"
            for i, r in enumerate(runs)
        )
        pytest.fail(f"{script} failed.\n{details}")
    return [r["result"] for r in runs]
