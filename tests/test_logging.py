"""kerasft writes through its loggers: no stray print or stdout/stderr write.

Allowed: the command's own output (the `kerasft summary` table's
`print_fn` default, `kerasft export` printing the export path and its
errors) and the command handler in `kerasft/_src/logs.py`.
"""

import ast
import logging
import os
import pathlib

import pytest

import kerasft

ROOT = pathlib.Path(kerasft.__file__).parent
# (file, function): the places that write to the terminal on purpose.
ALLOWED = {
    ("_src/logs.py", "emit"),  # the command's logging handler
    ("_src/logs.py", "verbose_message"),  # Keras's `verbose` convention
    ("_src/freezing.py", "summary"),  # print_fn=print, like model.summary
    ("_src/cli.py", "_summary"),  # `kerasft summary`: the command's output
    ("_src/cli.py", "_finetune"),  # sys.stdout.isatty(): bar or epoch lines
    ("_src/export/cli.py", "run"),  # `kerasft export`: the path, errors
    ("_src/cli_parser.py", "error"),  # argparse's usage errors, one line
    # Moves the process's stderr aside while TensorFlow loads (commands).
    ("_src/native_logs.py", "filtered_stderr"),
}


def _stray_writes(path):
    tree = ast.parse(path.read_text())
    found = []

    def visit(node, function):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = node.name
        bad = (isinstance(node, ast.Name) and node.id == "print") or (
            isinstance(node, ast.Attribute)
            and node.attr in ("stdout", "stderr")
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
        )
        if bad:
            found.append((function, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, None)
    return found


def test_no_stray_writes_to_stdout_or_stderr():
    stray = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        for function, line in _stray_writes(path):
            if (relative, function) not in ALLOWED:
                stray.append(f"{relative}:{line} in {function}")
    assert not stray, "write through kerasft's logger instead: " + ", ".join(
        stray
    )


def test_records_reach_the_kerasft_logger(caplog):
    from kerasft._src.logs import get_logger

    with caplog.at_level("INFO", logger="kerasft"):
        get_logger("finetune").info("hello")
    assert [r.name for r in caplog.records] == ["kerasft.finetune"]


def test_verbose_lines_print_like_keras_until_kerasft_has_a_handler(capsys):
    from kerasft._src.logs import verbose_message

    verbose_message("callbacks", "Epoch 1: stage changed")
    assert capsys.readouterr().out == "Epoch 1: stage changed\n"
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("kerasft")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        verbose_message("callbacks", "Epoch 2: stage changed")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert [r.getMessage() for r in records] == ["Epoch 2: stage changed"]
    assert [r.name for r in records] == ["kerasft.callbacks"]
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "argv, orig_argv, quiet",
    [
        (["/venv/bin/kerasft", "finetune"], [], True),
        (["-m"], ["python", "-m", "kerasft.cli", "finetune"], True),
        (["-m"], ["python", "-m", "kerasft.assets"], True),
        (["/venv/bin/kerasft", "finetune", "-v"], [], False),
        (["train.py"], ["python", "train.py"], False),
    ],
)
def test_native_log_levels_only_for_commands(argv, orig_argv, quiet):
    from kerasft._src import native_logs

    environ = {"GRPC_VERBOSITY": "DEBUG"}  # set by the user: kept
    added = native_logs.quiet_for_command(environ, argv, orig_argv)
    if quiet:
        assert added == {"TF_CPP_MIN_LOG_LEVEL": "3", "GLOG_minloglevel": "2"}
        assert environ["GRPC_VERBOSITY"] == "DEBUG"
        assert environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
    else:
        assert added == {} and environ == {"GRPC_VERBOSITY": "DEBUG"}


def test_native_notices_are_dropped_other_lines_kept(capfd):
    from kerasft._src import native_logs

    with native_logs.filtered_stderr():
        # Written at the file-descriptor level, as C++ code writes them.
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() ")
        os.write(2, b"is called are written to STDERR\n")
        os.write(2, b"I0000 00:00:1796083156.411618   16358 port.cc:153] x\n")
        os.write(2, b"W0000 00:00:1796083156.4   16358 cuda.cc:31] y\n")
        os.write(2, b"E0000 00:00:1796083156.4   16358 cuda.cc:31] kept\n")
        os.write(2, b"a line of the program\n")
    err = capfd.readouterr().err
    assert err.splitlines() == [
        "E0000 00:00:1796083156.4   16358 cuda.cc:31] kept",
        "a line of the program",
    ]


def test_quiet_imports_only_for_commands():
    from kerasft._src import native_logs

    quiet = {"TF_CPP_MIN_LOG_LEVEL": "3"}
    command = ["/venv/bin/kerasft", "finetune"]
    assert native_logs.quiet_imports(dict(quiet), command, [])
    assert not native_logs.quiet_imports(dict(quiet), ["train.py"], [])
    assert not native_logs.quiet_imports(dict(quiet), [*command, "-v"], [])
    # A level the user chose is theirs.
    user = {"TF_CPP_MIN_LOG_LEVEL": "0"}
    assert not native_logs.quiet_imports(user, command, [])
