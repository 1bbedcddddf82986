"""Stage maps and the target resolver."""

import re

import keras
import pytest

import kerasft
from kerasft import backbones

SMALL = (32, 32, 3)


def _names(model):
    return [s.name for s in kerasft.stages(model)]


@pytest.mark.parametrize(
    "factory, kwargs, expected",
    [
        (
            backbones.VGG16,
            {},
            ["block1", "block2", "block3", "block4", "block5", "head"],
        ),
        (
            backbones.VGG19,
            {},
            ["block1", "block2", "block3", "block4", "block5", "head"],
        ),
        (
            backbones.ResNet50,
            {},
            ["conv1", "conv2", "conv3", "conv4", "conv5", "head"],
        ),
        (
            backbones.MobileNet,
            {"alpha": 0.25},
            ["stem", "block1", "block2", "block3", "block4", "block5", "head"],
        ),
        (
            backbones.MobileNetV2,
            {"alpha": 0.35},
            ["stem", "block1", "block2", "block3", "block4", "top", "head"],
        ),
        (
            backbones.EfficientNetB0,
            {},
            ["stem"] + [f"block{i}" for i in range(1, 8)] + ["top", "head"],
        ),
        # Xception and InceptionV3 need inputs of at least 71 and 75 pixels.
        (
            backbones.Xception,
            {"input_shape": (71, 71, 3)},
            [f"block{i}" for i in range(1, 15)] + ["head"],
        ),
        (
            backbones.InceptionV3,
            {"input_shape": (75, 75, 3)},
            ["stem"] + [f"mixed{i}" for i in range(11)] + ["head"],
        ),
        # ConvNeXt prefixes its layer names with the model's name.
        (
            backbones.ConvNeXtTiny,
            {"name": "cnx"},
            ["stem", "stage_0", "stage_1", "stage_2", "stage_3", "head"],
        ),
    ],
)
def test_known_stage_maps_on_classifier(factory, kwargs, expected):
    kwargs = {"input_shape": SMALL, **kwargs}
    backbone = factory(weights=None, **kwargs)
    model = kerasft.build_classifier(backbone, 3)
    assert _names(model) == expected
    # Every leaf layer belongs to exactly one stage.
    seen = [id(x) for s in kerasft.stages(model) for x in s.layers]
    assert len(seen) == len(set(seen))
    total = sum(s.count_params() for s in kerasft.stages(model))
    assert total == model.count_params()


@pytest.mark.parametrize("depth", ["ResNet101", "ResNet152"])
def test_deep_resnets_share_the_map(depth):
    app = getattr(keras.applications, depth)(
        weights=None, include_top=False, input_shape=SMALL
    )
    assert _names(app) == ["conv1", "conv2", "conv3", "conv4", "conv5"]


def test_efficientnet_b1_to_b7_share_the_map():
    app = keras.applications.EfficientNetB1(
        weights=None, include_top=False, input_shape=SMALL
    )
    assert _names(app)[0] == "stem" and _names(app)[-1] == "top"


def test_plain_application_with_top_has_head():
    app = keras.applications.VGG16(
        weights=None, include_top=True, input_shape=SMALL, classes=4
    )
    stages = kerasft.stages(app)
    assert stages[-1].name == "head"
    assert [x.name for x in stages[-1].layers] == [
        "flatten",
        "fc1",
        "fc2",
        "predictions",
    ]


def test_preprocessing_layer_joins_first_stage():
    backbone = backbones.VGG16(weights=None, input_shape=SMALL)
    first = kerasft.stages(backbone)[0]
    assert first.layers[0].name == "preprocessing"


def _generic():
    inputs = keras.Input((8,), name="x")
    x = keras.layers.Dense(6, name="dense_a")(inputs)
    x = keras.layers.Dense(5, name="dense_b")(x)
    x = keras.layers.Dropout(0.1, name="drop")(x)
    outputs = keras.layers.Dense(2, name="clf")(x)
    return keras.Model(inputs, outputs, name="generic")


