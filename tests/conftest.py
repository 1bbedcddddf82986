"""Shared test setup. The suite runs once per backend (tools/run_tests.py)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend {keras.backend.backend()}"


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Each test starts with a clean name scope and a fixed seed."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(1337)
    yield
