"""kerasft.interpolate and kerasft.wise_ft_sweep (WiSE-FT)."""

import keras
import numpy as np
import pytest

import kerasft


def _model(seed=0, name="model"):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(4, name="hidden"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Dense(2, activation="softmax", name="head"),
        ],
        name=name,
    )
    # Non-default moving statistics, so BN's are checked too.
    bn = model.get_layer("bn")
    bn.moving_mean.assign(np.full((4,), 0.5 + seed, dtype="float32"))
    bn.moving_variance.assign(np.full((4,), 2.0 + seed, dtype="float32"))
    return model


def _values(model):
    return [keras.ops.convert_to_numpy(v).copy() for v in model.weights]


def _expected(reference, current, alpha):
    return [
        (
            (1 - alpha) * r.astype("float64") + alpha * c.astype("float64")
        ).astype(c.dtype)
        for r, c in zip(reference, current)
    ]


def _assert_equal(left, right):
    assert len(left) == len(right)
    for a, b in zip(left, right):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("form", ["model", "list", "dict"])
def test_exact_arithmetic_for_every_form(form):
    model, other = _model(0), _model(1, name="other")
    reference = _values(other)
    current = _values(model)
    given = {
        "model": other,
        "list": reference,
        "dict": {v.path: a for v, a in zip(model.weights, reference)},
    }[form]
    assert kerasft.interpolate(model, given, 0.3) is model
    _assert_equal(_values(model), _expected(reference, current, 0.3))


def test_alpha_zero_gives_reference_and_one_keeps_model():
    model, other = _model(0), _model(1, name="other")
    current = _values(model)
    kerasft.interpolate(model, other, 1.0)
    _assert_equal(_values(model), current)
    kerasft.interpolate(model, other, 0)
    _assert_equal(_values(model), _values(other))


class _Counting(keras.layers.Layer):
    def build(self, input_shape):
        self.count = self.add_weight(
            shape=(), dtype="int32", initializer="zeros", trainable=False
        )

    def call(self, x):
        return x


def test_integer_variables_are_copied_from_the_model():
    model = keras.Sequential(
        [keras.Input((3,)), _Counting(), keras.layers.Dense(2)]
    )
    counter = model.layers[0].count
    counter.assign(7)
    reference = [np.full(v.shape, 100, dtype=v.dtype) for v in model.weights]
    current = _values(model)
    kerasft.interpolate(model, reference, 0.5)
    for v, ref, now in zip(model.weights, reference, current):
        expected = now if v is counter else _expected([ref], [now], 0.5)[0]
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), expected)
    assert int(keras.ops.convert_to_numpy(counter)) == 7


def test_l2sp_reference_mixes_w0_and_keeps_the_head():
    model = _model(0)
    w0 = _values(model)
    penalty = kerasft.regularizers.L2SP(0.01, pretrained=["hidden", "bn"])
    penalty.apply(model)
    moved = [a + 1.0 for a in w0]
    for v, a in zip(model.weights, moved):
        v.assign(a)
    kerasft.interpolate(model, penalty, 0.5)
    pulled = {
        id(v)
        for name in ("hidden", "bn")
        for v in model.get_layer(name).weights
    }
    for v, start, now in zip(model.weights, w0, moved):
        expected = _expected([start], [now], 0.5)[0] if id(v) in pulled else now
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), expected)
    assert any(id(v) not in pulled for v in model.weights)

    other = _model(1, name="other")
    with pytest.raises(ValueError, match="another model"):
        kerasft.interpolate(other, penalty, 0.5)
    decay = kerasft.regularizers.L2(0.01)
    decay.apply(other)
    with pytest.raises(ValueError, match="without pretrained weights"):
        kerasft.interpolate(other, decay, 0.5)