def test_generic_fallback_one_stage_per_layer():
    assert _names(_generic()) == ["dense_a", "dense_b", "drop", "clf"]


def test_generic_sequential_and_nested_unknown_model():
    inner = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, name="d1")], name="inner"
    )
    outer = keras.Sequential(
        [keras.Input((4,)), inner, keras.layers.Dense(2, name="out")],
        name="outer",
    )
    stages = kerasft.stages(outer)
    assert [s.name for s in stages] == ["inner", "out"]
    assert [x.name for x in stages[0].layers] == ["d1"]


def test_layers_before_backbone_are_their_own_stages():
    backbone = backbones.VGG16(weights=None, input_shape=SMALL)
    inputs = keras.Input(SMALL)
    x = keras.layers.RandomFlip(name="augment")(inputs)
    x = backbone(x)
    outputs = keras.layers.Dense(2, name="clf")(x)
    model = keras.Model(inputs, outputs)
    assert _names(model)[0] == "augment"
    assert _names(model)[-1] == "head"


def test_two_backbones_get_prefixed_stage_names():
    a = backbones.VGG16(weights=None, input_shape=SMALL, name="vgg_a")
    b = backbones.VGG16(weights=None, input_shape=SMALL, name="vgg_b")
    inputs = keras.Input(SMALL)
    x = keras.layers.Concatenate(name="concat")([a(inputs), b(inputs)])
    outputs = keras.layers.Dense(2, name="clf")(x)
    model = keras.Model(inputs, outputs)
    names = _names(model)
    assert "vgg_a/block4" in names and "vgg_b/block1" in names
    assert names[-1] == "head"
    stage = kerasft.resolve_stages(model, "vgg_b/block4")[0]
    assert all(
        any(x is y for y in b.layers) or True for x in stage.layers
    ) and stage.layers[0].name.startswith("block4")


def test_resolver_targets():
    model = _generic()
    assert [s.name for s in kerasft.resolve_stages(model, "dense_b")] == [
        "dense_b"
    ]
    assert [s.name for s in kerasft.resolve_stages(model, -1)] == ["clf"]
    assert [s.name for s in kerasft.resolve_stages(model, 0)] == ["dense_a"]
    regex = [s.name for s in kerasft.resolve_stages(model, r"dense_.")]
    assert regex == ["dense_a", "dense_b"]
    compiled = kerasft.resolve_stages(model, re.compile("dense_[ab]"))
    assert len(compiled) == 2
    layer = model.get_layer("clf")
    assert kerasft.resolve_layers(model, layer) == [layer]
    assert kerasft.stage_index(model, ["dense_a", "drop"]) == 2


def test_layer_name_resolves_to_its_stage():
    backbone = backbones.VGG16(weights=None, input_shape=SMALL)
    model = kerasft.build_classifier(backbone, 3)
    [stage] = kerasft.resolve_stages(model, "block3_conv2")
    assert stage.name == "block3"
    layers = kerasft.resolve_layers(model, "block3_conv2")
    assert [x.name for x in layers] == ["block3_conv2"]
    # A nested model's name selects all its layers.
    assert len(kerasft.resolve_layers(model, "vgg16")) > 10


def test_unknown_name_lists_valid_names_and_closest_match():
    model = _generic()
    with pytest.raises(
        ValueError, match=r"Did you mean 'dense_b'\?.*Valid stage names"
    ):
        kerasft.resolve_stages(model, "dense_bb")
    with pytest.raises(ValueError, match=r"Received: target='nothing'"):
        kerasft.resolve_stages(model, "nothing")


def test_index_out_of_range():
    with pytest.raises(ValueError, match=r"out of range.*valid indices: -4..3"):
        kerasft.resolve_stages(_generic(), 4)
    with pytest.raises(ValueError, match="out of range"):
        kerasft.resolve_stages(_generic(), -5)


def test_layer_not_in_model():
    other = keras.layers.Dense(3, name="stranger")
    with pytest.raises(ValueError, match="'stranger' is not part of model"):
        kerasft.resolve_stages(_generic(), other)


