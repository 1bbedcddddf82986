"""Tests for kerasft.optimizers.discriminative."""

import os
import re

import keras
import numpy as np
import pytest

from kerasft.optimizers import DiscriminativeOptimizer
from kerasft.optimizers import StageLearningRateLogger
from kerasft.optimizers import discriminative
from kerasft.optimizers import layerwise_decay
from kerasft.optimizers import lr_range
from kerasft.optimizers import rebuild_optimizer
from kerasft.schedules import OneCycle

# torch.compile makes each fit take ~20 s on CPU; JAX and TensorFlow jit.
JIT = keras.backend.backend() != "torch"


def _twin_model():
    """Two identical Dense branches summed: their gradients are equal."""
    inputs = keras.Input((4,))
    a = keras.layers.Dense(3, name="a", kernel_initializer="ones")(inputs)
    b = keras.layers.Dense(3, name="b", kernel_initializer="ones")(inputs)
    outputs = keras.layers.Add(name="add")([a, b])
    return keras.Model(inputs, outputs, name="twin")


def _data():
    rng = np.random.default_rng(0)
    return (
        rng.random((16, 4), dtype="float32"),
        rng.random((16, 3), dtype="float32"),
    )


def _moved(model, before):
    return [
        float(np.abs(model.get_layer(n).kernel.numpy() - w).sum())
        for n, w in zip(("a", "b"), before)
    ]


def _kernels(model):
    return [np.array(model.get_layer(n).kernel.numpy()) for n in ("a", "b")]


@pytest.mark.parametrize(
    "make",
    [
        lambda lr: keras.optimizers.SGD(lr),
        lambda lr: keras.optimizers.SGD(lr, momentum=0.9),
        lambda lr: keras.optimizers.Adam(lr),
    ],
    ids=["sgd", "momentum", "adam"],
)
def test_exact_ratio(make):
    model = _twin_model()
    model.compile(
        optimizer=discriminative(make(0.01), model, {"a": 0.1}),
        loss="mse",
        jit_compile=JIT,
    )
    before = _kernels(model)
    x, y = _data()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    moved_a, moved_b = _moved(model, before)
    assert moved_b > 0
    np.testing.assert_allclose(moved_a / moved_b, 0.1, rtol=1e-4)


def test_factor_applies_on_top_of_schedule():
    model = _twin_model()
    base = keras.optimizers.Adam(OneCycle(0.05, total_steps=8))
    optimizer = discriminative(base, model, {"a": 0.25})
    model.compile(optimizer=optimizer, loss="mse", jit_compile=JIT)
    before = _kernels(model)
    x, y = _data()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    moved_a, moved_b = _moved(model, before)
    np.testing.assert_allclose(moved_a / moved_b, 0.25, rtol=1e-4)
    expected = float(keras.ops.convert_to_numpy(OneCycle(0.05, 8)(4)))
    np.testing.assert_allclose(
        float(keras.ops.convert_to_numpy(optimizer.learning_rate)),
        expected,
        rtol=1e-5,
    )


def test_save_load_compile_true(tmp_path):
    model = _twin_model()
    model.compile(
        optimizer=discriminative(
            keras.optimizers.Adam(0.01), model, {"a": 0.1}, name="disc"
        ),
        loss="mse",
    )
    x, y = _data()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, compile=True)
    optimizer = loaded.optimizer
    assert isinstance(optimizer, DiscriminativeOptimizer)
    assert optimizer.name == "disc"
    assert optimizer.stage_factors == {"a": 0.1, "b": 1.0, "add": 1.0}
    for old, new in zip(model.optimizer.variables, optimizer.variables):
        np.testing.assert_allclose(old.numpy(), new.numpy())
    before = _kernels(loaded)
    loaded.fit(x, y, batch_size=4, epochs=1, verbose=0)
    moved_a, moved_b = _moved(loaded, before)
    np.testing.assert_allclose(moved_a / moved_b, 0.1, rtol=1e-4)


def test_stage_unfrozen_later_keeps_its_rate():
    model = _twin_model()
    model.get_layer("a").trainable = False
    model.compile(
        optimizer=discriminative(keras.optimizers.SGD(0.01), model, {"a": 0.1}),
        loss="mse",
    )
    x, y = _data()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    model.get_layer("a").trainable = True
    # Make both branches equal again so their gradients match.
    model.get_layer("a").set_weights(model.get_layer("b").get_weights())
    rebuild_optimizer(model)
    before = _kernels(model)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    moved_a, moved_b = _moved(model, before)
    np.testing.assert_allclose(moved_a / moved_b, 0.1, rtol=1e-4)


def test_learning_rate_callbacks_set_base_rate():
    model = _twin_model()
    optimizer = discriminative(keras.optimizers.SGD(0.1), model, {"a": 0.5})
    model.compile(optimizer=optimizer, loss="mse")
    x, y = _data()
    history = model.fit(
        x,
        y,
        epochs=2,
        verbose=0,
        callbacks=[
            keras.callbacks.LearningRateScheduler(lambda e, lr: 0.02),
            StageLearningRateLogger(),
        ],
    )
    np.testing.assert_allclose(history.history["lr/a"], [0.01, 0.01])
    np.testing.assert_allclose(history.history["lr/b"], [0.02, 0.02])
    rates = {
        o.name: float(keras.ops.convert_to_numpy(o.learning_rate))
        for o in optimizer.sub_optimizers
    }
    assert sorted(rates.values()) == pytest.approx([0.01, 0.02])


