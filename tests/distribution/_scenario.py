"""The fine-tuning run that every distribution worker repeats.

Imported by the worker scripts in this folder (run as subprocesses by the
tests, because device counts must be fixed before the backend starts). A
tiny random keras-hub BERT classifier (stages `embeddings`,
`transformer_layer_0`, `transformer_layer_1`, `pooler`, `head`), no dropout
so that runs can be compared, discriminative rates, L2-SP, an
`UnfreezeSchedule` with a change in the middle of an epoch, then a second
`fit` with `FreezeUntil`.
"""

import json

import keras
import numpy as np

import kerasft
from kerasft.callbacks import FreezeUntil
from kerasft.callbacks import UnfreezeSchedule

GLOBAL_BATCH = 8
SAMPLES = 16  # two steps per epoch
EPOCHS = 2
# Global steps: epoch 1 starts at step 2, so step 3 is mid-epoch.
SCHEDULE = {0: "head", 3: "transformer_layer_1"}
SCHEDULE_STAGES = [["head"], ["transformer_layer_1", "pooler", "head"]]
# The second fit: everything after the embeddings trains.
FREEZE_UNTIL = "embeddings"
FREEZE_UNTIL_STAGES = [
    ["transformer_layer_0", "transformer_layer_1", "pooler", "head"]
]


def build_model():
    import keras_hub

    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=64,
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=8,
        dropout=0.0,
    )
    return keras_hub.models.BertTextClassifier(
        backbone=backbone, num_classes=2, preprocessor=None, dropout=0.0
    )


def initial_weights():
    """The same starting point for every run, built without distribution."""
    keras.utils.set_random_seed(7)
    return build_model().get_weights()


def data():
    rng = np.random.default_rng(0)
    x = {
        "token_ids": rng.integers(1, 64, (SAMPLES, 8)).astype("int32"),
        "segment_ids": np.zeros((SAMPLES, 8), "int32"),
        "padding_mask": np.ones((SAMPLES, 8), "int32"),
    }
    y = rng.integers(0, 2, (SAMPLES,)).astype("int32")
    return x, y


def regularize(model):
    """L2-SP towards the starting weights (the "pretrained" ones here)."""
    from kerasft import regularizers

    return regularizers.L2SP(alpha=0.1, beta=0.01).apply(model)


def compile_model(model):
    factors = kerasft.optimizers.layerwise_decay(model, 0.5)
    optimizer = kerasft.optimizers.discriminative(
        keras.optimizers.Adam(0.01), model, factors
    )
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )


def callbacks():
    return UnfreezeSchedule(SCHEDULE, unit="step"), FreezeUntil(FREEZE_UNTIL)


def fit(
    model, schedule, freeze, extra=(), batch_size=GLOBAL_BATCH, arrays=None
):
    """Runs both fits, on `arrays` (x, y) or on `data()`.

    Returns:
        The per-epoch losses, and whether the stages that `FreezeUntil`
        froze kept their values in the second fit.
    """
    x, y = data() if arrays is None else arrays
    history = model.fit(
        x,
        y,
        batch_size=batch_size,
        epochs=EPOCHS,
        shuffle=False,
        verbose=0,
        callbacks=[schedule, *extra],
    )
    start = {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}
    second = model.fit(
        x,
        y,
        batch_size=batch_size,
        epochs=1,
        shuffle=False,
        verbose=0,
        callbacks=[freeze, *extra],
    )
    losses = history.history["loss"] + second.history["loss"]
    return losses, frozen_unchanged(model, start)


def stage_names(callback):
    return [c["stages"] for c in callback.changes]


def values(model):
    """Model weights and optimizer variables by path, as numpy."""
    out = {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}
    for v in model.optimizer.variables:
        out["optimizer:" + v.path] = keras.ops.convert_to_numpy(v)
    return out


def max_difference(a, b):
    """Largest absolute difference over the paths of `a`; inf if unequal."""
    if set(a) != set(b):
        return float("inf")
    return max(float(np.max(np.abs(a[k] - b[k]), initial=0.0)) for k in a)


def frozen_unchanged(model, start):
    """Whether the stages frozen by FreezeUntil kept their start values."""
    frozen = kerasft.resolve_stages(model, FREEZE_UNTIL)
    return all(
        np.array_equal(keras.ops.convert_to_numpy(v), start[v.path])
        for stage in frozen
        for v in stage.variables
    )


def report(result):
    """Prints the worker's result as the last line of stdout."""
    print("RESULT " + json.dumps(result), flush=True)
