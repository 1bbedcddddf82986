"""kerasft under `torch.distributed` (gloo, two CPU processes).

Keras's torch trainer has no distributed support in `fit`, so the
callbacks refuse to run in a process group of more than one process, and
the supported path is the Keras guide's own loop around
`DistributedDataParallel`, with a new wrapper after each change of the
trainable set. `torch_worker.py` runs both and, for contrast, the
pitfall: changing `requires_grad` under an existing DDP wrapper.
"""

import keras
import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        keras.backend.backend() != "torch",
        reason="torch.distributed is exercised on the torch backend; "
        "this file runs when KERAS_BACKEND=torch",
    ),
]

from _worker_run import run_worker  # noqa: E402

ALL_STAGES = [
    "embeddings",
    "transformer_layer_0",
    "transformer_layer_1",
    "pooler",
    "head",
]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    pytest.importorskip("keras_hub")
    dist = pytest.importorskip("torch.distributed")
    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("this torch build has no gloo backend")
    out = tmp_path_factory.mktemp("torch_ddp")
    return run_worker("torch_worker.py", "torch", args=[str(out)])


def test_callbacks_refuse_under_torch_distributed(result):
    refusal = result["refusal"]
    messages = refusal["messages"]
    for name, message in zip(("UnfreezeSchedule", "FreezeUntil"), messages):
        assert message is not None, f"{name} ran under torch.distributed"
        assert message.startswith(f"{name} cannot change which weights train")
        assert "world_size=2" in message
        assert "new `DistributedDataParallel`" in message
    # Refused in on_train_begin: no step ran.
    assert refusal["unchanged"]


def test_ddp_rewrapped_after_each_change_stays_in_sync(result):
    run = result["rewrap"]
    assert run["stages"] == ALL_STAGES
    assert run["rank_difference"] == 0.0
    # Equals one process on the whole global batch.
    assert run["reference_difference"] < 1e-5


def test_changing_requires_grad_under_one_ddp_wrapper_diverges(result):
    # The documented pitfall (Lightning #20340): the stages unfrozen after
    # DDP was constructed are never all-reduced.
    run = result["naive"]
    assert run["rank_difference"] > 1e-3
    assert run["reference_difference"] > 1e-3
