"""Benchmark: optimizer memory follows what trains, not the model size.

Keras builds an optimizer's slot variables (Adam: two per weight) for the
variables it is given. kerasft passes only the weights that train: after
`freeze_until` and `compile`, and after each `UnfreezeSchedule` change
(which rebuilds the optimizer over the new trainable set), so slots exist
only for weights that are, or were made, trainable. Per backend, for a
MobileNet classifier trained with Adam:

- `slot_params / trainable_params`: optimizer slot parameters per trainable
  parameter (2.0 for Adam, i.e. no slots for frozen weights);
- `slot_params / total_params`: the same against the whole model (what an
  optimizer over every weight would need divided by 2).

Usage:

    python benchmarks/optimizer_memory.py [--backends jax,tensorflow,torch]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402


def _params(variables):
    import numpy as np

    return int(sum(int(np.prod(v.shape)) for v in variables))


def _slots(optimizer):
    """Optimizer variables with the shape of a model weight (not counters)."""
    return [v for v in optimizer.variables if len(v.shape) > 0]


def _worker(args):
    _common.setup_path()
    import keras
    import numpy as np

    import kerasft
    import kerasft.callbacks  # noqa: F401

    keras.utils.set_random_seed(0)
    model = kerasft.build_classifier(
        _common.backbone(keras, kerasft, "mobilenet", args.size), num_classes=10
    )
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (32, args.size, args.size, 3)).astype("float32")
    y = rng.integers(0, 10, size=(32,))
    total = _params(model.weights)
    rows = []

    def record(setup):
        optimizer = model.optimizer
        trainable = _params(model.trainable_variables)
        slots = _params(_slots(optimizer))
        rows.append(
            {
                "backend": keras.backend.backend(),
                "setup": setup,
                "total_params": total,
                "trainable_params": trainable,
                "optimizer_vars": len(optimizer.variables),
                "slot_params": slots,
                "slots_per_trainable": slots / max(trainable, 1),
                "slots_per_total": slots / total,
            }
        )

    def compile_():
        model.compile(
            optimizer=keras.optimizers.Adam(1e-4),
            loss="sparse_categorical_crossentropy",
        )

    kerasft.unfreeze(model)
    compile_()
    model.fit(x, y, batch_size=32, verbose=0)
    record("all trainable")
    kerasft.freeze_until(model, "block4")
    compile_()
    model.fit(x, y, batch_size=32, verbose=0)
    record("freeze_until block4")
    kerasft.freeze_until(model, "head", inclusive=False)
    compile_()
    schedule = kerasft.callbacks.UnfreezeSchedule({0: "head", 1: "block5"})
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[schedule])
    record("UnfreezeSchedule head->block5")
    _common.emit({"results": rows})


COLUMNS = (
    "backend",
    "setup",
    "total_params",
    "trainable_params",
    "optimizer_vars",
    "slot_params",
    "slots_per_trainable",
    "slots_per_total",
)


def run(backends, size=64):
    return _common.run_workers(
        os.path.abspath(__file__), backends, [f"--size={size}"]
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(_common.BACKENDS))
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--json", default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    rows = run(args.backends.split(","), args.size)
    print(_common.table(rows, COLUMNS))
    document = {"benchmark": "optimizer_memory", "results": rows}
    print(json.dumps(document))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(document, f, indent=2)


if __name__ == "__main__":
    main()
