"""L2-SP and L2 penalties: gradients, the loss of `fit`, schedules, errors."""

import keras
import numpy as np
import pytest

import kerasft
from kerasft import regularizers

BACKEND = keras.backend.backend()
LAYERS = ("body", "middle", "head")
TORCH_COMPILE_REASON = (
    "torch.compile costs 40-80 s per model on 2 CPU cores; the torch.compile "
    "variants passed when run by hand, and torch's eager step reads the same "
    "penalty"
)
JIT = [
    False,
    pytest.param(
        True,
        marks=pytest.mark.skipif(
            BACKEND == "torch", reason=TORCH_COMPILE_REASON
        ),
    ),
]


def _model(name="net"):
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, name="body")(inputs)
    x = keras.layers.Dense(3, name="middle")(x)
    outputs = keras.layers.Dense(2, name="head")(x)
    return keras.Model(inputs, outputs, name=name)


def _zero_loss(y_true, y_pred):
    # No data loss, but connected to the outputs so that torch has a graph.
    return 0.0 * keras.ops.mean(y_pred, axis=-1)


def _data(n=8):
    rng = np.random.default_rng(0)
    return (
        rng.normal(size=(n, 4)).astype("float32"),
        rng.normal(size=(n, 2)).astype("float32"),
    )


def _values(layer):
    return [keras.ops.convert_to_numpy(v).copy() for v in layer.weights]


def _perturb(model, names, seed=0):
    rng = np.random.default_rng(seed)
    for name in names:
        for v in model.get_layer(name).weights:
            v.assign(
                keras.ops.convert_to_numpy(v)
                + rng.normal(size=v.shape).astype("float32")
            )


def _expected_penalty(model, w0, alpha, beta, pretrained, head=("head",)):
    total = 0.0
    for name in pretrained:
        for v, ref in zip(model.get_layer(name).weights, w0[name]):
            diff = keras.ops.convert_to_numpy(v) - ref
            total += alpha / 2 * float(np.sum(diff.astype("float64") ** 2))
    for name in head:
        for v in model.get_layer(name).weights:
            value = keras.ops.convert_to_numpy(v).astype("float64")
            total += beta / 2 * float(np.sum(value**2))
    return total


@pytest.mark.parametrize("jit_compile", JIT)
def test_sgd_step_follows_the_penalty_gradient(jit_compile):
    model = _model()
    w0 = {n: _values(model.get_layer(n)) for n in ("body", "middle")}
    reg = regularizers.L2SP(alpha=0.5, beta=0.25).apply(model)
    _perturb(model, ["body", "middle", "head"])
    before = {
        n: _values(model.get_layer(n)) for n in ("body", "middle", "head")
    }
    lr = 0.1
    model.compile(keras.optimizers.SGD(lr), _zero_loss, jit_compile=jit_compile)
    x, y = _data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    for name in ("body", "middle"):
        for v, w, ref in zip(
            model.get_layer(name).weights, before[name], w0[name]
        ):
            # gradient alpha * (w - w0)
            np.testing.assert_allclose(
                keras.ops.convert_to_numpy(v),
                w - lr * 0.5 * (w - ref),
                rtol=1e-5,
                atol=1e-6,
            )
    for v, w in zip(model.get_layer("head").weights, before["head"]):
        # gradient beta * w
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(v),
            w - lr * 0.25 * w,
            rtol=1e-5,
            atol=1e-6,
        )
    assert reg.alpha == 0.5 and reg.beta == 0.25


@pytest.mark.parametrize("jit_compile", JIT)
def test_penalty_is_the_fit_and_evaluate_loss(jit_compile):
    model = _model()
    w0 = {n: _values(model.get_layer(n)) for n in ("body", "middle")}
    reg = regularizers.l2sp(model, alpha=0.3, beta=0.2)
    _perturb(model, ["body", "middle"])
    expected = _expected_penalty(model, w0, 0.3, 0.2, ("body", "middle"))
    assert expected > 0.1
    model.compile(
        keras.optimizers.SGD(0.0), _zero_loss, jit_compile=jit_compile
    )
    x, y = _data()
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    np.testing.assert_allclose(history.history["loss"], expected, rtol=1e-5)
    np.testing.assert_allclose(
        model.evaluate(x, y, batch_size=4, verbose=0), expected, rtol=1e-5
    )
    np.testing.assert_allclose(reg.penalty(), expected, rtol=1e-5)


