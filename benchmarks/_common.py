"""Shared helpers of the kerasft benchmarks (not a benchmark itself).

Each benchmark runs its measurements in one worker process per backend
(the Keras backend is fixed at import) and prints one `RESULT {json}` line,
which `run_worker` parses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKENDS = ("jax", "tensorflow", "torch")


def setup_path():
    """Lets a worker import kerasft from the checkout without installing."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)


def run_worker(script, backend, args, timeout=1800):
    """Runs `script --worker ARGS` under KERAS_BACKEND=backend.

    Returns the parsed RESULT dict, or `{"backend": backend, "error": ...}`.
    """
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [sys.executable, script, "--worker", *args]
    try:
        proc = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"backend": backend, "error": f"timeout after {timeout}s"}
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode or not lines:
        return {"backend": backend, "error": proc.stderr[-1500:]}
    return json.loads(lines[-1][len("RESULT ") :])


def run_workers(script, backends, args):
    """Runs `script` once per backend; returns all result rows.

    A backend whose worker fails gives one `{"backend", "error"}` row.
    """
    rows = []
    for backend in backends:
        out = run_worker(script, backend, args)
        if "error" in out:
            rows.append({"backend": backend, "error": out["error"]})
        else:
            rows.extend(out["results"])
    return rows


def emit(result):
    print("RESULT " + json.dumps(result), flush=True)


def epoch_timer(keras):
    """A callback recording the wall time of each epoch."""

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []
            self.created = time.perf_counter()
            self.first_begin = None

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()
            if self.first_begin is None:
                self.first_begin = self.t0

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.t0)

    return EpochTimer()


def step_timer(keras):
    """A callback recording the wall time of each training step."""

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_train_batch_begin(self, batch, logs=None):
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter() - self.t0)

    return StepTimer()


def deterministic_weights(model, seed=0):
    """Sets the same weights on every backend (He-normal-like, BN neutral)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for v in model.weights:
        shape = tuple(int(d) for d in v.shape)
        path = v.path
        if "moving_variance" in path or path.endswith("gamma"):
            value = np.ones(shape, "float32")
        elif (
            "moving_mean" in path
            or path.endswith("beta")
            or path.endswith("bias")
            or len(shape) < 2
        ):
            value = np.zeros(shape, "float32")
        else:
            fan_in = int(np.prod(shape[:-1])) or 1
            value = rng.normal(0, np.sqrt(2.0 / fan_in), shape)
        v.assign(value.astype("float32"))


def backbone(keras, kerasft, name, size):
    """A kerasft backbone with random weights and named stages."""
    builder = {
        "mobilenet": kerasft.backbones.MobileNet,
        "resnet50": kerasft.backbones.ResNet50,
    }[name]
    return builder(weights=None, input_shape=(size, size, 3))


def table(rows, columns):
    """Formats a list of dicts as a fixed-width text table."""
    widths = [
        max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns
    ]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    for r in rows:
        lines.append(
            "  ".join(_fmt(r.get(c)).rjust(w) for c, w in zip(columns, widths))
        )
    return "\n".join(lines)


def _fmt(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)
