"""The per-backend test runner: summary line and exit codes."""

import os
import subprocess
import sys

import keras

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "tools", "run_tests.py")


def _run(tmp_path, body, *options, twice=False):
    test_dir = tmp_path / "suite"
    test_dir.mkdir()
    if body is not None:
        (test_dir / "test_x.py").write_text(body)
    backends = keras.backend.backend()
    if twice:
        backends += "," + backends
    return subprocess.run(
        [sys.executable, RUNNER, "--backends", backends, *options]
        + [str(test_dir)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )


def test_no_tests_collected_is_a_failure(tmp_path):
    proc = _run(tmp_path, None)
    assert proc.returncode == 1
    assert "no tests collected" in proc.stdout


def test_summary_line_and_failure_exit_code(tmp_path):
    body = "def test_a():\n    pass\n\ndef test_b():\n    assert False\n"
    proc = _run(tmp_path, body)
    assert proc.returncode == 1
    assert "kerasft: 1 passed, 1 failed, 0 skipped" in proc.stdout


def test_passing_suite_exits_zero(tmp_path):
    proc = _run(tmp_path, "def test_a():\n    pass\n")
    assert proc.returncode == 0, proc.stdout
    assert "kerasft: 1 passed, 0 failed, 0 skipped" in proc.stdout


def test_over_budget_fails_naming_the_slowest_tests(tmp_path):
    body = "import time\n\ndef test_sleepy():\n    time.sleep(0.2)\n"
    proc = _run(tmp_path, body, "--budget-minutes", "0")
    assert proc.returncode == 1, proc.stdout
    assert "kerasft: 1 passed, 0 failed, 0 skipped" in proc.stdout
    assert "over its budget of 0.0 minutes" in proc.stdout
    slowest = proc.stdout.split("The slowest:")[1]
    assert "call" in slowest and "test_x.py::test_sleepy" in slowest


def test_concurrent_backends_print_whole_outputs(tmp_path):
    proc = _run(
        tmp_path, "def test_a():\n    pass\n", "--jobs", "2", twice=True
    )
    assert proc.returncode == 0, proc.stdout
    assert "kerasft: 2 passed, 0 failed, 0 skipped" in proc.stdout
    assert proc.stdout.count(" finished in ") == 2
    assert "wall time: " in proc.stdout
