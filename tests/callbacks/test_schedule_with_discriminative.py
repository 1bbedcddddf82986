"""UnfreezeSchedule with discriminative rates: a stage unfrozen inside fit
starts at its own (reduced) learning rate."""

import keras
import numpy as np

from kerasft.callbacks import UnfreezeSchedule
from kerasft.optimizers import DiscriminativeOptimizer
from kerasft.optimizers import discriminative


def _model():
    inputs = keras.Input((4,))
    a = keras.layers.Dense(3, name="low")(inputs)
    b = keras.layers.Dense(3, name="high")(inputs)
    x = keras.layers.Add(name="add")([a, b])
    return keras.Model(inputs, keras.layers.Dense(1, name="out")(x))


def test_stage_unfrozen_mid_fit_trains_at_its_factor():
    model = _model()
    # Same initial weights in both branches, so their moves can be compared.
    model.get_layer("low").set_weights(model.get_layer("high").get_weights())
    optimizer = discriminative(keras.optimizers.SGD(0.05), model, {"low": 0.1})
    model.compile(optimizer=optimizer, loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = rng.normal(size=(16, 1)).astype("float32")
    low_start = model.get_layer("low").kernel.numpy().copy()
    high_start = model.get_layer("high").kernel.numpy().copy()

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                self.low = self.model.get_layer("low").kernel.numpy().copy()

    snapshot = Snapshot()
    schedule = UnfreezeSchedule({0: "high", 1: "low"})
    model.fit(
        x,
        y,
        batch_size=16,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[schedule, snapshot],
    )
    # Epoch 0: `low` frozen. Epoch 1: it trains, at 0.1x the rate.
    np.testing.assert_array_equal(snapshot.low, low_start)
    assert isinstance(model.optimizer, DiscriminativeOptimizer)
    rates = model.optimizer.stage_learning_rates()
    np.testing.assert_allclose(rates["low"], 0.005, rtol=1e-6)
    low_move = np.abs(model.get_layer("low").kernel.numpy() - low_start).sum()
    high_move = np.abs(
        model.get_layer("high").kernel.numpy() - high_start
    ).sum()
    assert 0 < low_move < 0.5 * high_move
