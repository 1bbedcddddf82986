"""torch worker: kerasft under torch.distributed (gloo, two CPU processes).

Run by test_torch_distribution.py as `python torch_worker.py OUT_DIR`. The
launcher does what `torchrun --nproc-per-node=2` does: it starts two copies
of this script with `RANK`, `WORLD_SIZE`, `MASTER_ADDR` and `MASTER_PORT`
set. Each rank joins a gloo process group and runs, on its half of every
global batch:

- `refusal`: `model.fit` with `UnfreezeSchedule` and with `FreezeUntil`,
  which must refuse in `on_train_begin` before any step;
- `rewrap`: the Keras guide's custom loop (the Keras model wrapped in
  `DistributedDataParallel`, a `torch.optim.Adam`), with the trainable set
  changed between epochs by `kerasft.freeze_until` and the model wrapped in
  a new `DistributedDataParallel` after each change; newly trainable stages
  join the same Adam as a param group with their layer-wise-decayed rate;
- `naive`: the same, but keeping the first DDP wrapper (the pitfall).

Rank 0 then runs `rewrap` in one process on the full global batches, as the
reference. Each rank saves its final weights to `OUT_DIR/rank{r}.npz`; the
launcher compares them and prints one `RESULT` JSON line.
"""

import json
import os
import socket
import subprocess
import sys

WORLD_SIZE = 2
# Epoch -> target: that stage and every later one train (`inclusive=False`).
PHASES = {0: "head", 1: "transformer_layer_1", 2: "embeddings"}


def launch(out_dir):
    import numpy as np

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(WORLD_SIZE):
        env = dict(
            os.environ,
            KERAS_BACKEND="torch",
            RANK=str(rank),
            WORLD_SIZE=str(WORLD_SIZE),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
        )
        procs.append(
            subprocess.Popen([sys.executable, __file__, out_dir], env=env)
        )
    codes = [p.wait(timeout=300) for p in procs]
    if any(codes):
        print(f"RESULT {json.dumps({'exit_codes': codes})}", flush=True)
        return 1
    ranks = [np.load(os.path.join(out_dir, f"rank{r}.npz")) for r in (0, 1)]
    with open(os.path.join(out_dir, "rank0.json")) as f:
        result = json.load(f)

    def diff(a, b, mode_a, mode_b):
        keys = [k for k in a.files if k.startswith(mode_a + ":")]
        return max(
            float(np.max(np.abs(a[k] - b[mode_b + k[len(mode_a) :]])))
            for k in keys
        )

    for mode in ("rewrap", "naive"):
        result[mode]["rank_difference"] = diff(ranks[0], ranks[1], mode, mode)
        result[mode]["reference_difference"] = diff(
            ranks[0], ranks[0], mode, "reference"
        )
    print("RESULT " + json.dumps(result), flush=True)
    return 0


def rank_main(out_dir):
    import datetime

    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=240))
    rank = dist.get_rank()

    import _scenario
    import keras
    import numpy as np
    from torch.nn.parallel import DistributedDataParallel

    import kerasft

    init = _scenario.initial_weights()
    x, y = _scenario.data()
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    arrays, result = {}, {}

    def batches(shard):
        n = _scenario.GLOBAL_BATCH
        for start in range(0, _scenario.SAMPLES, n):
            lo, hi = start, start + n
            if shard:  # this rank's half of the global batch
                half = n // WORLD_SIZE
                lo, hi = start + rank * half, start + (rank + 1) * half
            xb = {k: torch.as_tensor(v[lo:hi]) for k, v in x.items()}
            yield xb, torch.as_tensor(y[lo:hi])

    def new_model():
        keras.utils.set_random_seed(1)
        model = _scenario.build_model()
        model.set_weights(init)
        # keras-hub models set their torch parameter dict with
        # `object.__setattr__`, so `model.parameters()` is empty and DDP
        # refuses them; a plain functional model over the same layers
        # registers every variable as a torch parameter.
        return keras.Model(model.inputs, model.outputs)

    # 1. model.fit with kerasft callbacks refuses before any step.
    model = new_model()
    _scenario.compile_model(model)
    messages = []
    for callback in _scenario.callbacks():
        try:
            model.fit(
                x, y, batch_size=4, epochs=1, verbose=0, callbacks=[callback]
            )
            messages.append(None)
        except ValueError as e:
            messages.append(str(e))
    result["refusal"] = {
        "messages": messages,
        "unchanged": all(
            np.array_equal(a, b) for a, b in zip(model.get_weights(), init)
        ),
    }

    # 2./3. The guide's DDP loop, changing the trainable set between epochs.
    def custom_loop(mode):
        model = new_model()
        factors = kerasft.optimizers.layerwise_decay(model, 0.5)
        optimizer, in_optimizer = None, set()
        ddp = None
        for epoch in range(len(PHASES)):
            kerasft.freeze_until(model, PHASES[epoch], inclusive=False)
            groups = []
            for stage in kerasft.stages(model):
                params = [
                    v.value
                    for v in stage.trainable_variables
                    if id(v) not in in_optimizer
                ]
                in_optimizer.update(id(v) for v in stage.trainable_variables)
                if params:
                    lr = 0.01 * factors[stage.name]
                    groups.append({"params": params, "lr": lr})
            if optimizer is None:
                optimizer = torch.optim.Adam(groups)
            else:
                for group in groups:
                    optimizer.add_param_group(group)
            distributed = mode != "reference"
            if distributed and (ddp is None or mode == "rewrap"):
                ddp = DistributedDataParallel(model)
            net = ddp if distributed else model
            for xb, yb in batches(shard=distributed):
                loss = loss_fn(yb, net(xb))
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
        for v in model.weights:
            arrays[f"{mode}:{v.path}"] = keras.ops.convert_to_numpy(v)
        return [s.name for s in kerasft.stages(model) if s.trainable_variables]

    result["rewrap"] = {"stages": custom_loop("rewrap")}
    result["naive"] = {"stages": custom_loop("naive")}
    dist.barrier()
    dist.destroy_process_group()
    if rank == 0:
        custom_loop("reference")
        with open(os.path.join(out_dir, "rank0.json"), "w") as f:
            json.dump(result, f)
    np.savez(os.path.join(out_dir, f"rank{rank}.npz"), **arrays)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    target = sys.argv[1]
    if "RANK" in os.environ:
        sys.exit(rank_main(target))
    sys.exit(launch(target))
