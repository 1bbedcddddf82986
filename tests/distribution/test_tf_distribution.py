"""kerasft callbacks and discriminative rates under `MirroredStrategy`.

The run happens in `tf_worker.py`, which splits the CPU into two logical
devices before TensorFlow starts (see `_scenario.py` for the fine-tuning
run): once without a strategy and once under
`tf.distribute.MirroredStrategy` over both devices.
"""

import keras
import numpy as np
import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        keras.backend.backend() != "tensorflow",
        reason="tf.distribute is exercised on the TensorFlow backend; "
        "this file runs when KERAS_BACKEND=tensorflow",
    ),
]

import _scenario  # noqa: E402
from _worker_run import run_worker  # noqa: E402

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def result():
    pytest.importorskip("keras_hub")
    return run_worker("tf_worker.py", "tensorflow")


@pytest.mark.parametrize("mode", ("single", "mirrored"))
def test_callbacks_apply_their_schedules(result, mode):
    run = result[mode]
    assert run["optimizer"] == "DiscriminativeOptimizer"
    assert run["schedule_stages"] == _scenario.SCHEDULE_STAGES
    assert run["freeze_until_stages"] == _scenario.FREEZE_UNTIL_STAGES
    assert run["frozen_unchanged"]


def test_rebuilt_optimizer_is_mirrored(result):
    run = result["mirrored"]
    assert run["replicas"] == 2
    assert run["replica_checks"] == 2 * _scenario.EPOCHS + 2
    # Every variable, including the optimizer variables created by the
    # rebuilds inside `fit`, has one copy per replica...
    assert run["not_mirrored"] == []
    # ...and the copies agree after every step.
    assert run["replica_problems"] == []


def test_matches_single_device_run(result):
    run = result["mirrored"]
    assert run["max_difference"] < TOLERANCE
    np.testing.assert_allclose(
        run["losses"], result["single"]["losses"], rtol=1e-5
    )
    # L2-SP (kerasft.regularizers) contributes, and the same amount.
    assert result["single"]["penalty"] > 0
    np.testing.assert_allclose(
        run["penalty"], result["single"]["penalty"], rtol=1e-4
    )


def test_rebuild_in_the_model_strategy_scope():
    # In process, under a strategy other than the default one: the new
    # optimizer must be constructed and built in the model's strategy scope
    # (a TF optimizer records the strategy current at construction).
    import tensorflow as tf

    from kerasft.callbacks import UnfreezeSchedule

    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        inputs = keras.Input((4,))
        x = keras.layers.Dense(8, name="d0")(inputs)
        model = keras.Model(inputs, keras.layers.Dense(2, name="head")(x))
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    rng = np.random.default_rng(0)
    x = rng.random((16, 4), dtype="float32")
    y = rng.random((16, 2), dtype="float32")
    start = model.get_layer("d0").kernel.numpy().copy()
    schedule = UnfreezeSchedule({0: "head", 1: 0})
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[schedule])
    assert [c["stages"] for c in schedule.changes] == [
        ["head"],
        ["d0", "head"],
    ]
    assert not np.array_equal(model.get_layer("d0").kernel.numpy(), start)
    assert len(model.optimizer.variables) == 2 + 2 * 4
    assert all(
        strategy.extended.variable_created_in_scope(v.value)
        for v in model.optimizer.variables
    )
