"""freeze / unfreeze / freeze_until, the BatchNormalization policy, summary."""

import os

import keras
import numpy as np
import pytest

import kerasft
from kerasft import backbones

SMALL = (32, 32, 3)


def _mobilenet_classifier():
    backbone = backbones.MobileNet(weights=None, input_shape=SMALL, alpha=0.25)
    return kerasft.build_classifier(backbone, 3)


def _data(n=8):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(n, *SMALL)).astype("float32")
    y = rng.integers(0, 3, size=(n,))
    return x, y


def _snapshot(model):
    return {id(v): np.array(v.numpy()) for v in model.weights}


def _fit(model, epochs=1):
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss="sparse_categorical_crossentropy",
    )
    x, y = _data()
    model.fit(x, y, batch_size=4, epochs=epochs, verbose=0)


def _trainable_ids(model):
    return {id(v) for v in model.trainable_variables}


def _generic():
    inputs = keras.Input((8,))
    x = keras.layers.Dense(6, name="dense_a")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Dense(5, name="dense_b")(x)
    outputs = keras.layers.Dense(2, name="clf")(x)
    return keras.Model(inputs, outputs, name="generic")


def test_freeze_all_then_unfreeze_one_layer_trains_exactly_it():
    model = _generic()
    kerasft.freeze(model)
    assert model.trainable_variables == []
    kerasft.unfreeze(model, "clf")
    clf = model.get_layer("clf")
    assert _trainable_ids(model) == {id(v) for v in clf.weights}


def test_get_layer_trainable_after_freeze_trains_that_layer():
    model = _generic()
    kerasft.freeze(model)
    model.get_layer("dense_b").trainable = True
    expected = {id(v) for v in model.get_layer("dense_b").weights}
    assert _trainable_ids(model) == expected


def test_containers_are_never_frozen():
    model = _mobilenet_classifier()
    kerasft.freeze(model)
    assert model.trainable and model.get_layer("mobilenet").trainable
    kerasft.unfreeze(model, "predictions")
    assert len(model.trainable_variables) == 2


def test_unfreeze_opens_a_container_frozen_by_the_user():
    model = _mobilenet_classifier()
    model.get_layer("mobilenet").trainable = False
    kerasft.unfreeze(model, "block5")
    names = {v.path.split("/")[0] for v in model.trainable_variables}
    assert names == {
        "conv_dw_12",
        "conv_pw_12",
        "conv_dw_13",
        "conv_pw_13",
        "predictions",
    }


def test_freeze_until_every_stage_trains_only_later_stages():
    model = _mobilenet_classifier()
    stages = kerasft.stages(model)
    for stage in stages:
        kerasft.freeze_until(model, stage.name)
        for other in kerasft.stages(model):
            if not other.variables:
                continue
            expected = other.index > stage.index
            assert bool(other.trainable_params) == expected, (
                stage.name,
                other.name,
            )
        kerasft.freeze_until(model, stage.name, inclusive=False)
        current = kerasft.stages(model)[stage.index]
        if current.variables:
            assert current.trainable_params > 0, stage.name


@pytest.mark.parametrize("target", ["block2", "block5", "head"])
def test_after_fit_frozen_weights_identical_trainable_moved(target):
    # VGG16: no BatchNormalization whose inference-mode statistics (mean 0,
    # variance 1 at random init) would saturate ReLU6 and zero the gradients.
    backbone = backbones.VGG16(weights=None, input_shape=SMALL)
    model = kerasft.build_classifier(backbone, 3)
    kerasft.freeze_until(model, target, inclusive=False)
    before = _snapshot(model)
    trainable = _trainable_ids(model)
    _fit(model)
    cut = kerasft.stage_index(model, target)
    for stage in kerasft.stages(model):
        moved = []
        for v in stage.variables:
            changed = not np.array_equal(v.numpy(), before[id(v)])
            if id(v) in trainable:
                assert stage.index >= cut
                moved.append(changed)
            else:
                # Frozen stages, and BN statistics under bn="frozen", keep
                # their exact values.
                assert not changed, v.path
        if stage.index >= cut and stage.variables:
            assert all(moved), stage.name
        if stage.name == "head":
            assert all(moved)


def test_bn_frozen_keeps_moving_stats_in_unfrozen_stages():
    model = _mobilenet_classifier()
    kerasft.unfreeze(model)  # bn="frozen" by default
    bns = [
        x
        for x in model.get_layer("mobilenet").layers
        if isinstance(x, keras.layers.BatchNormalization)
    ]
    assert bns and not any(x.trainable for x in bns)
    before = [np.array(x.moving_mean.numpy()) for x in bns]
    _fit(model)
    for x, b in zip(bns, before):
        np.testing.assert_array_equal(x.moving_mean.numpy(), b)


