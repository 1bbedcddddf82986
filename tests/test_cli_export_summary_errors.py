"""`kerasft summary` and `kerasft export` refuse bad input in one line.

Each case: exit status 2, one line on stderr naming the file or the option,
nothing on stdout, no traceback, and nothing written. The export cases fail
before any TensorFlow process starts.
"""

import os
import zipfile

import keras
import numpy as np
import pytest

from kerasft import cli


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    inputs = keras.Input((3,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(2, name="y")(inputs))
    path = tmp_path_factory.mktemp("model") / "good.keras"
    model.save(path)
    return path


def _rewrite(source, target, member, transform):
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            data = old.read(info)
            new.writestr(
                info, transform(data) if info.filename == member else data
            )


def _damaged(kind, good, path):
    data = good.read_bytes()
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "random_bytes":
        path.write_bytes(np.random.default_rng(0).bytes(2048))
    elif kind == "truncated_config":
        _rewrite(good, path, "config.json", lambda d: d[: len(d) // 2])
    elif kind == "random_weights":
        _rewrite(
            good,
            path,
            "model.weights.h5",
            lambda d: np.random.default_rng(1).bytes(len(d)),
        )
    return path


DAMAGE = ["empty", "truncated", "random_bytes", "truncated_config"]
DAMAGE += ["random_weights"]


def _run(capsys, argv):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(code, out, err, command, *fragments):
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"kerasft {command}: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in err


def _tree(root):
    return sorted(os.fspath(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("kind", ["missing", *DAMAGE])
@pytest.mark.parametrize("command", ["summary", "export"])
def test_bad_keras_file(tmp_path, capsys, keras_file, command, kind):
    path = tmp_path / f"{kind}.keras"
    if kind != "missing":
        _damaged(kind, keras_file, path)
    before = _tree(tmp_path)
    argv = [command, os.fspath(path)]
    if command == "export":
        argv += ["--base-dir", os.fspath(tmp_path / "serving"), "--name", "m"]
    code, out, err = _run(capsys, argv)
    _assert_one_line_error(code, out, err, command, os.fspath(path))
    assert _tree(tmp_path) == before


def test_summary_still_reads_a_good_file(capsys, keras_file):
    code, out, err = _run(capsys, ["summary", os.fspath(keras_file)])
    assert code == 0 and err == ""
    assert "Stages of model" in out


def _export_argv(keras_file, base_dir, name="m", *options):
    return [
        "export",
        os.fspath(keras_file),
        "--base-dir",
        os.fspath(base_dir),
        "--name",
        name,
        *options,
    ]


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("base_dir_is_a_file", "a_file is a file"),
        ("base_dir_below_a_file", "a_file is a file"),
        ("name_too_long", "(300 characters)"),
        ("name_with_slash", "name='a/b'"),
        ("folder_name_too_long", "folder name longer than"),
        ("atol_nan", "Received: atol=nan"),
        ("version_zero", "Received: version=0"),
        ("models_config_invalid", "line 1, column 1"),
        ("models_config_a_folder", "models.config must be a file"),
    ],
)
def test_bad_export_option(tmp_path, capsys, keras_file, case, fragment):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    base_dir = tmp_path / "serving"
    argv = _export_argv(keras_file, base_dir)
    if case == "base_dir_is_a_file":
        argv = _export_argv(keras_file, a_file)
    elif case == "base_dir_below_a_file":
        argv = _export_argv(keras_file, a_file / "serving")
    elif case == "name_too_long":
        argv = _export_argv(keras_file, base_dir, "n" * 300)
    elif case == "name_with_slash":
        argv = _export_argv(keras_file, base_dir, "a/b")
    elif case == "folder_name_too_long":
        argv = _export_argv(keras_file, tmp_path / ("d" * 300))
    elif case == "atol_nan":
        argv += ["--atol", "nan"]
    elif case == "version_zero":
        argv += ["--version", "0"]
    elif case == "models_config_invalid":
        base_dir.mkdir()
        (base_dir / "models.config").write_text("nonsense {}\n")
    elif case == "models_config_a_folder":
        (base_dir / "models.config").mkdir(parents=True)
    before = _tree(tmp_path)
    code, out, err = _run(capsys, argv)
    _assert_one_line_error(code, out, err, "export", fragment)
    assert _tree(tmp_path) == before
