"""Tests for kerasft.caching: cached_fit and FeatureCache."""

import gc
import os
import tempfile

import keras
import numpy as np
import pytest

import kerasft
from kerasft import FeatureCache
from kerasft import cached_fit
from kerasft._src import caching

N = 96
BATCH = 16


def _backbone(preprocess=None):
    inputs = keras.Input((12, 12, 3))
    x = inputs
    if preprocess is not None:
        x = preprocess(x)
    for i, filters in enumerate((4, 8), start=1):
        x = keras.layers.Conv2D(
            filters, 3, padding="same", name=f"block{i}_conv1"
        )(x)
        x = keras.layers.BatchNormalization(name=f"block{i}_bn")(x)
        x = keras.layers.Conv2D(
            filters,
            3,
            padding="same",
            activation="relu",
            name=f"block{i}_conv2",
        )(x)
        x = keras.layers.MaxPooling2D(name=f"block{i}_pool")(x)
    return keras.Model(inputs, x, name="tiny_vgg")


def _model(preprocess=None, dropout=0.0, seed=3):
    keras.utils.set_random_seed(seed)
    model = kerasft.build_classifier(
        _backbone(preprocess),
        num_classes=3,
        dropout=dropout,
        head="mlp",
        hidden_units=6,
    )
    return model


def _compile(model):
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def _data(n=N):
    rng = np.random.default_rng(0)
    x = rng.random((n, 12, 12, 3), dtype="float32")
    y = rng.integers(0, 3, size=(n,))
    return x, y


def _pair(target="head", inclusive=False):
    """Two identical compiled models frozen the same way."""
    a = _model()
    b = _model()
    b.set_weights(a.get_weights())
    for m in (a, b):
        kerasft.freeze_until(m, target, inclusive=inclusive)
        _compile(m)
    return a, b


def _assert_same_weights(a, b, atol=1e-5):
    for va, vb in zip(a.weights, b.weights):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(va),
            keras.ops.convert_to_numpy(vb),
            atol=atol,
            err_msg=va.path,
        )


def _frozen_values(model, stage_names):
    return [
        keras.ops.convert_to_numpy(v).copy()
        for s in kerasft.stages(model)
        if s.name in stage_names
        for v in s.variables
    ]


@pytest.mark.parametrize(
    "target,inclusive", [("head", False), ("block1", True)]
)
def test_matches_plain_fit(target, inclusive):
    x, y = _data()
    plain, cached = _pair(target, inclusive)
    before = _frozen_values(cached, ["block1"])
    trained_before = [
        keras.ops.convert_to_numpy(v).copy() for v in cached.trainable_variables
    ]
    h1 = plain.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    h2 = cached_fit(
        cached, x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0
    )
    _assert_same_weights(plain, cached)
    np.testing.assert_allclose(h1.history["loss"], h2.history["loss"], 1e-5)
    assert set(h2.history) == {"loss", "accuracy"}
    assert int(cached.optimizer.iterations) == 2 * N // BATCH
    # Frozen weights are bit-identical, trained ones moved.
    after = _frozen_values(cached, ["block1"])
    for b, a in zip(before, after):
        np.testing.assert_array_equal(a, b)
    moved = [
        not np.allclose(keras.ops.convert_to_numpy(v), b)
        for v, b in zip(cached.trainable_variables, trained_before)
    ]
    assert any(moved)


def test_model_stays_whole_and_cut_is_smallest():
    _, model = _pair()
    body, top = caching.split_model(model)
    # Head-only: the pooling runs in the body, the cache holds vectors.
    assert tuple(body.outputs[0].shape) == (None, 8)
    x, _ = _data(8)
    np.testing.assert_allclose(
        top.predict(body.predict(x, verbose=0), verbose=0),
        model.predict(x, verbose=0),
        atol=1e-6,
    )
    features = FeatureCache(model).features(x)
    assert not features.on_disk and features.nbytes == 8 * 8 * 4
    top_weights = {id(v) for v in top.weights}
    assert {id(v) for v in model.trainable_variables} <= top_weights


def test_validation_data_and_callbacks_see_whole_model():
    x, y = _data()
    plain, cached = _pair()
    seen = []

    class Probe(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(self.model)

    val = (x[:32], y[:32])
    h1 = plain.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=1,
        shuffle=False,
        validation_data=val,
        verbose=0,
    )
    h2 = cached_fit(
        cached,
        x,
        y,
        batch_size=BATCH,
        epochs=1,
        shuffle=False,
        validation_data=val,
        callbacks=[Probe()],
        verbose=0,
    )
    np.testing.assert_allclose(
        h1.history["val_loss"], h2.history["val_loss"], rtol=1e-5
    )
    assert seen and all(m is cached for m in seen)


