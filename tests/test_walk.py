"""The layer walker: nested models and sublayers held in attributes."""

import keras

from kerasft._src import walk


def _nested():
    inner_in = keras.Input((4,))
    inner = keras.Model(
        inner_in, keras.layers.Dense(3, name="inner_dense")(inner_in), name="m"
    )
    inputs = keras.Input((4,))
    x = inner(inputs)
    x = keras.layers.Bidirectional(keras.layers.LSTM(2), name="bi")(
        keras.layers.Reshape((3, 1), name="reshape")(x)
    )
    return keras.Model(inputs, keras.layers.Dense(1, name="out")(x), name="o")


def test_model_walks():
    model = _nested()
    assert [x.name for x in walk.children(model)] == [
        "m",
        "reshape",
        "bi",
        "out",
    ]
    assert [x.name for x in walk.leaf_layers(model)] == [
        "inner_dense",
        "reshape",
        "bi",
        "out",
    ]
    assert [x.name for x in walk.nested_layers(model)] == [
        "m",
        "inner_dense",
        "reshape",
        "bi",
        "out",
    ]
    assert [x.name for x in walk.containers(model)] == ["o", "m"]


def test_sublayers_follow_attributes_once():
    model = _nested()
    bi = model.get_layer("bi")
    found = walk.sublayers(bi)
    assert found[0] is bi
    assert bi.forward_layer in found and bi.backward_layer in found
    assert len({id(x) for x in found}) == len(found)
    assert any(x is bi for x in walk.sublayers(model))