def test_bad_target_types():
    with pytest.raises(TypeError, match="Received: target=True"):
        kerasft.resolve_stages(_generic(), True)
    with pytest.raises(TypeError, match="of type float"):
        kerasft.resolve_stages(_generic(), 1.5)
    with pytest.raises(ValueError, match="at least one target"):
        kerasft.resolve_stages(_generic(), [])


def test_unbuilt_model_and_non_model():
    model = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="is not built yet"):
        kerasft.stages(model)
    with pytest.raises(TypeError, match="must be a keras.Model"):
        kerasft.stages(keras.layers.Dense(2))


def test_stage_repr_and_counts():
    stage = kerasft.stages(_generic())[0]
    assert stage.count_params() == 8 * 6 + 6
    assert "dense_a" in repr(stage)


def test_backbone_cut_after_a_middle_stage_is_still_known():
    app = keras.applications.ResNet50(
        weights=None, include_top=False, input_shape=SMALL
    )
    cut = keras.Model(app.input, app.get_layer("conv3_block4_out").output)
    assert _names(cut) == ["conv1", "conv2", "conv3"]


def test_known_backbone_next_to_a_custom_branch():
    vgg = backbones.VGG16(weights=None, input_shape=SMALL)
    custom = keras.Sequential(
        [
            keras.Input(SMALL),
            keras.layers.Conv2D(2, 3, name="c"),
            keras.layers.GlobalAveragePooling2D(name="p"),
        ],
        name="custom",
    )
    inputs = keras.Input(SMALL)
    x = keras.layers.Concatenate(name="concat")([vgg(inputs), custom(inputs)])
    model = keras.Model(inputs, keras.layers.Dense(2, name="clf")(x))
    names = _names(model)
    assert names[0] == "vgg16/block1" and "custom" in names
    assert names[-1] == "head"
    head = kerasft.stages(model)[-1]
    assert [x.name for x in head.layers] == ["concat", "clf"]


# ---------------------------------------------------------------------------
# register_stage_map.


@pytest.fixture
def stage_maps(monkeypatch):
    """Registrations made in a test are undone after it."""
    from kerasft._src.stages import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def _encoder(name="tiny_encoder"):
    inputs = keras.Input((8,), name="x")
    x = keras.layers.Dense(6, name="enc1_dense")(inputs)
    x = keras.layers.Dropout(0.1)(x)
    x = keras.layers.Dense(5, name="enc2_dense")(x)
    x = keras.layers.Dense(4, name="enc2_proj")(x)
    outputs = keras.layers.Dense(2, name="clf")(x)
    return keras.Model(inputs, outputs, name=name)


def _encoder_stage(layer_name):
    match = re.match(r"(enc\d)_", layer_name)
    return match.group(1) if match else None


def test_register_stage_map_by_layer_name(stage_maps):
    model = _encoder()
    assert _names(model)[0] == "enc1_dense"  # generic split before
    kerasft.register_stage_map(
        "tiny_encoder",
        fingerprint=["enc1_dense", re.compile(r"enc\d_proj")],
        stage_of=_encoder_stage,
    )
    stages = kerasft.stages(model)
    assert [s.name for s in stages] == ["enc1", "enc2", "head"]
    # An unmatched layer joins the stage before it.
    assert [x.name for x in stages[0].layers][0] == "enc1_dense"
    assert len(stages[0].layers) == 2
    assert [x.name for x in stages[2].layers] == ["clf"]
    # The map applies to the model nested in a classifier too, and every
    # API resolves its stage names.
    inputs = keras.Input((8,))
    outer = keras.Model(
        inputs, keras.layers.Dense(3, name="out")(model(inputs)), name="o"
    )
    assert _names(outer) == ["enc1", "enc2", "head"]
    kerasft.freeze_until(outer, "enc2")
    assert not outer.get_layer("tiny_encoder").get_layer("enc1_dense").trainable


