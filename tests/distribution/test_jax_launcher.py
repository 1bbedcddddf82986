"""`kerasft finetune --distribute jax`: two processes on 127.0.0.1.

The command of docs/distributed.md ("The launcher"), run twice at once,
each process in its own working folder as on two hosts, on a tiny image
folder (ImageNet MobileNet, the head trains): one run folder, written by
process 0 alone, both processes exit 0 and end with the same weights (the
checksum each one logs) and the same metrics.
"""

import csv
import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest

pytestmark = [
    # ImageNet MobileNet (offline): a random one's features vanish (about
    # 1e-20 at 32 pixels), and its head would not train.
    pytest.mark.pretrained,
    pytest.mark.skipif(
        keras.backend.backend() != "jax",
        reason="--distribute jax starts a JAX multi-controller job; this "
        "file runs when KERAS_BACKEND=jax",
    ),
]

from _worker_run import free_port  # noqa: E402

# Generous for a loaded 2-core machine (measured here: about 40 s).
TIMEOUT = 300
CHECKSUM = "Weights checksum: "


def _image_folder(root, per_class=5):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(("cats", "dogs")):
        os.makedirs(os.path.join(root, name))
        for i in range(per_class):
            pixels = rng.integers(0, 255, (32, 32, 3)).astype("uint8")
            pixels[..., c] = 250
            Image.fromarray(pixels).save(os.path.join(root, name, f"{i}.png"))
    return root


def _command(data, port, process_id):
    return [
        sys.executable, "-m", "kerasft.cli", "finetune", data,
        "--backend", "jax", "--distribute", "jax",
        "--num-processes", "2", "--process-id", str(process_id),
        "--coordinator", f"127.0.0.1:{port}",
        "--image-size", "32", "--batch-size", "4",
        "--head-epochs", "1", "--epochs", "1", "--strategy", "probe",
        "--no-export", "--out", "run",
    ]  # fmt: skip


def _launch(root, data):
    """Runs the command in `root/host0` and `root/host1` at once."""
    port = free_port()
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)  # one CPU device per process
    procs = []
    for i in range(2):
        host = root / f"host{i}"
        host.mkdir(exist_ok=True)
        procs.append(
            subprocess.Popen(
                _command(data, port, i),
                cwd=host,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    runs = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            out, err = proc.communicate()
        runs.append({"code": proc.returncode, "out": out, "err": err})
    return runs


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("pets")
    return _image_folder(os.fspath(root / "pets"))


@pytest.fixture(scope="module")
def job(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("launcher")
    return root, _launch(root, data)


def test_both_processes_exit_0(job):
    _, runs = job
    for i, run in enumerate(runs):
        assert run["code"] == 0, f"process {i}:\n{run['out']}\n{run['err']}"
        assert f"process {i} of 2, DataParallel over 2 device" in run["out"]


def test_one_run_folder_written_by_process_0(job):
    root, runs = job
    assert sorted(os.listdir(root / "host0" / "run")) == [
        "history.csv",
        "history.png",
        "model.keras",
        "summary.json",
    ]
    assert os.listdir(root / "host1") == []
    assert "Run folder: run (model.keras" in runs[0]["out"]
    assert "Run folder: written by process 0" in runs[1]["out"]
    with open(root / "host0" / "run" / "summary.json") as f:
        summary = json.load(f)
    assert summary["args"]["distribute"] == "jax"
    assert summary["data"]["num_train"] == 8
    with open(root / "host0" / "run" / "history.csv") as f:
        losses = [row["loss"] for row in csv.DictReader(f)]
    assert len(losses) == 2 and losses[0] != losses[1]  # it trained


def test_processes_end_with_the_same_weights(job):
    _, runs = job
    sums = [
        line.split(CHECKSUM)[1]
        for run in runs
        for line in run["out"].splitlines()
        if CHECKSUM in line
    ]
    assert len(sums) == 2 and sums[0] == sums[1], sums
    # The same metrics too (the job's, not each process's), times aside.
    metrics = [
        [
            re.sub(r" - \d+s - ", " - ", line)
            for line in run["out"].splitlines()
            if line.startswith("Epoch ")
        ]
        for run in runs
    ]
    assert len(metrics[0]) == 2 and metrics[0] == metrics[1], metrics