def test_bn_follow_updates_stats_only_in_unfrozen_stages():
    model = _mobilenet_classifier()
    kerasft.freeze_until(model, "block4", bn="follow")
    stages = {s.name: s for s in kerasft.stages(model)}
    bn_early = next(
        x
        for x in stages["block1"].layers
        if isinstance(x, keras.layers.BatchNormalization)
    )
    bn_late = next(
        x
        for x in stages["block5"].layers
        if isinstance(x, keras.layers.BatchNormalization)
    )
    assert not bn_early.trainable and bn_late.trainable
    early, late = bn_early.moving_mean.numpy(), bn_late.moving_mean.numpy()
    _fit(model)
    np.testing.assert_array_equal(bn_early.moving_mean.numpy(), early)
    assert not np.array_equal(bn_late.moving_mean.numpy(), late)


def test_bn_train_trains_bn_in_frozen_stages():
    model = _mobilenet_classifier()
    kerasft.freeze(model, bn="train")
    trainable = model.trainable_variables
    assert trainable and all(
        "bn" in v.path and ("gamma" in v.path or "beta" in v.path)
        for v in trainable
    )


def test_bad_bn_mode_leaves_state_unchanged():
    model = _generic()
    kerasft.freeze(model, "dense_a")
    before = _trainable_ids(model)
    with pytest.raises(ValueError, match=r"Allowed: \['frozen', 'train'"):
        kerasft.freeze(model, "clf", bn="sometimes")
    with pytest.raises(ValueError, match="Received: bn='x'"):
        kerasft.freeze_until(model, "clf", bn="x")
    assert _trainable_ids(model) == before


@pytest.mark.parametrize(
    "call",
    [
        lambda m: kerasft.freeze(m, ["clf", "no_such_layer"]),
        lambda m: kerasft.unfreeze(m, 17),
        lambda m: kerasft.freeze_until(m, keras.layers.Dense(2)),
        lambda m: kerasft.freeze_until(m, "dense_a", inclusive="yes"),
    ],
)
def test_bad_targets_leave_state_unchanged(call):
    model = _generic()
    kerasft.freeze(model, "dense_b")
    before = {x.name: x.trainable for x in model.layers}
    with pytest.raises((ValueError, TypeError)):
        call(model)
    assert {x.name: x.trainable for x in model.layers} == before


def test_unbuilt_model_is_refused():
    with pytest.raises(ValueError, match="not built yet"):
        kerasft.freeze(keras.Sequential([keras.layers.Dense(2)]))


def test_summary_rows_and_table():
    model = _generic()
    kerasft.freeze_until(model, "bn")
    lines = []
    rows = kerasft.summary(model, print_fn=lines.append)
    assert [r["stage"] for r in rows] == ["dense_a", "bn", "dense_b", "clf"]
    by_name = {r["stage"]: r for r in rows}
    assert by_name["dense_a"]["trainable_params"] == 0
    assert by_name["dense_b"]["trainable_params"] == 6 * 5 + 5
    assert by_name["bn"]["bn"] == "inference"
    assert by_name["clf"]["trains"] == "yes"
    assert any("Trainable: 47" in line for line in lines)
    assert kerasft.summary(model, print_fn=False) == rows


def test_summary_of_frozen_resnet50_counts():
    backbone = backbones.ResNet50(weights=None, input_shape=SMALL)
    model = kerasft.build_classifier(backbone, 5)
    kerasft.freeze_until(model, "conv4")
    rows = kerasft.summary(model, print_fn=False)
    by_name = {r["stage"]: r for r in rows}
    for name in ("conv1", "conv2", "conv3", "conv4"):
        assert by_name[name]["trainable_params"] == 0
        assert by_name[name]["bn"] == "inference"
    conv5 = kerasft.stages(model)[4]
    conv5_bn_params = sum(
        int(np.prod(v.shape))
        for x in conv5.layers
        if isinstance(x, keras.layers.BatchNormalization)
        for v in x.weights
    )
    assert by_name["conv5"]["trainable_params"] == (
        conv5.count_params() - conv5_bn_params
    )
    assert by_name["head"]["trainable_params"] == 2048 * 5 + 5
    assert sum(r["trainable_params"] for r in rows) == sum(
        int(np.prod(v.shape)) for v in model.trainable_variables
    )


def test_keras_round_trip_keeps_trainable_flags_and_stages(tmp_path):
    model = _mobilenet_classifier()
    kerasft.freeze_until(model, "block3", bn="follow")
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert [s.name for s in kerasft.stages(loaded)] == [
        s.name for s in kerasft.stages(model)
    ]
    before = [
        (x.name, x.trainable) for s in kerasft.stages(model) for x in s.layers
    ]
    after = [
        (x.name, x.trainable) for s in kerasft.stages(loaded) for x in s.layers
    ]
    assert before == after
    assert len(loaded.trainable_variables) == len(model.trainable_variables)
    x, _ = _data(2)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )
