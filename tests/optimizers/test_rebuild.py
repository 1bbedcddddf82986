"""Tests for kerasft.optimizers.rebuild (optimizer rebuild for a new set)."""

import keras
import numpy as np
import pytest

from kerasft.optimizers import check_rebuildable
from kerasft.optimizers import rebuild_optimizer
from kerasft.optimizers import trainable_change

BACKEND = keras.backend.backend()


def _model(optimizer=None, jit_compile=False, steps_per_execution=1):
    inputs = keras.Input((4,))
    x = keras.layers.Dense(8, name="d0")(inputs)
    x = keras.layers.Dense(8, name="d1")(x)
    outputs = keras.layers.Dense(2, name="head")(x)
    model = keras.Model(inputs, outputs, name="tiny")
    model.get_layer("d0").trainable = False
    model.get_layer("d1").trainable = False
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(0.01),
        loss="mse",
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    return model


def _data(n=32):
    rng = np.random.default_rng(0)
    x = rng.random((n, 4), dtype="float32")
    y = rng.random((n, 2), dtype="float32")
    return x, y


def _by_name(optimizer):
    return {v.name: np.array(v.numpy()) for v in optimizer.variables}


def test_rebuild_carries_iterations_and_slots():
    model = _model()
    x, y = _data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    old = model.optimizer
    before = _by_name(old)
    model.get_layer("d1").trainable = True
    new = rebuild_optimizer(model)
    assert model.optimizer is new and new is not old
    after = _by_name(new)
    assert int(after["iteration"]) == 4
    for name in ("head_kernel_momentum", "head_bias_velocity"):
        np.testing.assert_array_equal(after[name], before[name])
        assert np.any(after[name] != 0)
    assert not np.any(after["d1_kernel_momentum"])
    # iteration + learning_rate + 2 slots per trainable variable.
    assert len(new.variables) == 2 + 2 * len(model.trainable_variables)
    assert not any(v.name.startswith("d0_") for v in new.variables)


def test_rebuild_keeps_learning_rate_value():
    model = _model(keras.optimizers.SGD(0.1, momentum=0.9))
    x, y = _data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    model.optimizer.learning_rate = 0.025
    model.get_layer("d0").trainable = True
    new = rebuild_optimizer(model)
    assert float(new.learning_rate) == pytest.approx(0.025)
    assert isinstance(new, keras.optimizers.SGD)
    assert new.get_config()["momentum"] == 0.9


def test_rebuild_drops_slots_of_frozen_variables():
    model = _model()
    model.get_layer("d1").trainable = True
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    x, y = _data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    model.get_layer("d1").trainable = False
    new = rebuild_optimizer(model)
    names = [v.name for v in new.variables]
    assert not any(name.startswith("d1_") for name in names)
    assert len(names) == 2 + 2 * 2


@pytest.mark.parametrize("jit_compile", [False, True])
def test_trainable_change_mid_epoch(jit_compile):
    model = _model(jit_compile=jit_compile)
    x, y = _data()
    d0 = model.get_layer("d0").kernel.numpy().copy()
    snapshots = {}

    class Change(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 2:
                snapshots["d1"] = self.model.get_layer("d1").kernel.numpy()
                with trainable_change(self.model):
                    self.model.get_layer("d1").trainable = True

    model.fit(x, y, batch_size=8, epochs=1, callbacks=[Change()], verbose=0)
    np.testing.assert_array_equal(model.get_layer("d0").kernel.numpy(), d0)
    assert np.any(model.get_layer("d1").kernel.numpy() != snapshots["d1"])
    assert int(model.optimizer.iterations.numpy()) == 4


@pytest.mark.skipif(
    BACKEND == "torch",
    reason="Keras' torch trainer requires steps_per_execution=1.",
)
def test_trainable_change_with_steps_per_execution():
    model = _model(steps_per_execution=2)
    x, y = _data()

    class Change(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 2:
                with trainable_change(self.model):
                    self.model.get_layer("d1").trainable = True

    d1 = model.get_layer("d1").kernel.numpy().copy()
    model.fit(x, y, batch_size=8, epochs=1, callbacks=[Change()], verbose=0)
    assert np.any(model.get_layer("d1").kernel.numpy() != d1)
    assert int(model.optimizer.iterations.numpy()) == 4


def test_rebuild_loss_scale_optimizer():
    inner = keras.optimizers.Adam(0.01)
    model = _model(keras.optimizers.LossScaleOptimizer(inner))
    x, y = _data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    before = _by_name(model.optimizer.inner_optimizer)
    model.get_layer("d1").trainable = True
    new = rebuild_optimizer(model)
    assert isinstance(new, keras.optimizers.LossScaleOptimizer)
    after = _by_name(new.inner_optimizer)
    np.testing.assert_array_equal(
        after["head_kernel_momentum"], before["head_kernel_momentum"]
    )
    assert int(after["iteration"]) == int(before["iteration"]) == 4
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert int(new.inner_optimizer.iterations.numpy()) == 8


def test_rebuild_multi_optimizer():
    optimizer = keras.optimizers.MultiOptimizer(
        keras.optimizers.OptimizerMap(
            keras.optimizers.Adam(0.01),
            {"head/.*": keras.optimizers.SGD(0.1, momentum=0.9)},
        )
    )
    model = _model(optimizer)
    x, y = _data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    before = {v.path: v.numpy() for v in model.optimizer.variables}
    model.get_layer("d1").trainable = True
    new = rebuild_optimizer(model)
    assert isinstance(new, keras.optimizers.MultiOptimizer)
    after = {v.path: v.numpy() for v in new.variables}
    momentum = [p for p in before if p.endswith("head_kernel_momentum")]
    assert momentum
    np.testing.assert_array_equal(after[momentum[0]], before[momentum[0]])
    assert any("d1_kernel" in p for p in after)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)


def test_rebuild_updates_saved_compile_config(tmp_path):
    model = _model()
    x, y = _data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    model.get_layer("d1").trainable = True
    rebuild_optimizer(model)
    model.optimizer.learning_rate = 0.005
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.get_layer("d1").trainable
    assert not loaded.get_layer("d0").trainable
    assert float(loaded.optimizer.learning_rate) == pytest.approx(0.005)
    assert int(loaded.optimizer.iterations.numpy()) == 8
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0)
    )


def test_uncompiled_model_raises():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="is not compiled with an optimizer"):
        rebuild_optimizer(model)
    with pytest.raises(ValueError, match="is not compiled"):
        with trainable_change(model):
            pass


def test_not_a_model_raises():
    with pytest.raises(TypeError, match="must be a keras.Model"):
        rebuild_optimizer("model")


@pytest.mark.filterwarnings("ignore:The object being serialized includes")
def test_unrebuildable_optimizers_raise():
    with pytest.raises(TypeError, match="can only rebuild a"):
        check_rebuildable("adam")
    by_function = keras.optimizers.MultiOptimizer(
        lambda variable: keras.optimizers.Adam()
    )
    with pytest.raises(TypeError, match="must round-trip through its config"):
        check_rebuildable(by_function)
