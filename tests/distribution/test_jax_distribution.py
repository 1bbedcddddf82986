"""kerasft callbacks and discriminative rates under `keras.distribution`.

The run happens in `jax_worker.py` with four virtual CPU devices (see
`_scenario.py` for the fine-tuning run): one device, `DataParallel` over
all four, and `ModelParallel` on a 2x2 (batch, model) mesh whose
`LayoutMap` shards BERT's embedding, attention and feed-forward kernels.
"""

import os

import keras
import numpy as np
import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        keras.backend.backend() != "jax",
        reason="keras.distribution is exercised on the JAX backend; "
        "this file runs when KERAS_BACKEND=jax",
    ),
]

import _scenario  # noqa: E402
from _worker_run import run_worker  # noqa: E402

DISTRIBUTED = ("data_parallel", "model_parallel")
# Float32 sums split over devices round differently; the runs agree to
# about 1e-7 (measured).
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def result():
    pytest.importorskip("keras_hub")
    flags = [os.environ.get("XLA_FLAGS", "")]
    flags.append("--xla_force_host_platform_device_count=4")
    return run_worker("jax_worker.py", "jax", {"XLA_FLAGS": " ".join(flags)})


def test_runs_on_four_devices(result):
    assert result["devices"] == 4


@pytest.mark.parametrize("mode", ("single",) + DISTRIBUTED)
def test_callbacks_apply_their_schedules(result, mode):
    run = result[mode]
    assert run["optimizer"] == "DiscriminativeOptimizer"
    assert run["schedule_stages"] == _scenario.SCHEDULE_STAGES
    assert run["freeze_until_stages"] == _scenario.FREEZE_UNTIL_STAGES
    assert run["frozen_unchanged"]


@pytest.mark.parametrize("mode", DISTRIBUTED)
def test_replicas_identical_after_every_step(result, mode):
    run = result[mode]
    assert run["replica_checks"] == 2 * _scenario.EPOCHS + 2
    assert run["replica_problems"] == []
    # Every model and optimizer variable, including those the rebuilds
    # created, lives on all devices.
    assert run["not_on_all_devices"] == []


@pytest.mark.parametrize("mode", DISTRIBUTED)
def test_matches_single_device_run(result, mode):
    run = result[mode]
    assert run["max_difference"] < TOLERANCE
    np.testing.assert_allclose(
        run["losses"], result["single"]["losses"], rtol=1e-5
    )
    # L2-SP (kerasft.regularizers) contributes, and the same amount.
    assert result["single"]["penalty"] > 0
    np.testing.assert_allclose(
        run["penalty"], result["single"]["penalty"], rtol=1e-4
    )


def test_data_parallel_replicates_everything(result):
    assert result["data_parallel"]["sharded"] == []


def test_model_parallel_keeps_layouts_through_rebuilds(result):
    run = result["model_parallel"]
    sharded = set(run["sharded"])
    # The LayoutMap's kernels stay sharded...
    for path in ("token_embedding/embeddings",) + tuple(
        f"transformer_layer_{i}/{name}/kernel"
        for i in (0, 1)
        for name in (
            "feedforward_intermediate_dense",
            "feedforward_output_dense",
            "self_attention_layer/query",
            "self_attention_layer/key",
            "self_attention_layer/value",
        )
    ):
        assert path in sharded
    # ...and Adam's two slots of each sharded trainable kernel, created by
    # the last rebuild, are sharded like it.
    trainable = run["trainable_sharded"]
    assert len(trainable) == 10
    slots = [p for p in sharded if "momentum" in p or "velocity" in p]
    assert len(slots) == 2 * len(trainable)
