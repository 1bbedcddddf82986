"""The callbacks refuse, at train begin, a distributed setup they cannot
support (a torch.distributed process group of more than one process).

The real two-process case is in test_torch_distribution.py; here the
process group is simulated, so the refusal logic is checked on every
backend in milliseconds.
"""

import keras
import numpy as np
import pytest

from kerasft._src import keras_internals
from kerasft.callbacks import FreezeUntil
from kerasft.callbacks import UnfreezeSchedule


def _model():
    inputs = keras.Input((4,))
    x = keras.layers.Dense(8, name="d0")(inputs)
    outputs = keras.layers.Dense(2, name="head")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model


def test_world_size_is_one_without_a_process_group():
    assert keras_internals.torch_world_size() == 1


@pytest.mark.parametrize(
    "callback",
    [UnfreezeSchedule({0: "head", 1: 0}), FreezeUntil("d0")],
    ids=["UnfreezeSchedule", "FreezeUntil"],
)
def test_refuses_under_torch_process_group(monkeypatch, callback):
    monkeypatch.setattr(keras_internals, "torch_world_size", lambda: 2)
    model = _model()
    rng = np.random.default_rng(0)
    x = rng.random((8, 4), dtype="float32")
    y = rng.random((8, 2), dtype="float32")
    before = [w.copy() for w in model.get_weights()]
    name = type(callback).__name__
    with pytest.raises(
        ValueError,
        match=rf"^{name} cannot change which weights train under "
        r"torch\.distributed.*Received: a torch\.distributed process group "
        r"with world_size=2\.$",
    ):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[callback])
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    # The refused fit leaves no interception of optimizer loading behind.
    assert "load_own_variables" not in vars(model.optimizer)
    # Without the process group the same instance works.
    monkeypatch.undo()
    model.fit(x, y, epochs=2, verbose=0, callbacks=[callback])
    assert callback.changes
