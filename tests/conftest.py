"""Shared test setup. The suite runs once per backend (tools/run_tests.py)."""

import gc
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# XLA compiles every program the tests run with LLVM's full optimisation,
# and most of the tests' programs are tiny and run a few steps: compiling
# dominates the JAX suite. Level 1 without LLVM's expensive passes cut the
# CPU time of tests/backbones/test_hub_families.py by a third and of the
# fusion example's smoke run by a fifth (level 0 made that one slower). The
# programs compute the same results. Subprocesses that the tests start
# (examples, multi-process workers) inherit it.
_FAST_XLA = (
    "--xla_backend_optimization_level=1",
    "--xla_llvm_disable_expensive_passes=true",
)
os.environ["XLA_FLAGS"] = " ".join(
    [os.environ.get("XLA_FLAGS", ""), *_FAST_XLA]
).strip()

import keras  # noqa: E402
import pytest  # noqa: E402


def skip_graph_optimizer():
    """Turns TensorFlow's graph optimiser (Grappler) off in this process.

    Grappler rewrites every `tf.function` graph before its first run, which
    pays off over many steps; the tests run a few steps per graph, and
    without it the TensorFlow suite needs 10-18% less CPU time (measured on
    tests/callbacks, tests/optimizers and tests/test_cli.py). The graphs
    compute the same results. The examples' driver calls it too.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.optimizer.set_experimental_options(
            {"disable_meta_optimizer": True}
        )


skip_graph_optimizer()


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend {keras.backend.backend()}"


def pytest_collection_finish(session):
    """Hides the imported modules' objects from the garbage collector.

    The backends' modules hold hundreds of thousands of long-lived objects
    (TensorFlow and PyTorch about 400,000). Each test's `clear_session()`
    runs a full collection, and so do Python's automatic ones while a test
    builds a model: walking those objects cost about 0.5 s per test.
    `gc.freeze()` moves what exists after collection out of every later
    collection; the garbage that tests create is still collected.
    """
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Each test starts with a clean name scope and a fixed seed."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(1337)
    yield
