"""AlexNet: architecture, stages, local weight loading."""

import os

import keras
import numpy as np
import pytest

import kerasft
from kerasft import backbones


def test_alexnet_stages_and_seed_recipe():
    backbone = backbones.AlexNet(input_shape=(64, 64, 3))
    model = kerasft.build_classifier(backbone, 4)
    names = [s.name for s in kerasft.stages(model)]
    assert names == [
        "conv1",
        "conv2",
        "conv3",
        "conv4",
        "conv5",
        "fc6",
        "fc7",
        "head",
    ]
    # The seed's recipe: freeze every convolution stage, train the last layer.
    kerasft.freeze_until(model, "fc7")
    assert [v.path for v in model.trainable_variables] == [
        "predictions/kernel",
        "predictions/bias",
    ]


def test_alexnet_keras_weights_round_trip(tmp_path):
    source = backbones.AlexNet(input_shape=(64, 64, 3))
    path = os.path.join(tmp_path, "alexnet.weights.h5")
    source.save_weights(path)
    loaded = backbones.AlexNet(weights=path, input_shape=(64, 64, 3))
    for a, b in zip(source.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def _torch_alexnet():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    features = nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
    )
    classifier = nn.Sequential(
        nn.Dropout(),
        nn.Linear(256 * 6 * 6, 4096),
        nn.ReLU(),
        nn.Dropout(),
        nn.Linear(4096, 4096),
        nn.ReLU(),
        nn.Linear(4096, 1000),
    )
    return torch, features.eval(), classifier.eval()


def test_alexnet_loads_torchvision_state_dict_exactly(tmp_path):
    torch, features, classifier = _torch_alexnet()
    state = {
        f"features.{k}": v.numpy() for k, v in features.state_dict().items()
    }
    state.update(
        {
            f"classifier.{k}": v.numpy()
            for k, v in classifier.state_dict().items()
        }
    )
    path = os.path.join(tmp_path, "alexnet.npz")
    np.savez(path, **state)
    model = backbones.AlexNet(weights=path, include_top=True)

    rng = np.random.default_rng(0)
    pixels = rng.uniform(0, 255, size=(1, 224, 224, 3)).astype("float32")
    mean = np.array([0.485, 0.456, 0.406], dtype="float32")
    std = np.array([0.229, 0.224, 0.225], dtype="float32")
    normalized = (pixels / 255.0 - mean) / std
    with torch.no_grad():
        t = torch.from_numpy(normalized.transpose(0, 3, 1, 2).copy())
        logits = classifier(torch.flatten(features(t), 1))
        expected = torch.softmax(logits, dim=-1).numpy()
    got = keras.ops.convert_to_numpy(model(pixels))
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_alexnet_weight_errors(tmp_path):
    with pytest.raises(ValueError, match="no downloadable weights"):
        backbones.AlexNet(weights="imagenet")
    bad = os.path.join(tmp_path, "weights.bin")
    open(bad, "wb").close()
    with pytest.raises(ValueError, match="Unknown AlexNet weights format"):
        backbones.AlexNet(weights=bad, input_shape=(64, 64, 3))
    partial = os.path.join(tmp_path, "partial.npz")
    np.savez(partial, **{"features.0.weight": np.zeros((64, 3, 11, 11))})
    with pytest.raises(ValueError, match="has no 'features.0.bias'"):
        backbones.AlexNet(weights=partial, input_shape=(64, 64, 3))