def test_register_stage_map_with_split_and_function_fingerprint(stage_maps):
    def is_encoder(model):
        return model.name.startswith("tiny_encoder")

    def split(model):
        layers = [x for x in model.layers if x.weights]
        return [("lower", layers[:2]), ("upper", layers[2:])]

    kerasft.register_stage_map("split", fingerprint=is_encoder, split=split)
    with pytest.raises(ValueError, match=r"in no stage \['dropout"):
        kerasft.stages(_encoder())

    def full_split(model):
        layers = model.layers[1:]
        return [("lower", layers[:2]), ("upper", layers[2:])]

    kerasft.register_stage_map(
        "split", fingerprint=is_encoder, split=full_split, override=True
    )
    stages = kerasft.stages(_encoder())
    assert [s.name for s in stages] == ["lower", "upper"]
    assert [len(s.layers) for s in stages] == [2, 3]
    assert _names(_encoder("other"))[0] == "enc1_dense"


def test_newer_stage_map_takes_precedence(stage_maps):
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Conv2D(2, 1, name="block1_conv1")(inputs)
    x = keras.layers.Conv2D(2, 1, name="block1_conv2")(x)
    x = keras.layers.MaxPooling2D(name="block1_pool")(x)
    model = keras.Model(inputs, x, name="vgg_like")
    assert _names(model) == ["block1"]
    kerasft.register_stage_map(
        "vgg_like", fingerprint=["block1_pool"], stage_of=lambda n: "features"
    )
    assert _names(model) == ["features"]


def test_register_stage_map_name_clash(stage_maps):
    with pytest.raises(ValueError, match="already registered.*override=True"):
        kerasft.register_stage_map(
            "vgg", fingerprint=["x"], stage_of=_encoder_stage
        )
    kerasft.register_stage_map(
        "vgg", fingerprint=["x"], stage_of=_encoder_stage, override=True
    )


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"name": 3}, TypeError, "Received: name=3"),
        ({"name": ""}, ValueError, "Received: name=''"),
        ({"fingerprint": "enc1_dense"}, TypeError, "list of layer names"),
        ({"fingerprint": []}, TypeError, r"Received: fingerprint=\[\]"),
        ({"fingerprint": [3]}, TypeError, r"Received: fingerprint=\[3\]"),
        ({"split": lambda m: []}, TypeError, "exactly one stage rule"),
        ({"stage_of": None}, TypeError, "exactly one stage rule"),
        ({"stage_of": "enc"}, TypeError, "Received: stage_of='enc'"),
        ({"override": "yes"}, TypeError, "Received: override='yes'"),
    ],
)
def test_register_stage_map_bad_arguments(stage_maps, kwargs, error, match):
    args = {
        "name": "bad",
        "fingerprint": ["enc1_dense"],
        "stage_of": _encoder_stage,
        **kwargs,
    }
    with pytest.raises(error, match=match):
        kerasft.register_stage_map(args.pop("name"), **args)


@pytest.mark.parametrize(
    "rules, error, match",
    [
        ({"fingerprint": lambda m: 1}, TypeError, "must return True or False"),
        ({"stage_of": lambda n: 3}, TypeError, "Received: 3 for layer"),
        (
            {
                "stage_of": {
                    "enc1_dense": "a",
                    "enc2_dense": "b",
                    "clf": "a",
                }.get
            },
            ValueError,
            r"several stages with one name: \['a'\]",
        ),
        ({"split": lambda m: [("a", ["x"])]}, TypeError, "pairs"),
        ({"split": lambda m: None}, TypeError, "Received: None"),
        (
            {"split": lambda m: [("a", [keras.layers.Dense(1, name="d")])]},
            ValueError,
            r"not in model 'tiny_encoder'.*\['d'\]",
        ),
    ],
)
def test_stage_map_rule_errors_name_the_map(stage_maps, rules, error, match):
    kwargs = {"fingerprint": ["enc1_dense"], **rules}
    if "split" not in kwargs and "stage_of" not in kwargs:
        kwargs["stage_of"] = _encoder_stage
    kerasft.register_stage_map("broken", **kwargs)
    with pytest.raises(error, match=match):
        kerasft.stages(_encoder())