def test_early_stopping_stops_cached_fit():
    x, y = _data()
    _, model = _pair()

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    history = cached_fit(model, x, y, epochs=5, callbacks=[Stop()], verbose=0)
    assert len(history.history["loss"]) == 1


def test_memmap_path(tmp_path):
    x, y = _data()
    plain, cached = _pair("block1", True)
    cache = FeatureCache(cached, memory_budget=1024, cache_dir=tmp_path)
    plain.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    cached_fit(
        cached,
        x,
        y,
        batch_size=BATCH,
        epochs=1,
        shuffle=False,
        verbose=0,
        cache=cache,
    )
    assert cache.on_disk
    assert cache.nbytes == N * 6 * 6 * 4 * 4
    files = [f for _, _, fs in os.walk(tmp_path) for f in fs]
    assert files
    _assert_same_weights(plain, cached)
    # Shuffled batches from the memmap also train.
    cached_fit(cached, x, y, epochs=1, verbose=0, cache=cache)
    cache.clear()
    assert not [f for _, _, fs in os.walk(tmp_path) for f in fs]


def _files(folder):
    return [f for _, _, fs in os.walk(folder) for f in fs]


def test_context_manager_deletes_memmap_files(tmp_path):
    x, y = _data()
    _, model = _pair("block1", True)
    with FeatureCache(model, memory_budget=1024, cache_dir=tmp_path) as cache:
        assert not cache.closed
        features = cache.features(x, y)
        assert features.on_disk and _files(tmp_path)
        cache.fit(x, y, epochs=1, verbose=0)
    assert cache.closed
    assert not _files(tmp_path)
    # Any further use says the cache is closed; closing again is harmless.
    for use in (
        lambda: cache.features(x, y),
        lambda: cache.fit(x, y, verbose=0),
        lambda: cache.body,
        lambda: cache.top,
        lambda: cached_fit(model, x, y, cache=cache, verbose=0),
        lambda: cache.__enter__(),
    ):
        with pytest.raises(ValueError, match="FeatureCache is closed.*tiny"):
            use()
    cache.close()
    assert cache.closed


def test_close_deletes_the_temporary_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    x, y = _data()
    _, model = _pair("block1", True)
    cache = FeatureCache(model, memory_budget=1024)
    assert cache.features(x, y).on_disk
    (root,) = os.listdir(tmp_path)
    assert root.startswith("kerasft_features_") and _files(tmp_path)
    cache.close()
    assert not os.listdir(tmp_path)
    with pytest.raises(ValueError, match="closed"):
        cache.features(x, y)


def test_unclosed_cache_is_cleaned_when_collected(tmp_path):
    x, y = _data()
    _, model = _pair("block1", True)
    cache = FeatureCache(model, memory_budget=1024, cache_dir=tmp_path)
    cache.features(x, y)
    assert _files(tmp_path)
    del cache
    gc.collect()
    assert not _files(tmp_path)


def test_cached_fit_closes_its_own_cache(tmp_path):
    x, y = _data()
    _, model = _pair("block1", True)
    cached_fit(model, x, y, memory_budget=1024, cache_dir=tmp_path, verbose=0)
    assert os.path.isdir(tmp_path) and not _files(tmp_path)
    # A cache passed in stays open for the next call.
    cache = FeatureCache(model, memory_budget=1024, cache_dir=tmp_path)
    cached_fit(model, x, y, cache=cache, verbose=0)
    assert not cache.closed and _files(tmp_path)
    cache.close()


def test_tf_dataset_input():
    tf = pytest.importorskip("tensorflow")
    x, y = _data()
    plain, cached = _pair()
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)
    plain.fit(ds, epochs=1, shuffle=False, verbose=0)
    cached_fit(cached, ds, epochs=1, shuffle=False, verbose=0)
    _assert_same_weights(plain, cached)


class _Seq(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size
        self.reads = 0

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, i):
        self.reads += 1
        sl = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self.x[sl], self.y[sl]


def test_pydataset_input_read_once():
    x, y = _data()
    plain, cached = _pair()
    plain.fit(_Seq(x, y, BATCH), epochs=1, shuffle=False, verbose=0)
    seq = _Seq(x, y, BATCH)
    cached_fit(cached, seq, epochs=1, shuffle=False, verbose=0)
    assert seq.reads == N // BATCH
    _assert_same_weights(plain, cached)


