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


class _Blocks(keras.layers.Layer):
    """Holds its blocks in a list, as keras-hub's ViTEncoder does."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.blocks = [keras.layers.Dense(4, name=f"b{i}") for i in range(2)]
        self.norm = keras.layers.LayerNormalization(name="norm")

    def call(self, x):
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


def test_a_block_container_is_walked_like_a_model(monkeypatch):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, _Blocks(name="enc")(inputs), name="o")
    assert [x.name for x in walk.leaf_layers(model)] == ["enc"]
    monkeypatch.setattr(walk, "_BLOCK_CONTAINERS", set())
    walk.register_block_container("_Blocks")
    enc = model.get_layer("enc")
    assert walk.is_container(enc)
    assert [x.name for x in walk.children(enc)] == ["b0", "b1", "norm"]
    assert [x.name for x in walk.leaf_layers(model)] == ["b0", "b1", "norm"]
    assert [x.name for x in walk.nested_layers(model)] == [
        "enc",
        "b0",
        "b1",
        "norm",
    ]
    assert walk.containers(model) == [model, enc]
