"""`strategy="auto"`: the recipe per model family and step budget."""

import json

import keras
import numpy as np
import pytest

import kerasft
from kerasft._src.run import strategies
from kerasft.finetune import STRATEGIES


def _cnn():
    inputs = keras.Input((8, 8, 3))
    x = inputs
    for i in (1, 2, 3):
        x = keras.layers.Conv2D(2, 3, padding="same", name=f"block{i}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"block{i}_bn")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs)


def _transformer():
    inputs = keras.Input((4,), dtype="int32")
    x = keras.layers.Embedding(10, 4, name="embeddings")(inputs)
    x = x + keras.layers.MultiHeadAttention(1, 4, name="block1_attention")(x, x)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs)


def _dense():
    inputs = keras.Input((4,))
    x = keras.layers.Dense(4, name="block1_dense")(inputs)
    outputs = keras.layers.Dense(3, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize(
    "build, family",
    [(_cnn, "convolutional"), (_transformer, "transformer"), (_dense, "other")],
)
def test_family(build, family):
    model = build()
    choice = strategies.auto_choice(model, epochs=3, steps_per_epoch=10)
    assert strategies.model_family(model) == choice.family == family
    record = json.loads(json.dumps(choice.record()))
    assert record["strategy"] == "auto" and record["family"] == family
    assert record["chose"] and record["because"]
    assert record["total_steps"] == 30


def test_cnn_choice_follows_the_budget():
    model = _cnn()
    choose = strategies.auto_choice
    short = choose(model, epochs=1, steps_per_epoch=2)
    assert short.unfreeze_steps == {}
    assert "too few steps" in short.because
    assert short.head_factor == 10.0 and short.decay == 0.8
    # 30 steps: the head alone for 3 (10%), then each stage with weights
    # that train (BatchNorm stays frozen), evenly until step 15 (half).
    long = choose(model, epochs=3, steps_per_epoch=10)
    assert long.unfreeze_steps == {
        0: "head",
        7: "block3_conv",
        11: "block2_conv",
        15: "block1_conv",
    }
    assert "BatchNorm frozen" in long.chose and "30 steps" in long.because
    probed = choose(model, epochs=3, steps_per_epoch=10, probed=True)
    assert probed.head_factor == 1.0
    assert probed.unfreeze_steps[0] == "block3_conv"
    assert max(probed.unfreeze_steps) == 15


def test_transformer_choice_trains_everything_from_the_start():
    choice = strategies.auto_choice(
        _transformer(), epochs=1, steps_per_epoch=50
    )
    # Plain full fine-tuning: no warm-up, no layer-wise decay.
    assert choice.unfreeze_steps == {} and choice.head_factor == 1.0
    assert choice.decay == 1.0 and choice.warmup_steps == 0
    assert choice.chose.startswith("plain full fine-tuning")
    assert "AdamW" in choice.chose and "constant rate" in choice.chose
    assert "warm-up" not in choice.chose


def test_auto_trains_a_cnn_with_batchnorm_frozen():
    keras.utils.set_random_seed(0)
    model = _cnn()
    x = np.random.default_rng(0).random((16, 8, 8, 3)).astype("float32")
    y = np.arange(16) % 3
    optimizer, callbacks = STRATEGIES["auto"].build(
        model, learning_rate=1e-2, epochs=2, steps_per_epoch=4
    )
    model.compile(optimizer, "sparse_categorical_crossentropy")
    before = {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}
    model.fit(x, y, batch_size=4, epochs=2, callbacks=callbacks, verbose=0)
    after = {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}
    for path in before:
        same = np.array_equal(before[path], after[path])
        # BatchNorm (weights and statistics) stays as it was; every
        # convolution has joined and moved by the end.
        assert same == ("_bn/" in path), path
    assert [c["step"] for c in callbacks[0].changes] == [2, 3, 4]
    assert isinstance(optimizer, kerasft.optimizers.DiscriminativeOptimizer)


def test_auto_trains_a_transformer_whole():
    keras.utils.set_random_seed(0)
    model = _transformer()
    x = np.arange(32).reshape(8, 4) % 10
    y = np.arange(8) % 3
    optimizer, callbacks = STRATEGIES["auto"].build(
        model, learning_rate=1e-2, epochs=1, steps_per_epoch=2
    )
    assert callbacks == [] and len(model.trainable_weights) == len(
        model.weights
    )
    # AdamW at the constant rate, one rate for every stage.
    assert isinstance(optimizer, keras.optimizers.AdamW)
    assert not isinstance(optimizer, kerasft.optimizers.DiscriminativeOptimizer)
    assert optimizer.weight_decay == 0.01
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == (
        pytest.approx(1e-2)
    )
    model.compile(optimizer, "sparse_categorical_crossentropy")
    embeddings = model.get_layer("embeddings").get_weights()[0].copy()
    model.fit(x, y, batch_size=4, verbose=0)
    assert not np.array_equal(
        embeddings, model.get_layer("embeddings").get_weights()[0]
    )


@pytest.mark.parametrize(
    "options, error, match",
    [
        ({}, ValueError, r"steps_per_epoch.*Received: steps_per_epoch=None"),
        (
            {"steps_per_epoch": 0},
            ValueError,
            r"steps_per_epoch.*Received: steps_per_epoch=0",
        ),
        (
            {"steps_per_epoch": "4"},
            TypeError,
            r"steps_per_epoch.*Received: steps_per_epoch='4'",
        ),
    ],
)
def test_bad_budget_changes_nothing(options, error, match):
    model = _cnn()
    kerasft.freeze(model)
    with pytest.raises(error, match=match):
        STRATEGIES["auto"].build(model, learning_rate=1e-3, epochs=2, **options)
    assert model.trainable_weights == []
