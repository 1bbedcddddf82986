"""Tests for kerasft.augment.mix (MixUp, CutMix) and MixOff."""

import keras
import numpy as np
import pytest

import kerasft
from kerasft import augment

tf = pytest.importorskip("tensorflow")


def _coded_batch(n=8, size=6):
    """Image `b` has the one-hot code of class `b` in every pixel.

    A mixed image then carries its own true label: for MixUp each pixel
    is `lam * e_b + (1 - lam) * e_partner`; for CutMix the mean over the
    pixels weighs the partner by the pasted area.
    """
    codes = np.eye(n, dtype="float32")
    images = np.broadcast_to(codes[:, None, None, :], (n, size, size, n))
    return np.ascontiguousarray(images), np.arange(n)


def _np(x):
    return np.asarray(x)


def test_mixup_labels_use_the_weight_of_the_images():
    images, labels = _coded_batch()
    mixer = augment.mix("mixup", num_classes=8, alpha=0.4, seed=1)
    out_images, out_labels = (_np(x) for x in mixer(images, labels))
    assert out_images.dtype == np.float32 and out_labels.shape == (8, 8)
    # Every pixel of image b is its label row.
    pixels = out_images.reshape(8, -1, 8)
    np.testing.assert_allclose(
        pixels,
        np.broadcast_to(out_labels[:, None, :], pixels.shape),
        rtol=0,
        atol=1e-6,
    )
    np.testing.assert_allclose(out_labels.sum(axis=1), 1.0, atol=1e-6)
    assert (out_labels.max(axis=1) < 0.999).any()  # something was mixed


def test_cutmix_label_weight_is_the_pasted_area():
    images, labels = _coded_batch(size=10)
    mixer = augment.mix("cutmix", num_classes=8, seed=3)
    for _ in range(3):
        out_images, out_labels = (_np(x) for x in mixer(images, labels))
        # The mean code over the pixels is the label: the own class weighs
        # the pixels kept, the partner's the pixels pasted.
        np.testing.assert_allclose(
            out_images.mean(axis=(1, 2)), out_labels, atol=1e-6
        )
        pasted = out_images.argmax(axis=-1) != np.arange(8)[:, None, None]
        area = pasted.mean(axis=(1, 2))
        np.testing.assert_allclose(
            out_labels[np.arange(8), np.arange(8)], 1.0 - area, atol=1e-6
        )
    assert ((area > 0) & (area < 1)).any()


def test_both_switches_between_cutmix_and_mixup():
    images, labels = _coded_batch()
    mixer = augment.mix("both", num_classes=8, alpha=0.5, seed=0)
    seen = set()
    for _ in range(12):
        out = _np(mixer(images, labels)[0]).reshape(8, -1, 8)
        # MixUp: all pixels of an image alike; CutMix: two kinds of pixel.
        uniform = np.all(out == out[:, :1], axis=(1, 2))
        seen.add("mixup" if uniform.all() else "cutmix")
    assert seen == {"mixup", "cutmix"}
    assert set(mixer.layers) == {"mixup", "cutmix"}
    assert isinstance(mixer.layers["mixup"], keras.layers.MixUp)
    assert isinstance(mixer.layers["cutmix"], keras.layers.CutMix)


@pytest.mark.parametrize(
    "labels",
    [
        np.array([2, 0, 1, 2]),
        np.array([[2], [0], [1], [2]], dtype="int64"),
        np.array([2.0, 0.0, 1.0, 2.0], dtype="float32"),
    ],
    ids=["int", "int-column", "float"],
)
def test_class_indices_become_one_hot(labels):
    images = np.zeros((4, 4, 4, 3), "uint8")
    mixer = augment.mix(num_classes=3, probability=0.0)
    out_images, out_labels = mixer(images, labels)
    assert out_images.dtype == tf.float32
    np.testing.assert_array_equal(
        _np(out_labels), np.eye(3, dtype="float32")[[2, 0, 1, 2]]
    )


def test_one_hot_and_soft_labels_pass_as_they_are():
    images = np.zeros((2, 4, 4, 3), "float32")
    soft = np.array([[0.1, 0.9, 0.0], [0.0, 0.0, 1.0]], "float32")
    mixer = augment.mix(num_classes=3, probability=0.0)
    np.testing.assert_array_equal(_np(mixer(images, soft)[1]), soft)


def test_bad_labels_and_unbatched_images_are_refused():
    mixer = augment.mix(num_classes=3)
    images = np.zeros((2, 4, 4, 3), "float32")
    with pytest.raises(ValueError, match=r"labels.shape=\(2, 5\)"):
        mixer(images, np.zeros((2, 5), "float32"))
    with pytest.raises(ValueError, match=r"dataset.batch.*images.shape"):
        mixer(images[0], np.array([1]))
    for bad in ([0, 3], [0, -1]):
        with pytest.raises(tf.errors.InvalidArgumentError, match=">= 0 and"):
            augment.mix(num_classes=3)(images, np.array(bad))


def test_seed_makes_the_mixing_reproducible():
    images, labels = _coded_batch()

    def run(seed):
        mixer = augment.mix("both", num_classes=8, seed=seed)
        return [_np(x) for _ in range(3) for x in mixer(images, labels)]

    for first, second in zip(run(5), run(5)):
        np.testing.assert_array_equal(first, second)
    assert any(
        not np.array_equal(a, b) for a, b in zip(run(5), run(6), strict=True)
    )


