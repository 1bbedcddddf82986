"""Helpers shared by the `kerasft finetune` command's tests."""

import re

from kerasft import cli


def finetune(capsys, *args):
    """Runs `kerasft finetune ARGS`; returns (exit code, stdout, stderr)."""
    code = cli.main(["finetune", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, match):
    """Exit status 2 and one `kerasft finetune: error:` line matching."""
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("kerasft finetune: error: ")
    assert re.search(match, lines[0]), lines[0]
    assert "Traceback" not in err
