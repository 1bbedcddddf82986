"""Compiler settings that make the tests' tiny programs cheaper.

Most of the suite's programs are tiny and run a few steps, so compiling
them costs more than running them. Neither setting changes what a program
computes. Used by `conftest.py` (the test session; the processes it starts
inherit `XLA_FLAGS`) and by `_examples_driver.py`.
"""

import os

# XLA compiles with LLVM's full optimisation by default. Level 1 without
# LLVM's expensive passes cut the CPU time of
# tests/backbones/test_hub_families.py by a third and of the fusion
# example's smoke run by a fifth (level 0 made that one slower).
FAST_XLA_FLAGS = (
    "--xla_backend_optimization_level=1",
    "--xla_llvm_disable_expensive_passes=true",
)


def use_fast_xla_flags():
    """Adds `FAST_XLA_FLAGS` to `XLA_FLAGS`, before JAX starts."""
    os.environ["XLA_FLAGS"] = " ".join(
        [os.environ.get("XLA_FLAGS", ""), *FAST_XLA_FLAGS]
    ).strip()


def skip_graph_optimizer(backend):
    """Turns TensorFlow's graph optimiser (Grappler) off in this process.

    Grappler rewrites every `tf.function` graph before its first run, which
    pays off over many steps; the tests run a few steps per graph, and
    without it the TensorFlow suite needs 10-18% less CPU time (measured on
    tests/callbacks, tests/optimizers and tests/test_cli.py).
    """
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.optimizer.set_experimental_options(
            {"disable_meta_optimizer": True}
        )
