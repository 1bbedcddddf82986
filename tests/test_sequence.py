"""Tests for kerasft.sequence: recurrent models with named stages."""

import keras
import numpy as np
import pytest

import kerasft
from kerasft import sequence
from kerasft.callbacks import UnfreezeSchedule
from kerasft.optimizers import discriminative
from kerasft.optimizers import layerwise_decay

VOCAB = 30
STAGES = ["embedding", "rnn_0", "rnn_1", "head"]


def _ids(n=32, length=7, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, VOCAB, (n, length)).astype("int32")
    # Variable lengths: zero-padding at the end of every other row.
    x[::2, length - 3 :] = 0
    y = (x[:, 0] % 2).astype("int32")
    return x, y


def _values(layers):
    return [
        keras.ops.convert_to_numpy(v).copy()
        for layer in layers
        for v in layer.weights
    ]


def _stage_values(model, name):
    (stage,) = kerasft.resolve_stages(model, name)
    return [keras.ops.convert_to_numpy(v).copy() for v in stage.variables]


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def _all_moved(a, b):
    return all(not np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def _tiny(**kwargs):
    defaults = {"units": 6, "embedding_dim": 4}
    defaults.update(kwargs)
    return sequence.build_sequence_classifier(VOCAB, 2, **defaults)


# --------------------------------------------------------------------------
# Builders and stages.


@pytest.mark.parametrize(
    "cell, bidirectional", [("lstm", False), ("gru", True)]
)
def test_classifier_stages(cell, bidirectional):
    model = _tiny(cell=cell, bidirectional=bidirectional)
    stages = kerasft.stages(model)
    assert [s.name for s in stages] == STAGES
    rnn_class = keras.layers.LSTM if cell == "lstm" else keras.layers.GRU
    for stage in stages[1:3]:
        (layer,) = stage.layers
        if bidirectional:
            assert isinstance(layer, keras.layers.Bidirectional)
            assert isinstance(layer.forward_layer, rnn_class)
        else:
            assert isinstance(layer, rnn_class)
    assert model.output.shape == (None, 2)
    width = 12 if bidirectional else 6
    assert stages[2].layers[0].output.shape == (None, width)


def test_units_list_sets_depth_and_widths():
    model = _tiny(units=[8, 5, 3])
    assert [s.name for s in kerasft.stages(model)] == [
        "embedding",
        "rnn_0",
        "rnn_1",
        "rnn_2",
        "head",
    ]
    widths = [model.get_layer(f"rnn_{i}").units for i in range(3)]
    assert widths == [8, 5, 3]
    single = _tiny(num_layers=1)
    assert [s.name for s in kerasft.stages(single)] == [
        "embedding",
        "rnn_0",
        "head",
    ]


def test_padding_does_not_change_outputs():
    model = _tiny(bidirectional=True)
    x = np.array([[3, 4, 5, 0], [6, 7, 8, 9]], "int32")
    longer = np.concatenate([x, np.zeros((2, 5), "int32")], axis=1)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(x)),
        keras.ops.convert_to_numpy(model(longer)),
        atol=1e-6,
    )


@pytest.mark.parametrize("pooling", ["concat", "mean", "max"])
def test_pooling_ignores_padding_on_either_side(pooling):
    model = _tiny(pooling=pooling, activation=None)
    stages = kerasft.stages(model)
    assert [s.name for s in stages] == STAGES
    assert model.get_layer("rnn_1").return_sequences is True
    pool = model.get_layer("head").get_layer("pooling")
    assert pool.mode == pooling
    x = np.array([[3, 4, 5], [6, 7, 8]], "int32")
    zeros = np.zeros((2, 4), "int32")
    outputs = [
        keras.ops.convert_to_numpy(model(v))
        for v in (
            x,
            np.concatenate([x, zeros], 1),
            np.concatenate([zeros, x], 1),
        )
    ]
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-6)
    np.testing.assert_allclose(outputs[0], outputs[2], atol=1e-6)