@pytest.mark.parametrize("jit_compile", JIT)
def test_strength_schedule_changes_the_loss_under_jit(jit_compile):
    model = _model()
    w0 = {n: _values(model.get_layer(n)) for n in ("body", "middle")}
    reg = regularizers.L2SP(alpha=1.0, beta=0.0).apply(model)
    _perturb(model, ["body", "middle"])
    unit = _expected_penalty(model, w0, 1.0, 0.0, ("body", "middle"))
    alphas = [0.5, 2.0, 0.0]
    schedule = regularizers.StrengthSchedule(
        reg, alpha=lambda epoch: alphas[epoch]
    )
    model.compile(
        keras.optimizers.SGD(0.0), _zero_loss, jit_compile=jit_compile
    )
    x, y = _data()
    history = model.fit(
        x, y, batch_size=4, epochs=3, verbose=0, callbacks=[schedule]
    )
    np.testing.assert_allclose(
        history.history["loss"], [a * unit for a in alphas], rtol=1e-5
    )
    assert history.history["l2sp/alpha"] == alphas
    assert history.history["l2sp/beta"] == [0.0, 0.0, 0.0]
    # Between fit calls, set_strength takes effect too.
    reg.set_strength(alpha=4.0)
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    np.testing.assert_allclose(history.history["loss"], 4.0 * unit, rtol=1e-5)


def test_keras_schedule_object_as_strength_schedule():
    model = _model()
    reg = regularizers.L2SP(alpha=1.0, beta=0.0).apply(model)
    decay = keras.optimizers.schedules.ExponentialDecay(1.0, 1, 0.5)
    schedule = regularizers.StrengthSchedule(reg, alpha=decay)
    model.compile(keras.optimizers.SGD(0.0), _zero_loss)
    x, y = _data()
    history = model.fit(
        x, y, batch_size=8, epochs=3, verbose=0, callbacks=[schedule]
    )
    np.testing.assert_allclose(history.history["l2sp/alpha"], [1, 0.5, 0.25])


@pytest.mark.parametrize("jit_compile", JIT)
def test_unfrozen_stage_joins_the_penalty(jit_compile):
    model = _model()
    w0 = {n: _values(model.get_layer(n)) for n in ("body", "middle")}
    regularizers.L2SP(alpha=0.5, beta=0.1).apply(model)
    _perturb(model, ["body", "middle"])
    kerasft.freeze(model, ["body", "middle"])
    head_only = _expected_penalty(model, w0, 0.5, 0.1, ())
    with_middle = _expected_penalty(model, w0, 0.5, 0.1, ("middle",))
    model.compile(
        keras.optimizers.SGD(0.0), _zero_loss, jit_compile=jit_compile
    )
    schedule = kerasft.callbacks.UnfreezeSchedule({0: "head", 1: "middle"})
    x, y = _data()
    history = model.fit(
        x, y, batch_size=4, epochs=2, verbose=0, callbacks=[schedule]
    )
    np.testing.assert_allclose(
        history.history["loss"], [head_only, with_middle], rtol=1e-5
    )


def test_apply_after_fit_rebuilds_the_step():
    model = _model()
    # jit where it is cheap: a traced step must not keep the old loss.
    model.compile(
        keras.optimizers.SGD(0.0), _zero_loss, jit_compile=BACKEND != "torch"
    )
    x, y = _data()
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert history.history["loss"] == [0.0]
    reg = regularizers.L2(0.5, target="head").apply(model)
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    np.testing.assert_allclose(
        history.history["loss"], reg.penalty(), rtol=1e-5
    )
    assert reg.penalty() > 0
    reg.remove()
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert history.history["loss"] == [0.0]


def test_l2_decays_only_its_target():
    model = _model()
    reg = regularizers.L2(0.5, target=["middle", "head"]).apply(model)
    assert len(reg.variables) == 4
    before = {
        n: _values(model.get_layer(n)) for n in ("body", "middle", "head")
    }
    lr = 0.1
    model.compile(keras.optimizers.SGD(lr), _zero_loss)
    x, y = _data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    for v, w in zip(model.get_layer("body").weights, before["body"]):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), w)
    for name in ("middle", "head"):
        for v, w in zip(model.get_layer(name).weights, before[name]):
            np.testing.assert_allclose(
                keras.ops.convert_to_numpy(v), w - lr * 0.5 * w, rtol=1e-5
            )