def test_cache_reused_and_invalidated():
    x, y = _data()
    _, model = _pair()
    cache = FeatureCache(model)
    first = cache.features(x, y)
    assert cache.features(x, y) is first
    assert cache.computations == 1
    # The frozen part's weights change: recomputed.
    kernel = model.get_layer("tiny_vgg").get_layer("block2_conv2").kernel
    kernel.assign(kernel * 0.5)
    second = cache.features(x, y)
    assert cache.computations == 2
    assert not np.allclose(first.x, second.x)
    # The cut moves (a lower stage unfreezes): re-cut and recomputed.
    kerasft.freeze_until(model, "block1")
    third = cache.features(x, y)
    assert cache.computations == 3
    assert third.x.shape == (N, 6, 6, 4)
    # New data: recomputed; the same data again is not.
    cache.features(x[:48], y[:48])
    cache.features(x, y)
    assert cache.computations == 4
    # Training through the cache uses the current cut.
    _compile(model)
    cache.fit(x, y, epochs=1, verbose=0)
    assert cache.computations == 4


def test_phases_match_plain_fit():
    """The documented recipe for a schedule: one cached_fit per phase."""
    x, y = _data()
    plain, cached = _pair()
    cache = FeatureCache(cached)
    for model, fit in ((plain, None), (cached, cache)):
        for first, last, target, inclusive in (
            (0, 1, "head", False),
            (1, 2, "block1", True),
        ):
            kerasft.freeze_until(model, target, inclusive=inclusive)
            _compile(model)
            kwargs = dict(
                batch_size=BATCH,
                initial_epoch=first,
                epochs=last,
                shuffle=False,
                verbose=0,
            )
            if fit is None:
                model.fit(x, y, **kwargs)
            else:
                cached_fit(model, x, y, cache=fit, **kwargs)
    _assert_same_weights(plain, cached)
    assert cache.computations == 2


def test_refuses_schedule_callbacks():
    x, y = _data()
    _, model = _pair()
    schedule = kerasft.callbacks.UnfreezeSchedule({0: "head", 1: "block2"})
    with pytest.raises(ValueError, match="one `cached_fit` per phase"):
        cached_fit(model, x, y, callbacks=[schedule], verbose=0)


@pytest.mark.parametrize(
    "layer,match",
    [
        (lambda: keras.layers.RandomFlip(), "RandomFlip"),
        (lambda: keras.layers.Dropout(0.2), "Dropout"),
        (lambda: keras.layers.GaussianNoise(0.1), "GaussianNoise"),
    ],
)
def test_refuses_randomness_below_cut(layer, match):
    x, y = _data()
    model = _model(preprocess=layer())
    kerasft.freeze_until(model, "head", inclusive=False)
    _compile(model)
    with pytest.raises(ValueError, match=f"{match}.*first trainable stage"):
        cached_fit(model, x, y, verbose=0)


def test_refuses_batchnorm_in_training_mode():
    x, y = _data()
    model = _model()
    kerasft.freeze_until(model, "head", inclusive=False, bn="train")
    kerasft.freeze_until(model, "block2", bn="follow")
    model.get_layer("tiny_vgg").get_layer("block1_bn").trainable = True
    _compile(model)
    # block1_bn trains, so block1 is the first trainable stage: no cut.
    with pytest.warns(UserWarning, match="nothing to cache"):
        cached_fit(model, x, y, verbose=0)
    bn = keras.layers.BatchNormalization(center=False, scale=False)
    model = _model(preprocess=bn)
    kerasft.freeze_until(model, "head", inclusive=False)
    bn.trainable = True  # no weights train, but it uses batch statistics
    _compile(model)
    with pytest.raises(ValueError, match="BatchNormalization in training"):
        cached_fit(model, x, y, verbose=0)


def test_dropout_above_cut_is_fine():
    x, y = _data()
    model = _model(dropout=0.5)
    kerasft.freeze_until(model, "head", inclusive=False)
    _compile(model)
    body, top = caching.split_model(model)
    assert "head_dropout" in [layer.name for layer in top.layers]
    cached_fit(model, x, y, verbose=0)


def test_errors():
    x, y = _data()
    model = _model()
    kerasft.freeze(model)
    _compile(model)
    with pytest.raises(ValueError, match="Nothing in model"):
        cached_fit(model, x, y, verbose=0)
    with pytest.raises(ValueError, match="memory_budget"):
        FeatureCache(model, memory_budget=-1)
    with pytest.raises(TypeError, match="functional"):
        cached_fit(keras.Sequential([keras.layers.Dense(2)]), x, y)
    uncompiled = _model()
    kerasft.freeze_until(uncompiled, "head", inclusive=False)
    with pytest.raises(ValueError, match="compile"):
        cached_fit(uncompiled, x, y)
    with pytest.raises(TypeError, match="FeatureCache"):
        cached_fit(model, x, y, cache="cache")


def test_nothing_frozen_falls_back_with_warning():
    x, y = _data()
    model = _model()
    _compile(model)
    with pytest.warns(UserWarning, match="plain `model.fit`"):
        history = cached_fit(model, x, y, epochs=1, verbose=0)
    assert len(history.history["loss"]) == 1