def test_sequence_pooling_values_and_config():
    values = np.arange(24, dtype="float32").reshape(2, 4, 3)
    values[0, 1] = -5.0  # a valid step that is never the maximum
    mask = np.array([[1, 1, 1, 0], [0, 1, 1, 0]], bool)
    layer = sequence.SequencePooling("concat", name="pool", dtype="float32")
    out = keras.ops.convert_to_numpy(layer(values, mask=mask))
    assert out.shape == (2, 9)
    for row, steps in enumerate(([0, 1, 2], [1, 2])):
        valid = values[row, steps]
        expected = np.concatenate(
            [valid[-1], valid.max(axis=0), valid.mean(axis=0)]
        )
        np.testing.assert_allclose(out[row], expected, rtol=1e-6)
    # A row with no valid step pools to zeros; no mask: every step counts.
    empty = layer(values, mask=np.zeros((2, 4), bool))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(empty), 0.0)
    mean = sequence.SequencePooling("mean")(values)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(mean), values.mean(axis=1), rtol=1e-6
    )
    clone = sequence.SequencePooling.from_config(layer.get_config())
    assert (clone.mode, clone.name) == ("concat", "pool")
    assert layer.compute_output_shape((None, 5, 3)) == (None, 9)
    with pytest.raises(ValueError, match=r"`mode` must be one of \['last'"):
        sequence.SequencePooling("attention")


def test_concat_pooling_save_and_load_round_trip(tmp_path):
    model = _tiny(pooling="concat", head_dropout=0.2, name="pooled")
    path = str(tmp_path / "pooled.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_layer("head").get_layer("pooling").mode == "concat"
    x, _ = _ids(n=4)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(x)),
        keras.ops.convert_to_numpy(loaded(x)),
        atol=1e-6,
    )


def test_head_dropout_and_logits():
    model = _tiny(head_dropout=0.3, activation=None)
    head = model.get_layer("head")
    names = [layer.name for layer in head.layers]
    assert "head_dropout" in names
    assert head.get_layer("predictions").activation is keras.activations.linear


def test_language_model_stages_and_shapes():
    lm = sequence.build_language_model(
        VOCAB, units=[6, 5], embedding_dim=4, cell="gru"
    )
    assert [s.name for s in kerasft.stages(lm)] == STAGES
    x, _ = _ids(n=2)
    assert keras.ops.shape(lm(x)) == (2, 7, VOCAB)


def test_save_and_load_round_trip(tmp_path):
    model = _tiny(
        cell="gru",
        bidirectional=True,
        units=[5, 4],
        dropout=0.1,
        head_dropout=0.2,
        sequence_length=7,
        name="my_rnn",
    )
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.name == "my_rnn"
    assert [s.name for s in kerasft.stages(loaded)] == STAGES
    assert loaded.get_layer("rnn_0").forward_layer.dropout == 0.1
    x, _ = _ids(n=4)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(x)),
        keras.ops.convert_to_numpy(loaded(x)),
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"cell": "rnn"}, ValueError, r"`cell` must be one of \['lstm'"),
        ({"units": 0}, ValueError, "`units` must be an int >= 1"),
        ({"units": 4.0}, TypeError, "`units` must be an int >= 1"),
        ({"units": []}, ValueError, "non-empty list"),
        (
            {"units": [4, 4], "num_layers": 3},
            ValueError,
            "`num_layers` must be None or equal",
        ),
        ({"num_layers": 0}, ValueError, "`num_layers` must be an int >= 1"),
        ({"bidirectional": "yes"}, TypeError, "`bidirectional` must be"),
        (
            {"dropout": 1.0},
            ValueError,
            "`dropout` must be a finite number >= 0 and < 1",
        ),
        ({"head_dropout": -0.1}, ValueError, "`head_dropout` must be"),
        ({"embedding_dim": 0}, ValueError, "`embedding_dim` must be"),
        ({"mask_zero": 1}, TypeError, "`mask_zero` must be True or False"),
        ({"sequence_length": 0}, ValueError, "`sequence_length` must be"),
        ({"pooling": "attention"}, ValueError, r"`pooling` must be one of"),
    ],
)
def test_classifier_argument_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        _tiny(**kwargs)


