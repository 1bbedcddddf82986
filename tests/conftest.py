"""Shared test setup. The suite runs once per backend (tools/run_tests.py)."""

import gc
import os

import _fast_compile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_fast_compile.use_fast_xla_flags()

import keras  # noqa: E402
import pytest  # noqa: E402

_fast_compile.skip_graph_optimizer(keras.backend.backend())


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
