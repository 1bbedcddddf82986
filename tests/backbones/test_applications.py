"""keras.applications backbones: preprocessing, weights, errors."""

import os
import urllib.error

import keras
import numpy as np
import pytest

import kerasft
from kerasft import backbones

SMALL = (32, 32, 3)


@pytest.mark.parametrize(
    "mode, reference",
    [
        ("caffe", keras.applications.vgg16.preprocess_input),
        ("tf", keras.applications.mobilenet.preprocess_input),
        ("torch", keras.applications.densenet.preprocess_input),
        ("none", lambda x: x),
    ],
)
def test_preprocessing_matches_keras_preprocess_input(mode, reference):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(2, 4, 4, 3)).astype("float32")
    layer = backbones.ImagePreprocessing(mode)
    expected = reference(x.copy())
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(x)), expected, rtol=1e-5, atol=1e-4
    )


def test_preprocessing_serializes_with_non_default_args():
    layer = backbones.ImagePreprocessing(
        "torch", data_format="channels_first", name="prep", dtype="float16"
    )
    clone = backbones.ImagePreprocessing.from_config(layer.get_config())
    assert clone.mode == "torch"
    assert clone.data_format == "channels_first"
    assert clone.name == "prep"
    assert clone.dtype_policy.name == "float16"
    x = np.full((1, 3, 2, 2), 255.0, dtype="float32")
    out = keras.ops.convert_to_numpy(clone(x))
    np.testing.assert_allclose(
        out[0, :, 0, 0],
        (1 - np.array([0.485, 0.456, 0.406]))
        / [
            0.229,
            0.224,
            0.225,
        ],
        rtol=1e-2,
    )


def test_preprocessing_bad_mode():
    with pytest.raises(ValueError, match=r"Allowed: \['caffe', 'tf'"):
        backbones.ImagePreprocessing("imagenet")
    with pytest.raises(ValueError, match="Received: data_format='nhwc'"):
        backbones.ImagePreprocessing("tf", data_format="nhwc")


def test_backbone_takes_raw_pixels_and_has_name():
    backbone = backbones.VGG16(weights=None, input_shape=SMALL)
    assert backbone.name == "vgg16"
    assert backbone.layers[1].name == "preprocessing"
    assert backbone.layers[1].mode == "caffe"
    assert backbone.output_shape == (None, 512)
    backbone = backbones.MobileNetV2(
        weights=None, input_shape=SMALL, pooling=None, alpha=0.35, name="mn"
    )
    assert backbone.name == "mn" and len(backbone.output_shape) == 4


def test_from_application_generic():
    backbone = backbones.from_application(
        keras.applications.DenseNet121, weights=None, input_shape=SMALL
    )
    assert backbone.get_layer("preprocessing").mode == "torch"
    # DenseNet's stage map: the stem, then each dense block with the
    # transition after it.
    stages = kerasft.stages(backbone)
    assert [s.name for s in stages] == [
        "conv1",
        "conv2",
        "conv3",
        "conv4",
        "conv5",
        "head",
    ]
    assert stages[0].layers[0].name == "preprocessing"
    assert stages[1].layers[-1].name == "pool2_pool"
    assert [x.name for x in stages[4].layers[-2:]] == ["bn", "relu"]
    assert sum(s.count_params() for s in stages) == backbone.count_params()
    # A family without a stage map gets the generic split.
    backbone = backbones.from_application(
        "MobileNetV3Small", weights=None, input_shape=SMALL
    )
    assert backbone.get_layer("preprocessing").mode == "none"
    layers = backbone.layers[1:]
    assert [s.name for s in kerasft.stages(backbone)] == [
        x.name for x in layers
    ]


def test_from_application_errors(tmp_path):
    with pytest.raises(ValueError, match="Unknown keras.applications model"):
        backbones.from_application("ResNet51", weights=None)
    with pytest.raises(TypeError, match="Received: application=3"):
        backbones.from_application(3, weights=None)
    with pytest.raises(ValueError, match="Pass `preprocessing=`"):
        backbones.from_application(lambda **kw: None, weights=None)
    with pytest.raises(ValueError, match="Received: pooling='mean'"):
        backbones.VGG16(weights=None, input_shape=SMALL, pooling="mean")
    with pytest.raises(ValueError, match="no file exists"):
        backbones.VGG16(weights=os.path.join(tmp_path, "missing.h5"))
    with pytest.raises(TypeError, match="Received: weights=3"):
        backbones.VGG16(weights=3)
    with pytest.raises(ValueError, match=r"Received: input_shape=\(32, 32\)"):
        backbones.VGG16(weights=None, input_shape=(32, 32))


def _write_legacy_h5(model, path):
    """Writes weights in the keras.applications (legacy h5) layout."""
    import h5py

    layers = [layer for layer in model.layers if layer.weights]
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [layer.name.encode() for layer in layers]
        for layer in layers:
            group = f.create_group(layer.name)
            names = [f"{layer.name}/{w.name}:0".encode() for w in layer.weights]
            group.attrs["weight_names"] = names
            for name, w in zip(names, layer.weights):
                group.create_dataset(name.decode(), data=w.numpy())


def test_local_weights_file_is_loaded(tmp_path):
    source = keras.applications.MobileNet(
        weights=None, include_top=False, input_shape=SMALL, alpha=0.25
    )
    rng = np.random.default_rng(1)
    for v in source.weights:
        v.assign(rng.normal(size=v.shape).astype("float32"))
    for suffix in ("legacy.h5", "keras.weights.h5"):
        path = os.path.join(tmp_path, suffix)
        if suffix == "legacy.h5":
            _write_legacy_h5(source, path)
        else:
            source.save_weights(path)
        backbone = backbones.MobileNet(
            weights=path, input_shape=SMALL, alpha=0.25
        )
        for layer in ("conv1", "conv_pw_13", "conv_dw_7_bn"):
            for a, b in zip(
                source.get_layer(layer).weights,
                backbone.get_layer(layer).weights,
            ):
                np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_imagenet_download_failure_says_how_to_fix(monkeypatch, tmp_path):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(file_utils, "urlretrieve", offline)
    with pytest.raises(RuntimeError, match="python -m kerasft.assets"):
        backbones.MobileNet(
            weights="imagenet", input_shape=(128, 128, 3), alpha=0.25
        )
