"""The `kerasft` command: summary and help (export is tested in export/)."""

import os

import keras
import pytest

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
    assert "cannot load" in capsys.readouterr().out


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "summary" in out and "export" in out and "examples:" in out