def test_existing_regularizer_is_kept_and_restored():
    inputs = keras.Input((4,))
    x = keras.layers.Dense(
        3, name="body", kernel_regularizer=keras.regularizers.L2(0.1)
    )(inputs)
    outputs = keras.layers.Dense(2, name="head")(x)
    model = keras.Model(inputs, outputs)
    kernel = model.get_layer("body").kernel
    original = kernel.regularizer
    own = float(keras.ops.convert_to_numpy(original(kernel)))
    reg = regularizers.L2SP(alpha=1.0, beta=0.5).apply(model)
    _perturb(model, ["body"])
    total = sum(float(keras.ops.convert_to_numpy(x)) for x in model.losses)
    own = float(keras.ops.convert_to_numpy(original(kernel)))
    np.testing.assert_allclose(total, own + reg.penalty(), rtol=1e-5)
    # The per-variable term round-trips, with w0 and the kept regularizer.
    term = kernel.regularizer
    copy = keras.regularizers.deserialize(keras.regularizers.serialize(term))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(copy(kernel)),
        keras.ops.convert_to_numpy(term(kernel)),
        rtol=1e-6,
    )
    reg.remove()
    assert kernel.regularizer is original
    assert model.get_layer("head").kernel.regularizer is None
    assert reg.model is None


def test_pretrained_target_and_reference():
    model = _model()
    reference = [keras.ops.convert_to_numpy(v) + 1.0 for v in model.weights]
    reg = regularizers.L2SP(alpha=2.0, beta=0.0, pretrained="body").apply(
        model, reference=reference
    )
    # body: ||w - (w + 1)||^2 = number of body params; middle is "new".
    n_body = sum(int(np.prod(v.shape)) for v in model.get_layer("body").weights)
    middle_head = sum(
        float(np.sum(keras.ops.convert_to_numpy(v) ** 2))
        for n in ("middle", "head")
        for v in model.get_layer(n).weights
    )
    np.testing.assert_allclose(reg.penalty(), n_body, rtol=1e-5)
    reg.set_strength(beta=1.0)
    np.testing.assert_allclose(
        reg.penalty(), n_body + 0.5 * middle_head, rtol=1e-5
    )


def test_reference_as_a_dict_and_the_references_property():
    model = _model()
    reference = {
        v.path: keras.ops.convert_to_numpy(v) + 1.0 for v in model.weights
    }
    reg = regularizers.L2SP(alpha=2.0, beta=0.0, pretrained="body").apply(
        model, reference=reference
    )
    n_body = sum(int(np.prod(v.shape)) for v in model.get_layer("body").weights)
    np.testing.assert_allclose(reg.penalty(), n_body, rtol=1e-5)
    # Only the pulled variables have a w0, and it is the dict's value.
    pulled = reg.references
    assert [v.path for v, _ in pulled] == [
        v.path for v in model.get_layer("body").weights
    ]
    for variable, w0 in pulled:
        np.testing.assert_allclose(w0, reference[variable.path])
    reg.remove()
    assert reg.references == []


def test_save_and_load_and_reapply(tmp_path):
    model = _model()
    pretrained = [keras.ops.convert_to_numpy(v).copy() for v in model.weights]
    reg = regularizers.L2SP(
        alpha=0.7, beta=0.05, pretrained=["body", "middle"], name="my_l2sp"
    ).apply(model)
    model.compile(keras.optimizers.SGD(0.05), "mse")
    x, y = _data()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    expected = reg.penalty()
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    # The penalty is not saved with the model ...
    assert list(loaded.losses) == []
    # ... its settings are, through get_config, and w0 comes from the
    # pretrained weights.
    config = keras.saving.serialize_keras_object(reg)
    again = keras.saving.deserialize_keras_object(config)
    assert isinstance(again, regularizers.L2SP)
    assert again.get_config() == {
        "alpha": 0.7,
        "beta": 0.05,
        "pretrained": ["body", "middle"],
        "name": "my_l2sp",
    }
    again.apply(loaded, reference=pretrained)
    np.testing.assert_allclose(again.penalty(), expected, rtol=1e-5)

    l2 = regularizers.L2(0.3, target=["head"], name="decay")
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(l2)
    )
    assert restored.get_config() == {
        "strength": 0.3,
        "target": ["head"],
        "name": "decay",
    }