def test_mismatches_name_the_weight_and_change_nothing():
    model = _model(0)
    before = _values(model)
    bad = _values(model)
    bad[1] = np.zeros((5,), dtype="float32")
    with pytest.raises(ValueError, match=r"hidden/bias.*\(4,\).*\(5,\)"):
        kerasft.interpolate(model, bad, 0.5)
    with pytest.raises(ValueError, match="one array per weight"):
        kerasft.interpolate(model, bad[:-1], 0.5)
    paths = {v.path: a for v, a in zip(model.weights, before)}
    first = model.weights[0].path
    del paths[first]
    with pytest.raises(ValueError, match=f"{first}.*missing"):
        kerasft.interpolate(model, paths, 0.5)
    wider = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(5), keras.layers.Dense(2)]
    )
    with pytest.raises(ValueError, match="one array per weight"):
        kerasft.interpolate(model, wider, 0.5)
    with pytest.raises(ValueError, match="alpha"):
        kerasft.interpolate(model, before, 1.5)
    with pytest.raises(TypeError, match="alpha"):
        kerasft.interpolate(model, before, "half")
    with pytest.raises(TypeError, match="reference"):
        kerasft.interpolate(model, 3, 0.5)
    _assert_equal(_values(model), before)


def _compiled(seed, name):
    model = _model(seed, name=name)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_sweep_picks_the_best_alpha_and_keeps_it():
    model, other = _compiled(0, "model"), _compiled(1, "other")
    current, reference = _values(model), _values(other)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype("float32")
    y = np.argmax(other.predict(x, verbose=0), axis=-1)  # other is perfect
    alphas = (0.0, 0.5, 1.0)
    found = kerasft.wise_ft_sweep(model, other, x, y, alphas=alphas)
    assert list(found["scores"]) == list(alphas)
    assert found["alpha"] == min(alphas, key=lambda a: found["scores"][a])
    assert found["score"] == found["scores"][found["alpha"]]
    _assert_equal(_values(model), _expected(reference, current, found["alpha"]))

    kerasft.interpolate(model, current, 0.0)  # back to the fine-tuned ones
    found = kerasft.wise_ft_sweep(
        model, other, x, y, alphas=alphas, metric="accuracy", keep_best=False
    )
    assert found["scores"][0.0] == 1.0
    assert found["alpha"] == 0.0
    _assert_equal(_values(model), current)


def test_sweep_with_a_function_metric_and_errors():
    model, other = _model(0), _model(1, name="other")
    before = _values(model)
    first = model.weights[0]

    def metric(m):
        return float(np.sum(keras.ops.convert_to_numpy(first)))

    found = kerasft.wise_ft_sweep(
        model, other, None, alphas=[0.0, 1.0], metric=metric, mode="max"
    )
    assert found["alpha"] == max([0.0, 1.0], key=lambda a: found["scores"][a])
    kerasft.interpolate(model, before, 0.0)
    with pytest.raises(ValueError, match="mode"):
        kerasft.wise_ft_sweep(model, other, None, metric=metric)
    with pytest.raises(ValueError, match="compiled"):
        kerasft.wise_ft_sweep(model, other, None)
    with pytest.raises(ValueError, match="alphas"):
        kerasft.wise_ft_sweep(model, other, None, alphas=())
    with pytest.raises(ValueError, match=r"alphas\[1\]"):
        kerasft.wise_ft_sweep(model, other, None, alphas=(0.5, 2.0))
    with pytest.raises(TypeError, match="keep_best"):
        kerasft.wise_ft_sweep(
            model, other, None, metric=metric, mode="min", keep_best=1
        )
    compiled = _compiled(2, "compiled")
    x, y = np.zeros((4, 3), "float32"), np.zeros((4,), "int32")
    values = _values(compiled)
    with pytest.raises(ValueError, match="Unknown metric 'auc'"):
        kerasft.wise_ft_sweep(compiled, other, x, y, metric="auc")
    _assert_equal(_values(compiled), values)
    _assert_equal(_values(model), before)
