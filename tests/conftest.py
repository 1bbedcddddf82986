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
    (TensorFlow and PyTorch about 400,000), and so do the modules tests
    import later (TensorFlow under JAX for an export, keras-hub). A full
    collection walks them all: 0.1 to 0.5 s, once per test and again in
    Python's automatic collections while a test builds a model.
    `gc.freeze()` moves what exists now out of every later collection.
    """
    gc.collect()
    gc.freeze()
    _frozen_after_full[0] = gc.get_freeze_count()


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Each test starts with a clean name scope and a fixed seed.

    The previous test's garbage is collected, and what survives it (new
    modules, module-scoped fixtures) is frozen like the imports, so a
    collection walks only what the test itself creates.
    """
    keras.backend.clear_session(free_memory=False)
    gc.collect()
    gc.freeze()
    keras.utils.set_random_seed(1337)
    yield


# A file's module fixtures that froze more objects than this (a small
# model is about 10,000) get a full collection once the file is done.
_FROZEN_GROWTH = 50_000
_frozen_after_full = [0]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """After a test file's last test, once its module fixtures are gone.

    What those fixtures held was frozen by `_fresh_keras_session`; a full
    collection frees it, when the frozen objects grew enough for it to
    matter (a full collection costs about a second).
    """
    yield
    module = item.getparent(pytest.Module)
    if nextitem is not None and nextitem.getparent(pytest.Module) is module:
        return
    if gc.get_freeze_count() - _frozen_after_full[0] > _FROZEN_GROWTH:
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        _frozen_after_full[0] = gc.get_freeze_count()
