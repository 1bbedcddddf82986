"""Run the kerasft test suite once per Keras backend, each in its own process.

Usage:
    python tools/run_tests.py [--backends tensorflow,jax,torch] [--jobs N]
        [--budget-minutes M] [pytest args]

Prints each backend's pytest output, one summary line per backend with its
wall time, and a combined line at the end, e.g.
`kerasft: 412 passed, 0 failed, 9 skipped`. Exits non-zero if any backend
fails or collects no tests (pytest exit code 5), or if the whole run took
longer than the time budget (35 minutes unless `--budget-minutes` says
otherwise); then it names the slowest tests. pytest reports each backend's
15 slowest tests (`--durations=15`; a `--durations` of your own wins).
"""

import argparse
import concurrent.futures
import os
import re
import subprocess
import sys
import threading
import time

BACKENDS = ("tensorflow", "jax", "torch")
# `.ci/run` has 30 minutes here; the tests' share is about 28. Past 35
# minutes something grew: the run fails and names the slowest tests.
BUDGET_MINUTES = 35.0
DURATIONS = 15
_COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed)")
# One line of pytest's `--durations` table: "12.34s call     tests/x.py::t".
_DURATION = re.compile(r"^\s*([\d.]+)s (setup|call|teardown)\s+(\S.*)$")


def _counts(output):
    # pytest's closing line: "3 passed, 1 skipped in 2.0s" (-q) or the same
    # framed by "=" signs.
    lines = [
        ln
        for ln in output.splitlines()
        if _COUNT.search(ln) and re.search(r" in [\d.]+s", ln)
    ]
    counts = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
    if not lines:
        return counts
    for number, word in _COUNT.findall(lines[-1]):
        key = "error" if word.startswith("error") else word
        if key in counts:
            counts[key] += int(number)
    return counts


def _durations(output):
    """The (seconds, phase, test id) rows of pytest's durations table."""
    rows = []
    for line in output.splitlines():
        match = _DURATION.match(line)
        if match:
            rows.append((float(match[1]), match[2], match[3].strip()))
    return rows


def _run_backend(backend, pytest_args, stream):
    """Runs pytest on one backend; returns (exit code, output, seconds).

    With `stream`, the output is written as it comes; otherwise it is
    returned whole, so that concurrent backends do not interleave.
    """
    env = dict(os.environ, KERAS_BACKEND=backend)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    cmd += [f"--durations={DURATIONS}", *pytest_args]
    header = f"\n===== KERAS_BACKEND={backend}: {' '.join(cmd)}\n"
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    captured = [header]
    if stream:
        sys.stdout.write(header)
        sys.stdout.flush()
    for line in proc.stdout:
        if stream:
            sys.stdout.write(line)
            sys.stdout.flush()
        captured.append(line)
    code = proc.wait()
    return code, "".join(captured), time.monotonic() - start


def _run_all(backends, pytest_args, jobs):
    """Runs the backends, `jobs` at a time, in the order given."""
    if jobs <= 1:
        return [_run_backend(b, pytest_args, stream=True) for b in backends]
    lock = threading.Lock()

    def run(backend):
        result = _run_backend(backend, pytest_args, stream=False)
        with lock:  # Whole outputs, one backend after the other.
            sys.stdout.write(result[1])
            sys.stdout.write(
                f"\n===== {backend} finished in {result[2]:.0f}s\n"
            )
            sys.stdout.flush()
        return result

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(run, backends))


def _status(code, counts):
    if code == 5:
        return "FAILED (no tests collected)"
    if code == 0 and counts["passed"] == 0:
        return "FAILED (no test passed)"
    if code != 0:
        return f"FAILED (pytest exit code {code})"
    return "ok"


def _report_over_budget(results, wall, budget):
    print(
        f"FAILED: the test run took {wall / 60:.1f} minutes, over its "
        f"budget of {budget / 60:.1f} minutes. Make these tests cheaper "
        "(share built models in module-scoped fixtures, use smaller "
        "inputs). The slowest:"
    )
    rows = [
        (seconds, backend, phase, test)
        for backend, _, _, output, _ in results
        for seconds, phase, test in _durations(output)
    ]
    for seconds, backend, phase, test in sorted(rows, reverse=True)[:DURATIONS]:
        print(f"  {seconds:8.2f}s {backend:>10} {phase:<8} {test}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="Comma-separated backends. Defaults to all three.",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="How many backends run at the same time. Defaults to 1.",
    )
    parser.add_argument(
        "--budget-minutes",
        type=float,
        default=BUDGET_MINUTES,
        help="Fail if the whole run takes longer. Defaults to "
        f"{BUDGET_MINUTES:g}.",
    )
    args, pytest_args = parser.parse_known_args(argv)
    backends = [b for b in args.backends.split(",") if b]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        parser.error(
            f"Unknown backend(s) {unknown}. Allowed: {list(BACKENDS)}."
        )
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1. Received: jobs={args.jobs}")

    start = time.monotonic()
    runs = _run_all(backends, pytest_args, args.jobs)
    wall = time.monotonic() - start
    results = [
        (backend, code, _counts(output), output, seconds)
        for backend, (code, output, seconds) in zip(backends, runs)
    ]

    print("\n===== summary")
    total = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
    failed_backends = []
    for backend, code, counts, _, seconds in results:
        for key in total:
            total[key] += counts[key]
        status = _status(code, counts)
        if status != "ok":
            failed_backends.append(backend)
        print(
            f"{backend:>10}: {counts['passed']} passed, "
            f"{counts['failed']} failed, {counts['skipped']} skipped, "
            f"{counts['error']} errors in {seconds:.0f}s -> {status}"
        )
    budget = args.budget_minutes * 60
    print(f"wall time: {wall:.0f}s (budget {budget:.0f}s)")
    failed = total["failed"] + total["error"]
    print(
        f"kerasft: {total['passed']} passed, {failed} failed, "
        f"{total['skipped']} skipped"
    )
    code = 0
    if failed_backends:
        print(f"FAILED backends: {', '.join(failed_backends)}")
        code = 1
    if wall > budget:
        _report_over_budget(results, wall, budget)
        code = 1
    return code


if __name__ == "__main__":
    sys.exit(main())
