"""Runs every kerasft benchmark and prints one table each, plus JSON.

Benchmarks (each measures ratios side by side within one run, one worker
process per backend):

- caching: head-training epoch time, `kerasft.cached_fit` vs. plain fit
  with a frozen backbone (MobileNet, ResNet50);
- freeze_depth: training step time vs. `freeze_until` depth;
- unfreeze_schedule: `UnfreezeSchedule` inside one fit vs. the manual
  compile-per-phase recipe, each run in a fresh process
  (benchmarks/unfreeze_schedule.py);
- optimizer_memory: optimizer slot parameters vs. trainable parameters;
- discriminative_overhead: per-step time of discriminative (per-stage)
  learning rates vs. the plain optimizer
  (benchmarks/discriminative_overhead.py);
- backends: TensorFlow, JAX and PyTorch on one recipe.

Not part of the test suite: timings depend on the machine.

Usage:

    python benchmarks/run_all.py [--quick] [--backends jax,tensorflow,torch]
        [--only caching,freeze_depth] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _common  # noqa: E402
import backends as backends_bench  # noqa: E402
import caching  # noqa: E402
import freeze_depth  # noqa: E402
import optimizer_memory  # noqa: E402
import unfreeze_schedule  # noqa: E402

NAMES = (
    "caching",
    "freeze_depth",
    "unfreeze_schedule",
    "optimizer_memory",
    "discriminative_overhead",
    "backends",
)

DISCRIMINATIVE_COLUMNS = (
    "backend",
    "plain_step_ms",
    "discriminative_step_ms",
    "ratio",
    "ratio_of_min",
)


def _discriminative_overhead(backends, quick):
    rows = []
    for backend in backends:
        cmd = [
            sys.executable,
            os.path.join(HERE, "discriminative_overhead.py"),
            f"--backend={backend}",
            f"--repeats={3 if quick else 9}",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        out = proc.stdout
        start = out.find("{")
        try:
            rows.append(json.loads(out[start:]))
        except ValueError:
            rows.append({"backend": backend, "error": proc.stderr[-1500:]})
    return rows


def _machine():
    import importlib.metadata as md

    versions = {}
    for package in ("keras", "tensorflow", "jax", "torch", "numpy"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            versions[package] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "versions": versions,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--backends", default=",".join(_common.BACKENDS))
    parser.add_argument("--only", default=",".join(NAMES))
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    backends = args.backends.split(",")
    only = args.only.split(",")
    unknown = sorted(set(only) - set(NAMES))
    if unknown:
        parser.error(f"unknown benchmarks {unknown}; choose from {NAMES}")
    quick = args.quick
    document = {"quick": quick, "machine": _machine(), "benchmarks": {}}
    runs = {
        "caching": (
            lambda: caching.run(
                backends,
                ["mobilenet"] if quick else ["mobilenet", "resnet50"],
                size=96 if quick else 112,
                samples=128 if quick else 1024,
                epochs=3,
            ),
            caching.COLUMNS,
        ),
        "freeze_depth": (
            lambda: freeze_depth.run(
                backends,
                size=64 if quick else 96,
                steps=4 if quick else 8,
                every=2 if quick else 1,
            ),
            freeze_depth.COLUMNS,
        ),
        "unfreeze_schedule": (
            lambda: unfreeze_schedule.run(backends, repeats=1 if quick else 3),
            unfreeze_schedule.COLUMNS,
        ),
        "optimizer_memory": (
            lambda: optimizer_memory.run(backends),
            optimizer_memory.COLUMNS,
        ),
        "discriminative_overhead": (
            lambda: _discriminative_overhead(backends, quick),
            DISCRIMINATIVE_COLUMNS,
        ),
        "backends": (
            lambda: backends_bench.run(
                backends,
                size=64 if quick else 96,
                samples=128 if quick else 256,
            ),
            backends_bench.COLUMNS,
        ),
    }
    for name in NAMES:
        if name not in only:
            continue
        fn, columns = runs[name]
        start = time.perf_counter()
        rows = fn()
        seconds = time.perf_counter() - start
        document["benchmarks"][name] = {"seconds": seconds, "results": rows}
        print(f"\n== {name} ({seconds:.0f} s)")
        good = [r for r in rows if "error" not in r]
        if good:
            print(_common.table(good, columns))
        for r in rows:
            if "error" in r:
                print(f"{r['backend']}: failed\n{r['error']}", file=sys.stderr)
    print()
    print(json.dumps(document))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(document, f, indent=2)


if __name__ == "__main__":
    main()