def test_errors():
    unbuilt = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="not built yet.*Received: model="):
        regularizers.L2SP().apply(unbuilt)
    with pytest.raises(TypeError, match="must be a keras.Model"):
        regularizers.L2SP().apply("model")
    with pytest.raises(ValueError, match="alpha.*>= 0. Received: alpha=-0.1"):
        regularizers.L2SP(alpha=-0.1)
    with pytest.raises(ValueError, match="Received: beta=-1"):
        regularizers.L2SP(beta=-1)
    with pytest.raises(ValueError, match="Received: strength=nan"):
        regularizers.L2(float("nan"))
    with pytest.raises(TypeError, match="Received: alpha='big'"):
        regularizers.L2SP(alpha="big")
    with pytest.raises(TypeError, match="pass their names"):
        regularizers.L2SP(pretrained=keras.layers.Dense(2))

    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2, name="out")(
        keras.layers.Dense(3, name="body")(inputs)
    )
    no_head = keras.Model(inputs, outputs)
    with pytest.raises(ValueError, match="no 'head' stage.*pretrained=None"):
        regularizers.L2SP().apply(no_head)
    with pytest.raises(ValueError, match="Did you mean 'body'"):
        regularizers.L2SP(pretrained="bodyy").apply(no_head)

    model = _model()
    reg = regularizers.L2SP().apply(model)
    with pytest.raises(ValueError, match="already applied"):
        reg.apply(model)
    with pytest.raises(ValueError, match="already carries"):
        regularizers.L2(0.1).apply(model)
    with pytest.raises(ValueError, match="Received: alpha=-2"):
        reg.set_strength(alpha=-2)
    with pytest.raises(ValueError, match="one array per weight"):
        regularizers.L2SP().apply(_model("other"), reference=[np.zeros(3)])
    with pytest.raises(ValueError, match="Unknown strength 'gamma'"):
        regularizers.StrengthSchedule(reg, gamma=lambda e: 0.1)
    with pytest.raises(TypeError, match="must be callable"):
        regularizers.StrengthSchedule(reg, alpha=0.1)
    with pytest.raises(ValueError, match="at least one schedule"):
        regularizers.StrengthSchedule(reg)
    with pytest.raises(TypeError, match="L2SP or L2"):
        regularizers.StrengthSchedule("reg", alpha=lambda e: 0.1)


@keras.saving.register_keras_serializable(package="kerasft_tests")
class _TopDecay(regularizers.StagePenalty):
    strength_names = ("top", "rest")

    def __init__(self, top=1e-3, rest=1e-5, *, name="top_decay"):
        super().__init__({"top": top, "rest": rest}, name=name)

    def plan(self, model):
        *rest, top = [s for s in kerasft.stages(model) if s.name != "head"]
        return [("top", v, False) for v in top.variables] + [
            ("rest", v, True) for s in rest for v in s.variables
        ]


def test_a_penalty_of_ones_own():
    model = _model()
    w0 = {v.path: keras.ops.convert_to_numpy(v).copy() for v in model.weights}
    reg = _TopDecay(top=0.4, rest=2.0).apply(model)
    _perturb(model, ["body", "middle"], seed=3)

    def expected(top, rest):
        total = 0.0
        for v in model.get_layer("middle").weights:
            total += top / 2 * np.sum(np.square(keras.ops.convert_to_numpy(v)))
        for v in model.get_layer("body").weights:
            diff = keras.ops.convert_to_numpy(v) - w0[v.path]
            total += rest / 2 * np.sum(np.square(diff))
        return total

    np.testing.assert_allclose(reg.penalty(), expected(0.4, 2.0), rtol=1e-5)
    assert len(reg.variables) == 4
    model.compile(keras.optimizers.SGD(0.0), _zero_loss)
    x, y = _data()
    schedule = regularizers.StrengthSchedule(reg, top=lambda epoch: 0.1)
    history = model.fit(x, y, epochs=1, callbacks=[schedule], verbose=0)
    assert history.history["top_decay/top"] == [0.1]
    np.testing.assert_allclose(
        history.history["loss"][0], expected(0.1, 2.0), rtol=1e-5
    )
    again = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(reg)
    )
    assert isinstance(again, _TopDecay)
    assert again.get_config() == {"top": 0.1, "rest": 2.0, "name": "top_decay"}
    reg.remove()
    assert list(model.losses) == []
    with pytest.raises(ValueError, match="Unknown strength 'beta'"):
        reg.set_strength(beta=1.0)


def test_the_base_class_needs_a_plan():
    with pytest.raises(NotImplementedError, match="implement `plan"):
        regularizers.StagePenalty({}, name="bare").apply(_model())