def test_runs_in_a_tf_data_pipeline_on_every_backend():
    images, labels = _coded_batch(8)
    mixer = augment.mix("cutmix", num_classes=8, seed=2)
    dataset = (
        tf.data.Dataset.from_tensor_slices((images, labels))
        .batch(4)
        .map(mixer, num_parallel_calls=tf.data.AUTOTUNE)
    )
    batches = [(a.numpy(), b.numpy()) for a, b in dataset]
    assert [(a.shape, b.shape) for a, b in batches] == [
        ((4, 6, 6, 8), (4, 8))
    ] * 2
    for a, b in batches:
        np.testing.assert_allclose(a.mean(axis=(1, 2)), b, atol=1e-6)


def _mixed_fraction(y_true, y_pred):
    """Share of the batch whose label row is not one-hot."""
    soft = keras.ops.max(y_true, axis=-1) < 0.999
    return keras.ops.mean(keras.ops.cast(soft, "float32"))


def _tiny_vgg_classifier():
    inputs = keras.Input((6, 6, 8))
    x = keras.layers.Conv2D(4, 3, name="block1_conv1")(inputs)
    x = keras.layers.Conv2D(4, 3, name="block2_conv1")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(8, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs)


def test_mix_off_stops_mixing_at_its_epoch_inside_fit():
    images, labels = _coded_batch()
    mixer = augment.mix("mixup", num_classes=8, alpha=1.0, seed=0)
    train = (
        tf.data.Dataset.from_tensor_slices((images, labels))
        .batch(4)
        .map(mixer)
        .prefetch(2)
    )
    model = _tiny_vgg_classifier()
    kerasft.freeze_until(model, "block2_conv1")
    model.compile(
        keras.optimizers.SGD(0.01),
        keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
        metrics=[_mixed_fraction],
    )
    block1 = model.get_layer("block1_conv1")
    schedule = kerasft.callbacks.UnfreezeSchedule({1: "block1_conv1"})
    off = augment.MixOff(mixer, off_epoch=2)
    history = model.fit(
        train, epochs=4, callbacks=[schedule, off], verbose=0
    ).history
    mixed = history["_mixed_fraction"]
    assert mixed[0] > 0 and mixed[1] > 0, mixed
    assert mixed[2:] == [0.0, 0.0], mixed
    assert history["mix_probability"] == [1.0, 1.0, 0.0, 0.0]
    assert block1.trainable  # the schedule ran in the same fit
    # After fit the mixer mixes again, for the next fit.
    assert float(mixer.probability.numpy()) == 1.0


def test_mix_off_at_epoch_zero_never_mixes():
    images, labels = _coded_batch()
    mixer = augment.mix("cutmix", num_classes=8, probability=0.5, seed=0)
    train = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    model = _tiny_vgg_classifier()
    model.compile("sgd", "categorical_crossentropy", metrics=[_mixed_fraction])
    history = model.fit(
        train.map(mixer),
        epochs=2,
        callbacks=[augment.MixOff(mixer, off_epoch=0)],
        verbose=0,
    ).history
    assert history["_mixed_fraction"] == [0.0, 0.0]
    assert float(mixer.probability.numpy()) == 0.5


def test_alpha_defaults_and_repr():
    mixer = augment.mix("both", num_classes=4, seed=1)
    assert mixer.layers["mixup"].alpha == 0.2
    assert tuple(mixer.layers["cutmix"].factor) == (1.0, 1.0)
    assert mixer.layers["mixup"].seed == 1
    assert mixer.layers["cutmix"].seed == 2
    assert repr(mixer) == (
        "Mixer(kind='both', num_classes=4, alpha=None, probability=1.0, seed=1)"
    )
    assert augment.MIX_KINDS == ("mixup", "cutmix", "both")


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"kind": "blend"}, ValueError, "kind='blend'"),
        ({"num_classes": 1}, ValueError, "num_classes=1"),
        ({"alpha": 0.0}, ValueError, "alpha=0.0"),
        ({"kind": "both", "alpha": 2.0}, ValueError, "<= 1 with CutMix"),
        ({"probability": 1.5}, ValueError, "probability=1.5"),
        ({"seed": "0"}, TypeError, "seed='0'"),
    ],
)
def test_mix_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        augment.mix(**{"num_classes": 3, **kwargs})


def test_mix_off_errors():
    mixer = augment.mix(num_classes=3)
    with pytest.raises(TypeError, match="mixer=42"):
        augment.MixOff(42, 1)
    with pytest.raises(ValueError, match="off_epoch=-1"):
        augment.MixOff(mixer, -1)


class _Crash(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 2:
            raise RuntimeError("preempted")


def test_mix_off_resumes_with_backup_and_restore(tmp_path):
    """A run resumed by BackupAndRestore mixes as the uninterrupted one."""
    images, labels = _coded_batch()
    mixer = augment.mix("mixup", num_classes=8, seed=0)
    train = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    model = _tiny_vgg_classifier()
    model.compile("sgd", "categorical_crossentropy", metrics=[_mixed_fraction])
    backup = str(tmp_path / "backup")

    def fit(*extra):
        return model.fit(
            train.map(mixer),
            epochs=4,
            callbacks=[
                keras.callbacks.BackupAndRestore(backup),
                augment.MixOff(mixer, off_epoch=3),
                *extra,
            ],
            verbose=0,
        )

    with pytest.raises(RuntimeError, match="preempted"):
        fit(_Crash())
    history = fit().history  # epochs 2 and 3
    assert history["mix_probability"] == [1.0, 0.0]
    assert history["_mixed_fraction"][0] > 0
    assert history["_mixed_fraction"][1] == 0.0