def test_reduce_lr_on_plateau():
    model = _twin_model()
    optimizer = discriminative(keras.optimizers.SGD(0.1), model, {"a": 0.5})
    model.compile(optimizer=optimizer, loss="mse")
    x, y = _data()
    reduce = keras.callbacks.ReduceLROnPlateau(
        monitor="loss", factor=0.5, patience=0, min_delta=1e9
    )
    model.fit(x, y, epochs=2, verbose=0, callbacks=[reduce])
    rates = optimizer.stage_learning_rates()
    np.testing.assert_allclose(rates["b"], 0.05, rtol=1e-6)
    np.testing.assert_allclose(rates["a"], 0.025, rtol=1e-6)


def test_layerwise_decay_and_lr_range():
    model = _twin_model()
    assert layerwise_decay(model, 0.5) == {"a": 0.25, "b": 0.5, "add": 1.0}
    factors = lr_range(model, 1e-4, 1e-2)
    np.testing.assert_allclose(list(factors.values()), [0.01, 0.1, 1.0])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m: layerwise_decay(m, 0.0), "decay"),
        (lambda m: layerwise_decay(m, 1.5), "decay"),
        (lambda m: lr_range(m, 1e-2, 1e-4), "low"),
        (lambda m: lr_range(m, -1, 1e-4), "low"),
        (lambda m: discriminative("sgd", m, {"a": 0.0}), "factor"),
        (lambda m: discriminative("sgd", m, {"a": -1.0}), "factor"),
        (lambda m: discriminative("sgd", m, {"nope": 0.5}), "nope"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call(_twin_model())


def test_bad_optimizer_type():
    with pytest.raises(TypeError, match="plain Keras optimizer"):
        DiscriminativeOptimizer(object(), [])


# The rates the docs quote, computed on the models they describe.

_DOCS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "docs"
)
_FACTORS = {"lr_range": lr_range, "layerwise_decay": layerwise_decay}


def _page(name):
    with open(os.path.join(_DOCS, name)) as f:
        return " ".join(f.read().split())


def _rate(model, call, base, stage):
    """`call` is e.g. "lr_range(model, 1e-5, 1e-3)"."""
    name, args = re.fullmatch(r"(\w+)\(model, (.*)\)", call).groups()
    factors = _FACTORS[name](model, *(float(a) for a in args.split(",")))
    return base * factors[stage]


def _chain(names):
    """One Dense layer per stage: the factors depend on the stages only."""
    inputs = keras.Input((2,))
    x = inputs
    for name in names:
        x = keras.layers.Dense(2, name=name)(x)
    return keras.Model(inputs, x)


@pytest.fixture(scope="module")
def mobilenet_classifier():
    # The stages of the MobileNet classifier (tests/test_stages.py).
    blocks = [f"block{i}" for i in range(1, 6)]
    return _chain(["stem", *blocks, "head"])


def test_the_base_rate_table_of_the_docs(mobilenet_classifier):
    page = _page("learning_rates.md")
    table = page.split("### Choosing the base rate")[1].split("| `stem` |")[1]
    rows = re.findall(
        r"\| `(\w+\(model, [^`]*\))` \| (\S+) \| (\S+) \| (\S+) \|", table
    )
    assert len(rows) == 5, rows
    for call, base, block5, stem in rows:
        for stage, quoted in (("block5", block5), ("stem", stem)):
            rate = _rate(mobilenet_classifier, call, float(base), stage)
            np.testing.assert_allclose(rate, float(quoted), rtol=0.05)


@pytest.mark.parametrize(
    "phrase, call, base, value",
    [
        (
            "`lr_range` split puts `block5` at 4.6e-4",
            "lr_range(model, 1e-5, 1e-3)",
            1e-3,
            4.6e-4,
        ),
        (
            "`layerwise_decay(model, 0.5)` at 1e-3 puts `block5` at 5e-4",
            "layerwise_decay(model, 0.5)",
            1e-3,
            5e-4,
        ),
        ("and 0.8 at 8e-4", "layerwise_decay(model, 0.8)", 1e-3, 8e-4),
        (
            "puts `block5` near 1.4e-4 with `lr_range`",
            "lr_range(model, 3e-6, 3e-4)",
            3e-4,
            1.4e-4,
        ),
        (
            "near 1.5e-4 with `--decay 0.5`",
            "layerwise_decay(model, 0.5)",
            3e-4,
            1.5e-4,
        ),
    ],
)
def test_the_rates_the_strategy_guide_quotes(
    mobilenet_classifier, phrase, call, base, value
):
    assert phrase in _page("strategies.md")
    rate = _rate(mobilenet_classifier, call, base, "block5")
    np.testing.assert_allclose(rate, value, rtol=0.05)


def test_the_rates_the_transformers_page_quotes():
    # The stages of the all-MiniLM-L6-v2 classifier
    # (tests/backbones/test_hub.py).
    layers = [f"transformer_layer_{i}" for i in range(6)]
    model = _chain(["embeddings", *layers, "pooler", "head"])
    page = _page("transformers.md")
    call = "layerwise_decay(model, 0.8)"
    for phrase, stage, value in (
        ("the pooler trains at 8e-5", "pooler", 8e-5),
        ("`transformer_layer_5` at 6.4e-5", "transformer_layer_5", 6.4e-5),
        ("the embeddings at 1.7e-5", "embeddings", 1.7e-5),
    ):
        assert phrase in page
        rate = _rate(model, call, 1e-4, stage)
        np.testing.assert_allclose(rate, value, rtol=0.05)
