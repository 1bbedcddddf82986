"""Run the kerasft test suite once per Keras backend, each in its own process.

Usage:
    python tools/run_tests.py [--backends tensorflow,jax,torch] [pytest args]

Prints one summary line per backend and a combined line at the end, e.g.
`kerasft: 412 passed, 0 failed, 9 skipped`, and exits non-zero if any
backend fails or collects no tests (pytest exit code 5).
"""

import argparse
import os
import re
import subprocess
import sys
import time

BACKENDS = ("tensorflow", "jax", "torch")
_COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed)")


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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="Comma-separated backends. Defaults to all three.",
    )
    args, pytest_args = parser.parse_known_args(argv)
    backends = [b for b in args.backends.split(",") if b]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        parser.error(
            f"Unknown backend(s) {unknown}. Allowed: {list(BACKENDS)}."
        )

    results = []
    for backend in backends:
        env = dict(os.environ, KERAS_BACKEND=backend)
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        cmd += pytest_args
        print(f"\n===== KERAS_BACKEND={backend}: {' '.join(cmd)}", flush=True)
        start = time.monotonic()
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        captured = []
        for line in proc.stdout:
            sys.stdout.write(line)
            captured.append(line)
        code = proc.wait()
        counts = _counts("".join(captured))
        results.append((backend, code, counts, time.monotonic() - start))

    print("\n===== summary")
    total = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
    failed_backends = []
    for backend, code, counts, seconds in results:
        for key in total:
            total[key] += counts[key]
        status = "ok"
        if code == 5:
            status = "FAILED (no tests collected)"
        elif code == 0 and counts["passed"] == 0:
            status = "FAILED (no test passed)"
        elif code != 0:
            status = f"FAILED (pytest exit code {code})"
        if status != "ok":
            failed_backends.append(backend)
        print(
            f"{backend:>10}: {counts['passed']} passed, "
            f"{counts['failed']} failed, {counts['skipped']} skipped, "
            f"{counts['error']} errors in {seconds:.0f}s -> {status}"
        )
    failed = total["failed"] + total["error"]
    print(
        f"kerasft: {total['passed']} passed, {failed} failed, "
        f"{total['skipped']} skipped"
    )
    if failed_backends:
        print(f"FAILED backends: {', '.join(failed_backends)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