def test_vocab_and_class_errors():
    with pytest.raises(ValueError, match="`vocab_size` must be an int >= 2"):
        sequence.build_sequence_classifier(1, 2)
    with pytest.raises(TypeError, match="Received: vocab_size=10.0"):
        sequence.build_sequence_classifier(10.0, 2)
    with pytest.raises(ValueError, match="`num_classes` must be an int >= 2"):
        sequence.build_sequence_classifier(10, 1)
    with pytest.raises(ValueError, match="`cell` must be one of"):
        sequence.build_language_model(10, cell="transformer")


# --------------------------------------------------------------------------
# Transfer from a pretrained model.


def test_classifier_from_language_model_copies_encoder():
    lm = sequence.build_language_model(VOCAB, units=[6, 5], embedding_dim=4)
    x, _ = _ids()
    lm.compile(
        keras.optimizers.Adam(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    lm.fit(x[:, :-1], x[:, 1:], epochs=1, batch_size=16, verbose=0)
    clf = sequence.classifier_from_pretrained(
        lm, 3, head_dropout=0.1, name="transfer"
    )
    clf.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy")
    assert clf.name == "transfer"
    assert [s.name for s in kerasft.stages(clf)] == STAGES
    assert clf.output.shape == (None, 3)
    assert clf.get_layer("rnn_1").return_sequences is False
    for name in ("embedding", "rnn_0", "rnn_1"):
        assert _same(
            _values([lm.get_layer(name)]), _values([clf.get_layer(name)])
        )
    # No variable is shared: training the classifier leaves the LM alone.
    lm_before = _values(lm.layers)
    callback = kerasft.callbacks.FreezeUntil("rnn_0")
    clf.fit(
        x, x[:, 0] % 3, epochs=1, batch_size=16, verbose=0, callbacks=[callback]
    )
    assert _same(lm_before, _values(lm.layers))
    assert _same(
        _values([lm.get_layer("rnn_0")]), _values([clf.get_layer("rnn_0")])
    )
    assert _all_moved(
        _values([lm.get_layer("rnn_1")]), _values([clf.get_layer("rnn_1")])
    )


def test_classifier_from_bidirectional_classifier():
    source = _tiny(bidirectional=True, cell="gru", units=[4, 3])
    clf = sequence.classifier_from_pretrained(source, 5)
    assert clf.output.shape == (None, 5)
    assert isinstance(clf.get_layer("rnn_1"), keras.layers.Bidirectional)
    x, _ = _ids(n=4)
    # Same encoder: the final states of both directions are equal.
    features = [
        keras.Model(m.input, m.get_layer("rnn_1").output) for m in (source, clf)
    ]
    np.testing.assert_allclose(
        *[keras.ops.convert_to_numpy(f(x)) for f in features], atol=1e-6
    )


def test_classifier_from_language_model_with_concat_pooling():
    lm = sequence.build_language_model(VOCAB, units=[6, 5], embedding_dim=4)
    lm(np.ones((1, 3), "int32"))
    clf = sequence.classifier_from_pretrained(lm, 2, pooling="concat")
    assert [s.name for s in kerasft.stages(clf)] == STAGES
    assert clf.get_layer("rnn_1").return_sequences is True
    assert clf.get_layer("head").get_layer("predictions").kernel.shape == (
        15,
        2,
    )
    # The pooled features are the LM's top-layer outputs, pooled.
    x = np.array([[3, 4, 5, 0, 0]], "int32")
    top = keras.Model(lm.input, lm.get_layer("rnn_1").output)
    states = keras.ops.convert_to_numpy(top(x[:, :3]))[0]
    sequences = keras.Model(clf.input, clf.get_layer("rnn_1").output)(x)
    pooling = clf.get_layer("head").get_layer("pooling")
    pooled = pooling(sequences, mask=keras.ops.convert_to_tensor(x != 0))
    expected = np.concatenate(
        [states[-1], states.max(axis=0), states.mean(axis=0)]
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(pooled)[0], expected, atol=1e-6
    )
    with pytest.raises(ValueError, match="`pooling` must be one of"):
        sequence.classifier_from_pretrained(lm, 2, pooling="sum")


def test_classifier_from_pretrained_errors():
    with pytest.raises(TypeError, match="`model` must be a keras.Model"):
        sequence.classifier_from_pretrained("lm", 2)
    inputs = keras.Input((4,))
    dense = keras.Model(inputs, keras.layers.Dense(2, name="d")(inputs))
    with pytest.raises(ValueError, match=r"layers \['d'\]"):
        sequence.classifier_from_pretrained(dense, 2)
    lm = sequence.build_language_model(VOCAB, units=4, embedding_dim=4)
    with pytest.raises(ValueError, match="`num_classes` must be an int >= 2"):
        sequence.classifier_from_pretrained(lm, 1)


# --------------------------------------------------------------------------
# Freezing, schedules and discriminative rates.


def test_freeze_until_trains_only_later_stages():
    model = _tiny(cell="gru")
    kerasft.freeze_until(model, "rnn_0")
    model.compile(
        keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy"
    )
    before = {name: _stage_values(model, name) for name in STAGES}
    x, y = _ids()
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert _same(before["embedding"], _stage_values(model, "embedding"))
    assert _same(before["rnn_0"], _stage_values(model, "rnn_0"))
    assert _all_moved(before["rnn_1"], _stage_values(model, "rnn_1"))
    assert _all_moved(before["head"], _stage_values(model, "head"))


class _EpochSnapshots(keras.callbacks.Callback):
    """Values of every stage at the start of fit and after each epoch."""

    def on_train_begin(self, logs=None):
        self.values = [self._snapshot()]

    def on_epoch_end(self, epoch, logs=None):
        self.values.append(self._snapshot())

    def _snapshot(self):
        return {name: _stage_values(self.model, name) for name in STAGES}


def _check_gradual(snapshots):
    values = snapshots.values
    # Epoch 0 trains the head only; epoch 1 adds rnn_1; epoch 2 adds rnn_0.
    assert _all_moved(values[0]["head"], values[1]["head"])
    assert _same(values[0]["rnn_1"], values[1]["rnn_1"])
    assert _all_moved(values[1]["rnn_1"], values[2]["rnn_1"])
    assert _same(values[0]["rnn_0"], values[2]["rnn_0"])
    assert _all_moved(values[2]["rnn_0"], values[3]["rnn_0"])
    assert _same(values[0]["embedding"], values[3]["embedding"])


def test_discriminative_rates_scale_each_stage_update():
    model = _tiny(cell="gru")
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    factors = layerwise_decay(model, 0.5)
    assert factors == {
        "embedding": 0.125,
        "rnn_0": 0.25,
        "rnn_1": 0.5,
        "head": 1.0,
    }
    model.compile(
        discriminative(keras.optimizers.SGD(0.1), model, factors),
        "sparse_categorical_crossentropy",
    )
    twin.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    x, y = _ids(n=16)
    before = {name: _stage_values(model, name) for name in STAGES}
    model.train_on_batch(x, y)
    twin.train_on_batch(x, y)
    for name in STAGES:
        (stage,) = kerasft.resolve_stages(twin, name)
        plain = [keras.ops.convert_to_numpy(v) for v in stage.variables]
        scaled = _stage_values(model, name)
        for start, p, s in zip(before[name], plain, scaled, strict=True):
            np.testing.assert_allclose(
                s - start, factors[name] * (p - start), rtol=1e-4, atol=1e-7
            )
        assert any(
            np.abs(p - start).max() > 0
            for start, p in zip(before[name], plain, strict=True)
        )


def test_gradual_unfreezing_with_layerwise_decay():
    # In one fit: the head trains, then rnn_1 and rnn_0 join, each at its
    # own rate; the weights of a newly unfrozen layer start moving.
    model = _tiny(bidirectional=True, units=4)
    model.compile(
        discriminative(
            keras.optimizers.Adam(0.05), model, layerwise_decay(model, 0.5)
        ),
        "sparse_categorical_crossentropy",
    )
    snapshots = _EpochSnapshots()
    x, y = _ids()
    model.fit(
        x,
        y,
        epochs=3,
        batch_size=16,
        verbose=0,
        callbacks=[UnfreezeSchedule.gradual(stages=3), snapshots],
    )
    _check_gradual(snapshots)
    rates = model.optimizer.stage_learning_rates()
    np.testing.assert_allclose(rates["rnn_0"], 0.05 * 0.25, rtol=1e-6)
