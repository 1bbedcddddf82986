"""build_classifier."""

import keras
import numpy as np
import pytest

import kerasft
from kerasft import backbones

SMALL = (32, 32, 3)


def _backbone(**kwargs):
    return backbones.MobileNet(
        weights=None, input_shape=SMALL, alpha=0.25, **kwargs
    )


def test_linear_and_mlp_heads():
    model = kerasft.build_classifier(_backbone(), 4, dropout=0.3)
    assert model.output_shape == (None, 4)
    assert [x.name for x in kerasft.stages(model)[-1].layers][-2:] == [
        "head_dropout",
        "predictions",
    ]
    model = kerasft.build_classifier(
        _backbone(),
        3,
        head="mlp",
        hidden_units=16,
        activation=None,
        name="clf",
    )
    assert model.name == "clf"
    assert model.get_layer("head_hidden").units == 16
    x = np.zeros((2, *SMALL), dtype="float32")
    assert model.predict(x, verbose=0).shape == (2, 3)


def test_feature_map_backbone_gets_pooled():
    model = kerasft.build_classifier(_backbone(pooling=None), 2)
    assert model.get_layer("head_pool") is not None
    assert kerasft.stages(model)[-1].name == "head"


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"num_classes": 1}, ValueError, "Received: num_classes=1"),
        ({"num_classes": 3, "head": "deep"}, ValueError, "Received: head"),
        ({"num_classes": 3, "dropout": 1.0}, ValueError, "dropout=1.0"),
        (
            {"num_classes": 3, "hidden_units": 0},
            ValueError,
            "hidden_units=0",
        ),
        # True is an int in Python; as a width it would build 1 unit.
        (
            {"num_classes": 3, "head": "mlp", "hidden_units": True},
            TypeError,
            "hidden_units=True of type bool",
        ),
        ({"num_classes": 3.0}, TypeError, "num_classes=3.0 of type float"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        kerasft.build_classifier(_backbone(), **kwargs)


def test_backbone_must_be_a_built_model():
    with pytest.raises(TypeError, match="must be a keras.Model"):
        kerasft.build_classifier(keras.layers.Dense(3), 3)
    with pytest.raises(ValueError, match="must be a built model"):
        kerasft.build_classifier(keras.Sequential([keras.layers.Dense(3)]), 3)
