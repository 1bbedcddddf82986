"""The table of `tests/test_bad_inputs.py`: bad calls of the public API.

Each `Case` calls one public function or class with one bad argument and
says which error it must raise and what its message must show. The calls
take the test module's `World`: `w.model` (a compiled classifier on a
tiny VGG-shaped backbone, stages `block1`..`block5` and `head`, frozen up
to `block4`), `w.backbone`, `w.aug_model`, `w.x`/`w.y` and `w.path(name)`,
a file of the folder `write_files` fills.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any
from typing import NamedTuple

import numpy as np

import kerasft
from kerasft import backbones
from kerasft import callbacks
from kerasft import data_selection
from kerasft import export
from kerasft import layers
from kerasft import optimizers
from kerasft import peft
from kerasft import plotting
from kerasft import regularizers
from kerasft import schedules
from kerasft import sequence
from kerasft import text_data

NAN = float("nan")
INF = float("inf")
HUGE = 10**30

# Namespaces whose callables the table must cover.
NAMESPACES = (
    "kerasft",
    "kerasft.augment",
    "kerasft.backbones",
    "kerasft.callbacks",
    "kerasft.data_selection",
    "kerasft.distributed",
    "kerasft.layers",
    "kerasft.optimizers",
    "kerasft.peft",
    "kerasft.plotting",
    "kerasft.regularizers",
    "kerasft.schedules",
    "kerasft.sequence",
    "kerasft.text_data",
)

_FAMILY = "family function: the same checks as `from_application`"

# Public namespaces with their own bad-input tests next to their code.
SKIPPED_NAMESPACES = {
    "kerasft.export": "tests/export (files, concurrency, kills)",
    "kerasft.cli": "tests/test_cli.py (exit codes and stderr)",
    "kerasft.finetune": "tests/test_finetune.py (run configuration)",
    "kerasft.assets": "tests/test_assets.py (downloads and hashes)",
}

# Public callables without a case here, and why.
SKIPPED = {
    # Built by `kerasft.stages(model)`, not by users.
    "kerasft.Stage": "built by kerasft.stages()",
    # Takes no argument.
    "kerasft.optimizers.StageLearningRateLogger": "no arguments",
    # Network or cache writers: their argument checks are covered through
    # the readers that share them (`minilm_dir`, `rotten_tomatoes_path`).
    "kerasft.backbones.provision_minilm": "downloads; see minilm_dir",
    "kerasft.text_data.provision_rotten_tomatoes": "downloads",
    # Returned by `kerasft.lr_find`, not built by users; its `plot` path
    # goes through the checks of `kerasft.plotting` (cases there).
    "kerasft.LRFindResult": "returned by kerasft.lr_find",
    "kerasft.augment.Mixer": "built by kerasft.augment.mix",
    # keras.applications families: thin wrappers of `from_application`,
    # which has the cases; MobileNet, VGG16 and ResNet50 have a few too.
    **{
        f"kerasft.backbones.{name}": _FAMILY
        for name in (
            "ConvNeXtBase ConvNeXtLarge ConvNeXtSmall ConvNeXtTiny "
            "DenseNet121 DenseNet169 DenseNet201 EfficientNetB0 "
            "EfficientNetB1 EfficientNetB2 EfficientNetB3 EfficientNetB4 "
            "EfficientNetB5 EfficientNetB6 EfficientNetB7 InceptionV3 "
            "MobileNetV2 ResNet101 ResNet152 VGG19 Xception"
        ).split()
    },
}


class Case(NamedTuple):
    """One bad call: `call(world)` must raise `error` naming `needs`."""

    id: str
    call: Callable[[Any], Any]
    error: type | tuple
    needs: tuple  # each item: a str, or a tuple of str (any one of them)


def _shown(value) -> tuple:
    """The ways a message may show `value` (repr or str)."""
    return (repr(value), str(value))


def _cases(label, arg, call, values):
    """Cases for one argument: `call(world, value)` for each bad value.

    `values` holds `(value, error)` pairs, or `(value, error, shown)`
    when the message shows a part of the value (the bad item of a list).
    """
    out = []
    for value, error, *shown in values:
        out.append(
            Case(
                f"{label}-{arg}={value!r}"[:90],
                lambda w, call=call, value=value: call(w, value),
                error,
                (arg, tuple(shown) or _shown(value)),
            )
        )
    return out


def _int_values(minimum, *, none_ok=False, maximum=None):
    values = [
        ("3", TypeError),
        (2.5, TypeError),
        (True, TypeError),
        (NAN, TypeError),
        (minimum - 1, ValueError),
        (-(10**6), ValueError),
    ]
    if not none_ok:
        values.append((None, TypeError))
    if maximum is not None:
        values += [(maximum + 1, ValueError), (HUGE, ValueError)]
    return values


def _number_values(*, low=None, high=None, none_ok=False, below=None):
    """Bad values for a finite number; `below`: a value under the minimum."""
    values = [
        ("0.1", TypeError),
        (True, TypeError),
        (NAN, ValueError),
        (INF, ValueError),
        (-INF, ValueError),
    ]
    if not none_ok:
        values.append((None, TypeError))
    if below is not None:
        values.append((below, ValueError))
    if low is not None:
        values.append((-1e30, ValueError))
    if high is not None:
        values.append((1e30, ValueError))
    return values


PATH_TYPE_VALUES = [(42, TypeError), (b"x", TypeError)]


# ---------------------------------------------------------------------------
# The files kerasft reads, good and broken.


def write_files(root, model):
    """Good and broken files of every format kerasft reads."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    files = {}

    def write(name, data):
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        files[name] = path

    good_npz = os.path.join(root, "good.npz")
    np.savez(good_npz, a=np.zeros(3))
    with open(good_npz, "rb") as f:
        npz = f.read()
    files["good.npz"] = good_npz
    good_h5 = os.path.join(root, "good.weights.h5")
    model.save_weights(good_h5)
    with open(good_h5, "rb") as f:
        h5 = f.read()
    files["good.weights.h5"] = good_h5
    for ext, good in ((".npz", npz), (".weights.h5", h5)):
        write(f"empty{ext}", b"")
        write(f"noise{ext}", noise)
        write(f"truncated{ext}", good[: len(good) // 2])
    write("empty.safetensors", b"")
    write("noise.safetensors", noise)
    write("truncated.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    write("text.npz", b"not a zip file\n")
    write("weights.bin", noise)
    # Hub preset folders: a Hugging Face BERT layout, one broken file each.
    config = (
        b'{"architectures": ["BertModel"], "model_type": "bert", '
        b'"hidden_size": 8, "num_attention_heads": 2, '
        b'"num_hidden_layers": 1, "intermediate_size": 16, '
        b'"vocab_size": 16, "max_position_embeddings": 16, '
        b'"type_vocab_size": 2, "hidden_dropout_prob": 0.0}'
    )
    for folder, cfg, weights in (
        ("hub_bad_config", config[: len(config) // 2], noise),
        ("hub_empty_config", b"", noise),
        ("hub_noise_weights", config, noise),
        ("hub_empty_weights", config, b""),
        ("hub_truncated_weights", config, b"\xff\x00\x00\x00\x00\x00\x00"),
    ):
        write(f"{folder}/config.json", cfg)
        write(f"{folder}/model.safetensors", weights)
        write(f"{folder}/vocab.txt", b"[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
    os.makedirs(os.path.join(root, "empty_dir"))
    return files


# ---------------------------------------------------------------------------
# The cases, by namespace.


def _model_cases(label, call):
    """`model` that is not a keras.Model."""
    return _cases(
        label,
        "model",
        call,
        [(42, TypeError), ("model", TypeError), (None, TypeError)],
    )


def _target_cases(label, call):
    """An unknown, empty or wrongly typed stage/layer target."""
    return _cases(
        label,
        "target",
        call,
        [
            ("no_such_stage", ValueError),
            ("blok4", ValueError),
            ("", ValueError),
            (2.5, TypeError),
            (999, ValueError),
            (-999, ValueError),
            ([], ValueError),
            (["block1", "nope"], ValueError, "'nope'"),
        ],
    )


def _top_level_cases():
    cases = []
    for label, fn in (
        ("freeze", kerasft.freeze),
        ("unfreeze", kerasft.unfreeze),
        ("freeze_until", kerasft.freeze_until),
        ("resolve_layers", kerasft.resolve_layers),
        ("resolve_stages", kerasft.resolve_stages),
        ("stage_index", kerasft.stage_index),
    ):
        cases += _target_cases(label, lambda w, v, fn=fn: fn(w.model, v))
        cases += _model_cases(label, lambda w, v, fn=fn: fn(v, "block1"))
    for label, fn in (
        ("freeze", kerasft.freeze),
        ("unfreeze", kerasft.unfreeze),
        ("freeze_until", kerasft.freeze_until),
    ):
        cases += _cases(
            label,
            "bn",
            lambda w, v, fn=fn: fn(w.model, "block1", bn=v),
            [("fozen", ValueError), ("", ValueError), (None, ValueError)],
        )
    cases += _cases(
        "freeze_until",
        "inclusive",
        lambda w, v: kerasft.freeze_until(w.model, "block1", inclusive=v),
        [("yes", TypeError), (1, TypeError), (None, TypeError)],
    )
    cases += _model_cases("stages", lambda w, v: kerasft.stages(v))
    cases += _model_cases("summary", lambda w, v: kerasft.summary(v))
    cases += _cases(
        "summary",
        "print_fn",
        lambda w, v: kerasft.summary(w.model, print_fn=v),
        [(42, TypeError), ("print", TypeError), (True, TypeError)],
    )
    cases += _classifier_cases() + _fusion_cases() + _cache_cases()
    cases += _cases(
        "register_stage_map",
        "name",
        lambda w, v: kerasft.register_stage_map(v, fingerprint=["x"]),
        [(42, TypeError), ("", ValueError), (None, TypeError)],
    )
    cases += _cases(
        "register_stage_map",
        "fingerprint",
        lambda w, v: kerasft.register_stage_map("t", fingerprint=v),
        [(42, TypeError), ([], TypeError), (None, TypeError)],
    )
    cases += _cases(
        "register_stage_map",
        "stage_of",
        lambda w, v: kerasft.register_stage_map(
            "t", fingerprint=["x"], stage_of=v
        ),
        [(42, TypeError), ("name", TypeError)],
    )
    cases += _cases(
        "register_stage_map",
        "override",
        lambda w, v: kerasft.register_stage_map(
            "t", fingerprint=["x"], stage_of=str, override=v
        ),
        [("yes", TypeError), (1, TypeError)],
    )
    return cases


def _classifier_cases():
    def build(w, **kwargs):
        args = dict(num_classes=3)
        args.update(kwargs)
        return kerasft.build_classifier(w.backbone, **args)

    cases = _cases(
        "build_classifier",
        "backbone",
        lambda w, v: kerasft.build_classifier(v, 3),
        [(42, TypeError), (None, TypeError), ("mobilenet", TypeError)],
    )
    cases += _cases(
        "build_classifier",
        "num_classes",
        lambda w, v: build(w, num_classes=v),
        _int_values(2),
    )
    cases += _cases(
        "build_classifier",
        "head",
        lambda w, v: build(w, head=v),
        [("mpl", ValueError), ("", ValueError), (42, ValueError)],
    )
    cases += _cases(
        "build_classifier",
        "dropout",
        lambda w, v: build(w, dropout=v),
        _number_values(low=0, high=1, below=-0.1) + [(1.0, ValueError)],
    )
    cases += _cases(
        "build_classifier",
        "hidden_units",
        lambda w, v: build(w, head="mlp", hidden_units=v),
        _int_values(1),
    )
    return cases


def _fusion_cases():
    def build(w, **kwargs):
        args = dict(fusion="concat", num_classes=3, taps=["block3", "block4"])
        args.update(kwargs)
        return kerasft.build_fusion_model([w.backbone], **args)

    cases = _cases(
        "build_fusion_model",
        "backbones",
        lambda w, v: kerasft.build_fusion_model(
            v, fusion="concat", num_classes=3
        ),
        [(42, TypeError), ([], TypeError), ([42], TypeError, "42")],
    )
    cases += _cases(
        "build_fusion_model",
        "units",
        lambda w, v: build(w, fusion="gated", units=v),
        [(0, ValueError), (2.5, TypeError), ("8", TypeError)],
    )
    cases += _cases(
        "build_fusion_model",
        "fusion",
        lambda w, v: build(w, fusion=v),
        [("concatenate", ValueError), ("", ValueError), (42, TypeError)],
    )
    cases += _cases(
        "build_fusion_model",
        "num_classes",
        lambda w, v: build(w, num_classes=v),
        _int_values(2),
    )
    cases += _cases(
        "build_fusion_model",
        "pooling",
        lambda w, v: build(w, pooling=v),
        [("mean", ValueError), (42, ValueError)],
    )
    cases += _cases(
        "build_fusion_model",
        "dropout",
        lambda w, v: build(w, dropout=v),
        _number_values(low=0, high=1, below=-0.5),
    )
    cases += _cases(
        "build_fusion_model",
        "taps",
        lambda w, v: build(w, taps=v),
        [("block4", TypeError), (["block4"], ValueError), (42, TypeError)],
    )
    cases += _model_cases(
        "fusion_gates", lambda w, v: kerasft.fusion_gates(v, w.x)
    )
    cases.append(
        Case(
            "fusion_gates-model-without-fusion",
            lambda w: kerasft.fusion_gates(w.model, w.x),
            ValueError,
            ("FeatureFusion", "world"),
        )
    )
    return cases


def _cache_cases():
    def fit(w, **kwargs):
        return kerasft.cached_fit(w.model, w.x, w.y, verbose=0, **kwargs)

    cases = _cases(
        "cached_fit",
        "batch_size",
        lambda w, v: fit(w, batch_size=v),
        _int_values(1, none_ok=True),
    )
    cases += _cases(
        "cached_fit",
        "epochs",
        lambda w, v: fit(w, epochs=v),
        [("3", TypeError), (2.5, TypeError), (-1, ValueError)],
    )
    cases += _cases(
        "cached_fit",
        "memory_budget",
        lambda w, v: fit(w, memory_budget=v),
        [("1GB", TypeError), (-1, ValueError), (2.5, TypeError)],
    )
    cases += _cases(
        "cached_fit",
        "callbacks",
        lambda w, v: fit(w, callbacks=v),
        [(42, TypeError), ([42], TypeError, "=42"), ("cb", TypeError)],
    )
    cases += _cases(
        "cached_fit",
        "cache",
        lambda w, v: fit(w, cache=v),
        [(42, TypeError), ("cache", TypeError)],
    )
    cases += _cases(
        "cached_fit",
        "cache_dir",
        lambda w, v: fit(w, cache_dir=v),
        [(42, TypeError)],
    )
    cases += _cases(
        "cached_fit",
        "x",
        lambda w, v: kerasft.cached_fit(w.model, v, w.y, verbose=0),
        [(None, ValueError)],
    )
    cases += _model_cases(
        "cached_fit", lambda w, v: kerasft.cached_fit(v, w.x, w.y)
    )
    cases.append(
        Case(
            "cached_fit-augmentation-below-the-frozen-part",
            lambda w: kerasft.cached_fit(
                w.aug_model, w.x[:, :8, :8], w.y % 2, verbose=0
            ),
            ValueError,
            ("augmentation", "Random"),
        )
    )
    cases += _model_cases("FeatureCache", lambda w, v: kerasft.FeatureCache(v))
    cases += _cases(
        "FeatureCache",
        "memory_budget",
        lambda w, v: kerasft.FeatureCache(w.model, memory_budget=v),
        [(-1, ValueError), ("1", TypeError), (NAN, TypeError)],
    )
    cases += _cases(
        "FeatureCache",
        "cache_dir",
        lambda w, v: kerasft.FeatureCache(w.model, cache_dir=v),
        PATH_TYPE_VALUES,
    )
    return cases


def _augment_cases():
    aug = kerasft.augment.augmentation
    cases = _cases(
        "augmentation",
        "kind",
        lambda w, v: aug(v),
        [("heavy", ValueError), ("", ValueError), (None, ValueError)],
    )
    cases += _cases(
        "augmentation",
        "flip",
        lambda w, v: aug("light", flip=v),
        [("diagonal", ValueError), ("", ValueError), (True, ValueError)],
    )
    cases += _cases(
        "augmentation",
        "value_range",
        lambda w, v: aug("light", value_range=v),
        [
            ((255, 0), ValueError),
            ((0, NAN), ValueError),
            ((0,), ValueError),
            ("0-255", ValueError),
        ],
    )
    cases += _cases(
        "augmentation",
        "seed",
        lambda w, v: aug("light", seed=v),
        [("1", TypeError), (1.5, TypeError), (True, TypeError)],
    )
    cases += _cases(
        "augmentation",
        "name",
        lambda w, v: aug("light", name=v),
        [(42, TypeError), ("", TypeError)],
    )
    cases += _cases(
        "augmentation",
        "erasing",
        lambda w, v: aug("light", erasing=v),
        [
            (-0.1, ValueError),
            (1.5, ValueError),
            (NAN, ValueError),
            ("0.25", TypeError),
            (True, TypeError),
            (None, TypeError),
        ],
    )
    cases += _cases(
        "Augmentation",
        "layers",
        lambda w, v: kerasft.augment.Augmentation(v),
        [(42, TypeError), ([42], TypeError, "=42")],
    )
    return cases


def _mixing_cases():
    mix = kerasft.augment.mix
    cases = []
    for arg, values in (
        ("kind", [("blend", ValueError), ("", ValueError), (None, ValueError)]),
        ("num_classes", _int_values(2)),
        ("alpha", [(0, ValueError), (-1.0, ValueError), (NAN, ValueError)]),
        ("alpha", [(INF, ValueError), ("0.2", TypeError), (True, TypeError)]),
        ("probability", [(-0.1, ValueError), (1.5, ValueError)]),
        ("probability", [(NAN, ValueError), ("1", TypeError)]),
        ("seed", [("1", TypeError), (1.5, TypeError), (-1, ValueError)]),
    ):
        cases += _cases(
            "mix",
            arg,
            lambda w, v, arg=arg: mix(**{"num_classes": 3, arg: v}),
            values,
        )
    cases += _cases(
        "mix",
        "alpha",
        lambda w, v: mix("cutmix", num_classes=3, alpha=v),
        [(2.5, ValueError)],
    )
    off = kerasft.augment.MixOff
    cases += _cases(
        "MixOff",
        "mixer",
        lambda w, v: off(v, 1),
        [(42, TypeError), ("mixup", TypeError), (None, TypeError)],
    )
    cases += _cases(
        "MixOff",
        "off_epoch",
        lambda w, v: off(mix(num_classes=3), v),
        _int_values(0),
    )
    cases += _cases(
        "MixOff",
        "verbose",
        lambda w, v: off(mix(num_classes=3), 1, verbose=v),
        [(2, ValueError), ("1", TypeError), (True, TypeError)],
    )
    return cases


def _backbone_cases():
    def alexnet(**kwargs):
        return backbones.AlexNet(**kwargs)

    cases = _cases(
        "AlexNet",
        "weights",
        lambda w, v: alexnet(weights=v),
        [("imagenet", ValueError), ("missing.npz", ValueError)],
    )
    # Refused before the model is built (the readers have their cases in
    # `_alexnet_file_cases`).
    cases.append(
        Case(
            "AlexNet-weights-unknown-format",
            lambda w: alexnet(weights=w.path("weights.bin")),
            ValueError,
            ("Unknown AlexNet weights format", "weights.bin"),
        )
    )
    cases += _cases(
        "AlexNet",
        "include_top",
        lambda w, v: alexnet(include_top=v),
        [("yes", TypeError), (1, TypeError)],
    )
    cases += _cases(
        "AlexNet",
        "classes",
        lambda w, v: alexnet(include_top=True, classes=v),
        _int_values(1),
    )
    cases += _cases(
        "AlexNet",
        "dropout",
        lambda w, v: alexnet(dropout=v),
        _number_values(low=0, high=1, below=-0.5),
    )
    cases += _cases(
        "AlexNet",
        "input_shape",
        lambda w, v: alexnet(input_shape=v),
        [
            ((224, 224), ValueError),
            (224, TypeError),
            ("224", TypeError),
            ((-1, 224, 3), ValueError),
        ],
    )
    cases += _cases(
        "ImagePreprocessing",
        "mode",
        lambda w, v: backbones.ImagePreprocessing(v),
        [("caffee", ValueError), ("", ValueError), (42, ValueError)],
    )
    for label, fn in (
        ("from_application", backbones.from_application),
        ("MobileNet", None),
        ("VGG16", None),
        ("ResNet50", None),
    ):
        if fn is None:
            fn = getattr(backbones, label)
        else:
            fn = _partial(fn, "MobileNet")
        cases += _application_cases(label, fn)
    cases += _cases(
        "from_application",
        "application",
        lambda w, v: backbones.from_application(v, weights=None),
        [("MobileNetV9", ValueError), ("", ValueError), (42, TypeError)],
    )
    cases += _cases(
        "exact_gelu_backbone",
        "backbone",
        lambda w, v: backbones.exact_gelu_backbone(v),
        [(42, TypeError), ("bert", TypeError)],
    )
    cases.append(
        Case(
            "use_exact_gelu-no-transformer",
            lambda w: backbones.use_exact_gelu(w.model),
            ValueError,
            ("feedforward_intermediate_dense", "world"),
        )
    )
    cases += _cases(
        "use_exact_gelu",
        "model",
        lambda w, v: backbones.use_exact_gelu(v),
        [(42, TypeError)],
    )
    for label, fn in (
        ("minilm_dir", backbones.minilm_dir),
        ("is_minilm_provisioned", backbones.is_minilm_provisioned),
    ):
        cases += _cases(
            label, "cache_dir", lambda w, v, fn=fn: fn(v), PATH_TYPE_VALUES
        )
    cases += _hub_cases() + _alexnet_file_cases()
    return cases


def _partial(fn, first):
    return lambda **kwargs: fn(first, **kwargs)


def _application_cases(label, fn):
    cases = _cases(
        label,
        "weights",
        lambda w, v: fn(weights=v),
        [(42, TypeError), ("no_such_file.h5", ValueError)],
    )
    cases += _cases(
        label,
        "pooling",
        lambda w, v: fn(weights=None, pooling=v),
        [("mean", ValueError), (42, ValueError)],
    )
    cases += _cases(
        label,
        "input_shape",
        lambda w, v: fn(weights=None, input_shape=v),
        [
            ((32, 32), ValueError),
            (32, TypeError),
            ((32, 0, 3), ValueError),
            ((32, 32, 3.5), ValueError),
        ],
    )
    return cases


def _hub_cases():
    loaders = (
        ("load_hub_backbone", backbones.load_hub_backbone),
        ("load_hub_tokenizer", backbones.load_hub_tokenizer),
        (
            "load_hub_text_classifier",
            lambda p, **k: backbones.load_hub_text_classifier(p, 2, **k),
        ),
    )
    cases = []
    for label, fn in loaders:
        cases += _cases(
            label,
            "preset_or_dir",
            lambda w, v, fn=fn: fn(v),
            [
                (42, TypeError),
                (None, TypeError),
                ("./no_such_folder", ValueError),
                ("bert_tiny_en_uncasd", ValueError),
            ],
        )
    for label, fn in loaders[:1] + loaders[2:]:
        cases += _cases(
            label,
            "exact_gelu",
            lambda w, v, fn=fn: fn("./x", exact_gelu=v),
            [("yes", TypeError), (1, TypeError)],
        )
    for label, fn in loaders[1:]:
        cases += _cases(
            label,
            "strip_accents",
            lambda w, v, fn=fn: fn("./x", strip_accents=v),
            [("yes", TypeError), (None, TypeError)],
        )
    cases += _cases(
        "load_hub_text_classifier",
        "num_classes",
        lambda w, v: backbones.load_hub_text_classifier("./x", v),
        [
            (0, ValueError),
            (-1, ValueError),
            (2.5, TypeError),
            (True, TypeError),
        ],
    )
    cases += _cases(
        "load_hub_text_classifier",
        "sequence_length",
        lambda w, v: backbones.load_hub_text_classifier(
            "./x", 2, sequence_length=v
        ),
        [(0, ValueError), (-1, ValueError), ("8", TypeError)],
    )
    for folder, bad in (
        ("hub_bad_config", "config.json"),
        ("hub_empty_config", "config.json"),
        ("hub_noise_weights", "model.safetensors"),
        ("hub_empty_weights", "model.safetensors"),
        ("hub_truncated_weights", "model.safetensors"),
    ):
        for label, fn in loaders[:1] + loaders[2:]:
            cases.append(
                Case(
                    f"{label}-{folder}",
                    lambda w, fn=fn, folder=folder: fn(w.path(folder)),
                    ValueError,
                    (os.path.join(folder, bad),),
                )
            )
    cases.append(
        Case(
            "load_hub_tokenizer-hub_bad_config",
            lambda w: backbones.load_hub_tokenizer(w.path("hub_bad_config")),
            ValueError,
            (os.path.join("hub_bad_config", "config.json"),),
        )
    )
    return cases


def _file_case(label, call, name, error=ValueError):
    return Case(
        f"{label}-{name}",
        lambda w: call(w, w.path(name)),
        error,
        (name,),
    )


def _alexnet_file_cases():
    def load(w, path):
        return backbones.load_alexnet_weights(w.model, path)

    cases = [
        _file_case("load_alexnet_weights", load, name)
        for name in (
            "empty.npz",
            "noise.npz",
            "truncated.npz",
            "text.npz",
            "empty.weights.h5",
            "noise.weights.h5",
            "truncated.weights.h5",
            "empty.safetensors",
            "noise.safetensors",
            "truncated.safetensors",
            "good.npz",  # a readable file that is not a state dict
            "empty_dir",
        )
    ]
    cases += [
        _file_case("load_alexnet_weights", load, name, FileNotFoundError)
        for name in ("missing.npz", "missing.weights.h5", "missing.safetensors")
    ]
    cases += _cases(
        "load_alexnet_weights",
        "path",
        lambda w, v: load(w, v),
        PATH_TYPE_VALUES + [("", ValueError), ("weights.pt", ValueError)],
    )
    cases += _model_cases(
        "load_alexnet_weights",
        lambda w, v: backbones.load_alexnet_weights(v, w.path("good.npz")),
    )
    return cases


def _callback_cases():
    cases = _target_cases(
        "FreezeUntil", lambda w, v: _on(callbacks.FreezeUntil(v), w)
    )
    cases += _cases(
        "FreezeUntil",
        "inclusive",
        lambda w, v: callbacks.FreezeUntil("block1", inclusive=v),
        [("yes", TypeError), (None, TypeError)],
    )
    for label, make in (
        ("FreezeUntil", lambda **k: callbacks.FreezeUntil("block1", **k)),
        ("UnfreezeSchedule", lambda **k: callbacks.UnfreezeSchedule({}, **k)),
    ):
        cases += _cases(
            label,
            "bn",
            lambda w, v, make=make: make(bn=v),
            [("fozen", ValueError), (None, ValueError)],
        )
        cases += _cases(
            label,
            "verbose",
            lambda w, v, make=make: make(verbose=v),
            # True and False are accepted as 1 and 0.
            [x for x in _int_values(0, maximum=1) if x[0] is not True],
        )
    cases += _cases(
        "UnfreezeSchedule",
        "schedule",
        lambda w, v: callbacks.UnfreezeSchedule(v),
        [
            (42, TypeError),
            ("block1", TypeError),
            ({-1: "block1"}, ValueError),
            ({"1": "block1"}, TypeError),
            ({2.5: "block1"}, TypeError),
        ],
    )
    cases += _cases(
        "UnfreezeSchedule",
        "unit",
        lambda w, v: callbacks.UnfreezeSchedule({1: "block1"}, unit=v),
        [("epochs", ValueError), ("", ValueError), (1, ValueError)],
    )
    cases += _cases(
        "only",
        "target",
        lambda w, v: callbacks.only(v),
        [(None, TypeError)],
    )
    return cases


def _on(callback, world):
    """Runs a callback's stage resolution against the world's model."""
    callback.set_model(world.model)
    callback.on_train_begin()


def _data_selection_cases():
    def psl(w, **kwargs):
        return data_selection.per_sample_loss(w.model, w.x, w.y, **kwargs)

    def sbl(w, **kwargs):
        return data_selection.select_by_loss(w.model, w.x, w.y, **kwargs)

    cases = _model_cases(
        "per_sample_loss",
        lambda w, v: data_selection.per_sample_loss(v, w.x, w.y),
    )
    cases += _cases(
        "per_sample_loss",
        "batch_size",
        lambda w, v: psl(w, batch_size=v),
        _int_values(1),
    )
    cases += _cases(
        "per_sample_loss",
        "loss",
        lambda w, v: psl(w, loss=v),
        [("no_such_loss", ValueError), (42, TypeError)],
    )
    cases += _cases(
        "select_by_loss",
        "drop_fraction",
        lambda w, v: sbl(w, drop_fraction=v),
        _number_values(low=0, high=1, below=-0.1) + [(1.0, ValueError)],
    )
    cases += _cases(
        "select_by_loss",
        "mode",
        lambda w, v: sbl(w, mode=v),
        [("dorp", ValueError), ("", ValueError), (None, ValueError)],
    )
    cases += _cases(
        "select_by_loss",
        "down_weight",
        lambda w, v: sbl(w, mode="weight", down_weight=v),
        _number_values(low=0, high=1, below=-0.5),
    )
    cases += _cases(
        "select_by_loss",
        "per_class",
        lambda w, v: sbl(w, per_class=v),
        [("yes", TypeError), (1, TypeError)],
    )
    cases += _cases(
        "select_by_loss",
        "batch_size",
        lambda w, v: sbl(w, batch_size=v),
        [(0, ValueError), (2.5, TypeError)],
    )
    cases += _cases(
        "select_by_loss",
        "y",
        lambda w, v: data_selection.select_by_loss(w.model, w.x, v),
        [(np.zeros(3), ValueError, "3 targets")],
    )
    return cases


def _layer_cases():
    ff = layers.FeatureFusion
    cases = _cases(
        "FeatureFusion",
        "mode",
        lambda w, v: ff(v),
        [("sum", ValueError), ("", ValueError), (42, ValueError)],
    )
    cases += _cases(
        "FeatureFusion",
        "units",
        lambda w, v: ff("gated", units=v),
        [(0, ValueError), (-3, ValueError), (2.5, TypeError), ("8", TypeError)],
    )
    cases += _cases(
        "FeatureFusion",
        "num_heads",
        lambda w, v: ff("attention", units=8, num_heads=v),
        [(0, ValueError), (2.5, TypeError)],
    )
    cases += _cases(
        "FeatureFusion",
        "return_gates",
        lambda w, v: ff("gated", return_gates=v),
        [("yes", TypeError), (1, TypeError)],
    )
    cases += _cases(
        "FeatureFusion",
        "gate_activation",
        lambda w, v: ff("gated", gate_activation=v),
        [("softmaxx", ValueError), (42, ValueError)],
    )
    return cases


def _optimizer_cases():
    def disc(w, factors, optimizer="adam"):
        return optimizers.discriminative(optimizer, w.model, factors)

    cases = _cases(
        "discriminative",
        "factors",
        lambda w, v: disc(w, v),
        [
            (42, TypeError),
            ({"no_such_stage": 0.1}, ValueError, "'no_such_stage'"),
            ({"block5": NAN}, ValueError, "=nan"),
            ({"block5": -1.0}, ValueError, "=-1.0"),
            ({"block5": 0.0}, ValueError, "=0.0"),
            ({"block5": INF}, ValueError, "=inf"),
            ({"block5": "0.1"}, TypeError, "='0.1'"),
            ({"block5": True}, TypeError, "=True"),
        ],
    )
    cases += _cases(
        "discriminative",
        "optimizer",
        lambda w, v: disc(w, {"head": 1.0}, v),
        [(42, TypeError), ("adamm", ValueError)],
    )
    cases += _model_cases(
        "discriminative",
        lambda w, v: optimizers.discriminative("adam", v, {"head": 1.0}),
    )
    cases += _cases(
        "DiscriminativeOptimizer",
        "optimizer",
        lambda w, v: optimizers.DiscriminativeOptimizer(v, []),
        [(42, TypeError), ("adam", TypeError)],
    )
    cases += _cases(
        "layerwise_decay",
        "decay",
        lambda w, v: optimizers.layerwise_decay(w.model, v),
        _number_values(low=0, high=1, below=0.0),
    )
    cases += _model_cases(
        "layerwise_decay", lambda w, v: optimizers.layerwise_decay(v)
    )
    cases += _cases(
        "lr_range",
        "low",
        lambda w, v: optimizers.lr_range(w.model, v, 1.0),
        _number_values(low=0, below=0.0),
    )
    cases += _cases(
        "lr_range",
        "high",
        lambda w, v: optimizers.lr_range(w.model, 0.1, v),
        _number_values(low=0, below=0.0),
    )
    cases += _model_cases(
        "lr_range", lambda w, v: optimizers.lr_range(v, 0.1, 1.0)
    )
    cases += _cases(
        "check_rebuildable",
        "optimizer",
        lambda w, v: optimizers.check_rebuildable(v),
        [(42, TypeError), ("adam", TypeError)],
    )
    cases += _model_cases(
        "rebuild_optimizer", lambda w, v: optimizers.rebuild_optimizer(v)
    )
    cases += _model_cases("trainable_change", _enter_trainable_change)
    return cases


def _enter_trainable_change(world, value):
    with optimizers.trainable_change(value):
        pass


def _peft_cases():
    cases = _cases(
        "enable_lora",
        "rank",
        lambda w, v: peft.enable_lora(w.model, v),
        _int_values(1),
    )
    cases += _cases(
        "enable_lora",
        "alpha",
        lambda w, v: peft.enable_lora(w.model, 2, alpha=v),
        _number_values(low=0, none_ok=True, below=0.0),
    )
    cases += _target_cases(
        "enable_lora", lambda w, v: peft.enable_lora(w.model, 2, target=v)
    )
    for label, fn in (
        ("enable_lora", lambda m, **k: peft.enable_lora(m, 2, **k)),
        ("bitfit", peft.bitfit),
    ):
        cases += _cases(
            label,
            "head",
            lambda w, v, fn=fn: fn(w.model, head=v),
            [("hed", ValueError), (2.5, TypeError)],
        )
        cases += _model_cases(label, lambda w, v, fn=fn: fn(v))
    cases += _model_cases("lora_layers", lambda w, v: peft.lora_layers(v))
    cases += _cases(
        "save_adapter_weights",
        "filepath",
        lambda w, v: peft.save_adapter_weights(w.model, v),
        PATH_TYPE_VALUES + [("", ValueError), ("adapters.h5", ValueError)],
    )
    cases.append(
        Case(
            "save_adapter_weights-missing-folder",
            lambda w: peft.save_adapter_weights(
                w.model, w.path("no_such_dir/adapters.npz")
            ),
            FileNotFoundError,
            ("no_such_dir",),
        )
    )

    def load(w, path):
        return peft.load_adapter_weights(w.model, path)

    cases += _cases(
        "load_adapter_weights",
        "filepath",
        lambda w, v: load(w, v),
        PATH_TYPE_VALUES + [("", ValueError), ("adapters.h5", ValueError)],
    )
    cases += [
        _file_case("load_adapter_weights", load, name)
        for name in ("empty.npz", "noise.npz", "truncated.npz", "text.npz")
    ]
    cases.append(
        _file_case(
            "load_adapter_weights", load, "missing.npz", FileNotFoundError
        )
    )
    cases.append(
        Case(
            "load_adapter_weights-foreign-npz",
            lambda w: load(w, w.path("good.npz")),
            ValueError,
            ("good.npz", "'a'"),
        )
    )
    cases += _model_cases(
        "save_adapter_weights",
        lambda w, v: peft.save_adapter_weights(v, w.path("a.npz")),
    )
    return cases


def _adapter_cases():
    """Named adapters; `w.model` has none, so every call must refuse."""
    names = [(42, TypeError), (None, TypeError), ("", ValueError)]
    cases = _cases(
        "add_adapter",
        "name",
        lambda w, v: peft.add_adapter(w.model, v, 2),
        names,
    )
    cases += _cases(
        "add_adapter",
        "rank",
        lambda w, v: peft.add_adapter(w.model, "a", v),
        _int_values(1),
    )
    cases += _cases(
        "add_adapter",
        "alpha",
        lambda w, v: peft.add_adapter(w.model, "a", 2, alpha=v),
        _number_values(low=0, none_ok=True, below=0.0),
    )
    cases += _target_cases(
        "add_adapter", lambda w, v: peft.add_adapter(w.model, "a", 2, target=v)
    )
    cases += _cases(
        "add_adapter",
        "head",
        lambda w, v: peft.add_adapter(w.model, "a", 2, head=v),
        [("hed", ValueError), (2.5, TypeError)],
    )
    for label, fn in (
        ("set_active_adapter", peft.set_active_adapter),
        ("delete_adapter", peft.delete_adapter),
    ):
        cases += _cases(
            label,
            "name",
            lambda w, v, fn=fn: fn(w.model, v),
            names + [("nope", ValueError)],
        )
        cases += _model_cases(label, lambda w, v, fn=fn: fn(v, "a"))
    cases += _model_cases(
        "add_adapter", lambda w, v: peft.add_adapter(v, "a", 2)
    )
    for label, fn in (
        ("list_adapters", peft.list_adapters),
        ("active_adapter", peft.active_adapter),
        ("merge_adapters", peft.merge_adapters),
        ("unload_adapters", peft.unload_adapters),
    ):
        cases += _model_cases(label, lambda w, v, fn=fn: fn(v))
    for label, fn in (
        ("merge_adapters", peft.merge_adapters),
        ("unload_adapters", peft.unload_adapters),
    ):
        cases.append(
            Case(
                f"{label}-no-lora",
                lambda w, fn=fn: fn(w.model),
                ValueError,
                ("model", "'world'"),
            )
        )
    return cases


def _plotting_cases():
    history = {"loss": [1.0, 0.5]}
    cases = _cases(
        "plot_history",
        "history",
        lambda w, v: plotting.plot_history(v, w.path("h.png")),
        [(42, TypeError), ("loss", TypeError), ({}, ValueError)],
    )
    cases += _cases(
        "plot_history",
        "path",
        lambda w, v: plotting.plot_history(history, v),
        PATH_TYPE_VALUES + [("", ValueError)],
    )
    cases += _cases(
        "plot_history",
        "title",
        lambda w, v: plotting.plot_history(history, w.path("h.png"), title=v),
        [(42, TypeError)],
    )
    schedule = schedules.OneCycle(0.1, 100)

    def plr(w, **kwargs):
        args = dict(steps=10, path=w.path("lr.png"))
        args.update(kwargs)
        return plotting.plot_learning_rates(schedule, **args)

    cases += _cases(
        "plot_learning_rates",
        "steps",
        lambda w, v: plr(w, steps=v),
        [
            (0, ValueError),
            (-5, ValueError),
            (2.5, TypeError),
            ("10", TypeError),
        ],
    )
    cases += _cases(
        "plot_learning_rates",
        "path",
        lambda w, v: plr(w, path=v),
        PATH_TYPE_VALUES + [("", ValueError)],
    )
    cases += _cases(
        "plot_learning_rates",
        "title",
        lambda w, v: plr(w, title=v),
        [(42, TypeError), (["a"], TypeError)],
    )
    cases += _cases(
        "plot_learning_rates",
        "steps_per_epoch",
        lambda w, v: plr(w, steps_per_epoch=v),
        [(0, ValueError), (2.5, TypeError)],
    )
    cases += _cases(
        "plot_learning_rates",
        "optimizer_or_schedules",
        lambda w, v: plotting.plot_learning_rates(v, 10, w.path("lr.png")),
        [
            ("adam", TypeError),
            (None, TypeError),
            (NAN, ValueError),
            (-1.0, ValueError),
        ],
    )
    return cases


def _regularizer_cases():
    cases = _cases(
        "L2",
        "strength",
        lambda w, v: regularizers.L2(v),
        _number_values(low=0, below=-1e-4),
    )
    cases += _cases(
        "L2SP",
        "alpha",
        lambda w, v: regularizers.L2SP(v),
        _number_values(low=0, below=-0.1),
    )
    cases += _cases(
        "L2SP",
        "beta",
        lambda w, v: regularizers.L2SP(0.1, v),
        _number_values(low=0, below=-0.1),
    )
    cases += _cases(
        "l2sp",
        "alpha",
        lambda w, v: regularizers.l2sp(w.model, v),
        [(NAN, ValueError), (-1.0, ValueError), ("a", TypeError)],
    )
    cases += _cases(
        "l2sp",
        "pretrained",
        lambda w, v: regularizers.l2sp(w.model, pretrained=v),
        [("no_such_stage", ValueError), (2.5, TypeError)],
    )
    cases += _model_cases("l2sp", lambda w, v: regularizers.l2sp(v))
    cases += _cases(
        "StagePenalty",
        "strengths",
        lambda w, v: regularizers.StagePenalty(v, name="p"),
        [(42, TypeError), ("alpha", TypeError), ([0.1], TypeError)],
    )
    # A bad strength is named by its key.
    cases += _cases(
        "StagePenalty",
        "block1",
        lambda w, v: regularizers.StagePenalty({"block1": v}, name="p"),
        _number_values(low=0, below=-1.0),
    )
    cases += _cases(
        "StagePenalty",
        "name",
        lambda w, v: regularizers.StagePenalty({"a": 0.1}, name=v),
        [("", ValueError), (None, ValueError)],
    )
    cases += _cases(
        "StrengthSchedule",
        "regularizer",
        lambda w, v: regularizers.StrengthSchedule(v, alpha=lambda s: 0.1),
        [(42, TypeError), ("l2sp", TypeError)],
    )
    cases += _cases(
        "StrengthSchedule",
        "alpha",
        lambda w, v: regularizers.StrengthSchedule(
            regularizers.L2SP(), alpha=v
        ),
        [(42, TypeError), ("linear", TypeError)],
    )
    cases += _target_cases(
        "reinitialize", lambda w, v: regularizers.reinitialize(w.model, v)
    )
    cases += _cases(
        "reinitialize",
        "seed",
        lambda w, v: regularizers.reinitialize(w.model, "head", seed=v),
        [("1", TypeError), (2.5, TypeError), (True, TypeError)],
    )
    cases += _model_cases(
        "reinitialize", lambda w, v: regularizers.reinitialize(v, "head")
    )
    return cases


def _schedule_cases():
    st_ = schedules.SlantedTriangular
    oc = schedules.OneCycle
    cases = []
    for label, cls in (("SlantedTriangular", st_), ("OneCycle", oc)):
        cases += _cases(
            label,
            "max_learning_rate",
            lambda w, v, cls=cls: cls(v, 100),
            _number_values(low=0, below=0.0),
        )
        cases += _cases(
            label,
            "total_steps",
            lambda w, v, cls=cls: cls(0.1, v),
            _int_values(1),
        )
    cases += _cases(
        "SlantedTriangular",
        "cut_frac",
        lambda w, v: st_(0.1, 100, cut_frac=v),
        _number_values(low=0, high=1, below=0.0),
    )
    cases += _cases(
        "SlantedTriangular",
        "ratio",
        lambda w, v: st_(0.1, 100, ratio=v),
        _number_values(low=0, below=0.5),
    )
    cases += _cases(
        "OneCycle",
        "pct_start",
        lambda w, v: oc(0.1, 100, pct_start=v),
        _number_values(low=0, high=1, below=-0.1),
    )
    cases += _cases(
        "OneCycle",
        "div",
        lambda w, v: oc(0.1, 100, div=v),
        _number_values(low=0, below=0.0),
    )
    cases += _cases(
        "WarmUp",
        "warmup_steps",
        lambda w, v: schedules.WarmUp(0.1, v),
        _int_values(1),
    )
    cases += _cases(
        "WarmUp",
        "schedule",
        lambda w, v: schedules.WarmUp(v, 10),
        [("0.1", TypeError), (NAN, ValueError), (-0.1, ValueError)],
    )
    cases += _cases(
        "WarmUp",
        "initial_learning_rate",
        lambda w, v: schedules.WarmUp(0.1, 10, initial_learning_rate=v),
        _number_values(low=0, below=-0.1),
    )
    cases += _cases(
        "Scaled",
        "factor",
        lambda w, v: schedules.Scaled(0.1, v),
        _number_values(low=0, below=-1.0),
    )
    cases += _cases(
        "Scaled",
        "schedule",
        lambda w, v: schedules.Scaled(v, 0.5),
        [("0.1", TypeError), (INF, ValueError)],
    )
    return cases


def _sequence_cases():
    blm = sequence.build_language_model
    bsc = sequence.build_sequence_classifier
    cases = _cases(
        "build_language_model",
        "vocab_size",
        lambda w, v: blm(v),
        _int_values(2),
    )
    cases += _cases(
        "build_sequence_classifier",
        "vocab_size",
        lambda w, v: bsc(v, 2),
        _int_values(2),
    )
    cases += _cases(
        "build_sequence_classifier",
        "num_classes",
        lambda w, v: bsc(50, v),
        _int_values(2),
    )
    for label, fn in (
        ("build_language_model", lambda **k: blm(50, **k)),
        ("build_sequence_classifier", lambda **k: bsc(50, 2, **k)),
    ):
        cases += _cases(
            label,
            "cell",
            lambda w, v, fn=fn: fn(cell=v),
            [("lstn", ValueError), ("", ValueError), (42, ValueError)],
        )
        cases += _cases(
            label,
            "units",
            lambda w, v, fn=fn: fn(units=v),
            [(0, ValueError), ("64", TypeError), ([], ValueError)],
        )
        cases += _cases(
            label,
            "embedding_dim",
            lambda w, v, fn=fn: fn(embedding_dim=v),
            [(0, ValueError), (2.5, TypeError)],
        )
        cases += _cases(
            label,
            "dropout",
            lambda w, v, fn=fn: fn(dropout=v),
            [(NAN, ValueError), (1.0, ValueError), (-0.1, ValueError)],
        )
        cases += _cases(
            label,
            "num_layers",
            lambda w, v, fn=fn: fn(num_layers=v),
            [(0, ValueError), (2.5, TypeError)],
        )
        cases += _cases(
            label,
            "sequence_length",
            lambda w, v, fn=fn: fn(sequence_length=v),
            [(0, ValueError), ("8", TypeError)],
        )
    cases += _cases(
        "build_sequence_classifier",
        "pooling",
        lambda w, v: bsc(50, 2, pooling=v),
        [("first", ValueError), ("", ValueError)],
    )
    cases += _cases(
        "build_sequence_classifier",
        "bidirectional",
        lambda w, v: bsc(50, 2, bidirectional=v),
        [("yes", TypeError), (1, TypeError)],
    )
    cases += _cases(
        "SequencePooling",
        "mode",
        lambda w, v: sequence.SequencePooling(v),
        [("first", ValueError), (42, ValueError)],
    )
    cases += _cases(
        "classifier_from_pretrained",
        "model",
        lambda w, v: sequence.classifier_from_pretrained(v, 2),
        [(42, TypeError), ("lm", TypeError)],
    )
    cases.append(
        Case(
            "classifier_from_pretrained-not-a-language-model",
            lambda w: sequence.classifier_from_pretrained(w.model, 2),
            ValueError,
            ("world",),
        )
    )
    return cases


def _text_cases():
    cases = _cases(
        "tokenize",
        "text",
        lambda w, v: text_data.tokenize(v),
        [(42, TypeError), (None, TypeError), (["a"], TypeError)],
    )
    cases += _cases(
        "build_vocabulary",
        "texts",
        lambda w, v: text_data.build_vocabulary(v),
        [(42, TypeError), ("a text", TypeError), ([1, 2], TypeError, "=1")],
    )
    cases += _cases(
        "build_vocabulary",
        "max_tokens",
        lambda w, v: text_data.build_vocabulary(["a b"], max_tokens=v),
        [(0, ValueError), (-1, ValueError), (2.5, TypeError)],
    )
    cases += _cases(
        "build_vocabulary",
        "min_count",
        lambda w, v: text_data.build_vocabulary(["a b"], min_count=v),
        [(0, ValueError), (2.5, TypeError), ("1", TypeError)],
    )
    vocabulary = text_data.build_vocabulary(["a b c"])
    cases += _cases(
        "encode",
        "texts",
        lambda w, v: text_data.encode(v, vocabulary),
        [(42, TypeError), ([1], TypeError, "=1"), ([b"a"], TypeError, "b'a'")],
    )
    cases += _cases(
        "encode",
        "vocabulary",
        lambda w, v: text_data.encode(["a"], v),
        [(42, TypeError), ([], ValueError), ("abc", TypeError)],
    )
    cases += _cases(
        "encode",
        "sequence_length",
        lambda w, v: text_data.encode(["a"], vocabulary, sequence_length=v),
        [(0, ValueError), (-1, ValueError), (2.5, TypeError)],
    )
    for label, fn in (
        ("rotten_tomatoes_path", text_data.rotten_tomatoes_path),
        (
            "is_rotten_tomatoes_provisioned",
            text_data.is_rotten_tomatoes_provisioned,
        ),
        ("load_rotten_tomatoes", text_data.load_rotten_tomatoes),
        ("load_rotten_tomatoes_plots", text_data.load_rotten_tomatoes_plots),
    ):
        cases += _cases(
            label, "cache_dir", lambda w, v, fn=fn: fn(v), PATH_TYPE_VALUES
        )
    cases += _cases(
        "load_rotten_tomatoes",
        "test_fraction",
        lambda w, v: text_data.load_rotten_tomatoes(
            w.path("rt"), test_fraction=v, provision=False
        ),
        _number_values(low=0, high=1, below=0.0),
    )
    cases += _cases(
        "load_rotten_tomatoes",
        "seed",
        lambda w, v: text_data.load_rotten_tomatoes(
            w.path("rt"), seed=v, provision=False
        ),
        [("0", TypeError), (2.5, TypeError)],
    )
    for label, fn in (
        ("load_rotten_tomatoes", text_data.load_rotten_tomatoes),
        ("load_rotten_tomatoes_plots", text_data.load_rotten_tomatoes_plots),
    ):
        cases += _cases(
            label,
            "provision",
            lambda w, v, fn=fn: fn(w.path("rt"), provision=v),
            [("yes", TypeError), (1, TypeError)],
        )
        cases.append(
            Case(
                f"{label}-not-provisioned",
                lambda w, fn=fn: fn(w.path("rt"), provision=False),
                FileNotFoundError,
                ("rt",),
            )
        )
    cases += _cases(
        "text_dataset",
        "batch_size",
        lambda w, v: text_data.text_dataset(["a b"], [0], v),
        _int_values(1),
    )
    cases += _cases(
        "text_dataset",
        "texts",
        lambda w, v: text_data.text_dataset(v, [0]),
        [(42, TypeError), ("a b", TypeError), ([1], TypeError, "1")],
    )
    cases += _cases(
        "text_dataset",
        "labels",
        lambda w, v: text_data.text_dataset(["a b"], v),
        [([0, 1], ValueError, "2"), (42, ValueError, "shape ()")],
    )
    cases += _cases(
        "text_dataset",
        "shuffle",
        lambda w, v: text_data.text_dataset(["a b"], [0], shuffle=v),
        [("yes", TypeError), (1, TypeError)],
    )
    cases += _cases(
        "text_dataset",
        "seed",
        lambda w, v: text_data.text_dataset(["a b"], [0], seed=v),
        [("0", TypeError), (2.5, TypeError), (-1, ValueError)],
    )
    return cases


def _toolkit_cases():
    """lr_find, interpolate, wise_ft_sweep and tta_predict."""
    cases = _model_cases("lr_find", lambda w, v: kerasft.lr_find(v, w.x, w.y))
    for arg, values in (
        ("batch_size", _int_values(1)),
        ("start_lr", _number_values(below=0.0)),
        ("end_lr", _number_values(below=0.0)),
        ("num_steps", _int_values(2)),
        ("beta", _number_values(below=-0.5) + [(1.0, ValueError)]),
        ("diverge", _number_values(below=1.0)),
        ("seed", [("0", TypeError), (2.5, TypeError), (-1, ValueError)]),
    ):
        cases += _cases(
            "lr_find",
            arg,
            lambda w, v, arg=arg: kerasft.lr_find(
                w.model, w.x, w.y, **{arg: v}
            ),
            values,
        )
    cases += _cases(
        "lr_find",
        "end_lr",
        lambda w, v: kerasft.lr_find(w.model, w.x, w.y, start_lr=1.0, end_lr=v),
        [(0.5, ValueError)],
    )
    cases += _model_cases(
        "interpolate", lambda w, v: kerasft.interpolate(v, w.model, 0.5)
    )
    cases += _cases(
        "interpolate",
        "alpha",
        lambda w, v: kerasft.interpolate(w.model, w.model, v),
        _number_values(below=-0.1) + [(1.5, ValueError)],
    )
    cases += _cases(
        "interpolate",
        "reference",
        lambda w, v: kerasft.interpolate(w.model, v, 0.5),
        [(42, TypeError), ("weights", TypeError), ([], ValueError, "0 arrays")],
    )

    def sweep(w, **kwargs):
        return kerasft.wise_ft_sweep(w.model, w.model, w.x, w.y, **kwargs)

    for arg, values in (
        (
            "alphas",
            [
                (0.5, TypeError),
                ((), ValueError),
                ((0.5, 2.0), ValueError, "2.0"),
                ((0.5, NAN), ValueError, "nan"),
                (("0.5",), TypeError, "'0.5'"),
            ],
        ),
        ("mode", [("best", ValueError), (None, ValueError)]),
        ("metric", [(42, TypeError)]),
        ("batch_size", _int_values(1)),
        ("keep_best", [("yes", TypeError), (1, TypeError)]),
    ):
        cases += _cases(
            "wise_ft_sweep",
            arg,
            lambda w, v, arg=arg: sweep(w, **{arg: v}),
            values,
        )
    cases += _cases(
        "tta_predict",
        "model",
        lambda w, v: kerasft.tta_predict(v, w.x),
        [(42, TypeError), ("model", TypeError), (None, TypeError)],
    )
    for arg, values in (
        ("n", _int_values(1)),
        ("policy", [("flop", ValueError), (42, TypeError), (None, TypeError)]),
        ("batch_size", _int_values(1)),
        ("seed", [("0", TypeError), (2.5, TypeError), (-1, ValueError)]),
        ("from_logits", [("yes", TypeError), (1, TypeError)]),
    ):
        cases += _cases(
            "tta_predict",
            arg,
            lambda w, v, arg=arg: kerasft.tta_predict(w.model, w.x, **{arg: v}),
            values,
        )
    cases += _cases(
        "tta_predict",
        "n",
        lambda w, v: kerasft.tta_predict(w.model, w.x, n=v, policy="flip"),
        [(3, ValueError)],
    )
    cases += _cases(
        "tta_predict",
        "x",
        lambda w, v: kerasft.tta_predict(w.model, v),
        [(42, TypeError), ("images", TypeError)],
    )
    return cases


def _averaging_cases():
    """EMA, SWA and recompute_bn_statistics."""
    cases = []
    for arg, values in (
        ("decay", _number_values(below=-0.1) + [(1.0, ValueError)]),
        ("start_epoch", _int_values(0)),
        ("every_n_steps", _int_values(1)),
        ("warmup", [("yes", TypeError), (1, TypeError), (None, TypeError)]),
        ("swap_on_evaluate", [("yes", TypeError), (None, TypeError)]),
    ):
        cases += _cases(
            "EMA", arg, lambda w, v, arg=arg: callbacks.EMA(**{arg: v}), values
        )
    for arg, values in (
        ("start_epoch", _int_values(0)),
        ("bn_batch_size", _int_values(1)),
        ("bn_data", [(42, TypeError), ("images", TypeError)]),
        ("swap_on_evaluate", [("yes", TypeError), (0, TypeError)]),
    ):
        cases += _cases(
            "SWA",
            arg,
            lambda w, v, arg=arg: callbacks.SWA(**{"start_epoch": 1, arg: v}),
            values,
        )
    cases += _model_cases(
        "recompute_bn_statistics",
        lambda w, v: kerasft.recompute_bn_statistics(v, w.x),
    )
    for arg, values in (
        ("data", [(42, TypeError), ("images", TypeError), (None, TypeError)]),
        ("batch_size", _int_values(1)),
        ("steps", [x for x in _int_values(1) if x[0] is not None]),
    ):
        cases += _cases(
            "recompute_bn_statistics",
            arg,
            lambda w, v, arg=arg: kerasft.recompute_bn_statistics(
                w.model, **{"data": w.x, arg: v}
            ),
            values,
        )
    return cases


def _export_cases():
    """kerasft.export.onnx and .litert: refused before any process runs."""
    cases = []
    for label, fn, suffix in (
        ("onnx", export.onnx, ".onnx"),
        ("litert", export.litert, ".tflite"),
    ):
        good = f"out{suffix}"
        cases += _cases(
            label,
            "path",
            # A non-empty str names a file in the world's folder.
            lambda w, v, fn=fn: fn(
                w.model, w.path(v) if isinstance(v, str) and v else v
            ),
            PATH_TYPE_VALUES
            + [
                (None, TypeError),
                ("", ValueError),
                ("out.keras", ValueError),
                (os.path.join("good.npz", good), ValueError),
            ],
        )
        cases += _cases(
            label,
            "model",
            lambda w, v, fn=fn, good=good: fn(v, w.path(good)),
            [(42, TypeError), (None, TypeError)],
        )
        for arg, values in (
            ("overwrite", [("yes", TypeError), (None, TypeError)]),
            ("verify", [(1, TypeError), ("no", TypeError)]),
            ("atol", _number_values(below=-1e-3)),
            ("rtol", _number_values(below=-1.0)),
            ("timeout", _number_values(below=0.0)),
        ):
            cases += _cases(
                label,
                arg,
                lambda w, v, fn=fn, good=good, arg=arg: fn(
                    w.model, w.path(good), **{arg: v}
                ),
                values,
            )
    cases += _cases(
        "onnx",
        "opset",
        lambda w, v: export.onnx(w.model, w.path("out.onnx"), opset=v),
        [x for x in _int_values(7, maximum=18) if x[0] is not None],
    )
    return cases


def _distributed_cases():
    """kerasft.distributed and kerasft.callbacks.BackupAndRestore."""
    dist = kerasft.distributed
    cases = []
    for arg, values in (
        ("num_processes", _int_values(1, none_ok=True)),
        ("process_id", _int_values(0, none_ok=True)),
        ("coordinator_address", [(42, TypeError), (b"h:1", TypeError)]),
        ("heartbeat_timeout", _int_values(1)),
        ("initialization_timeout", _int_values(1)),
    ):
        cases += _cases(
            "initialize",
            arg,
            lambda w, v, arg=arg: dist.initialize(**{arg: v}),
            values,
        )
    for arg, values in (
        ("batch_size", _int_values(1)),
        ("seed", [("1", TypeError), (2.5, TypeError)]),
        ("drop_remainder", [("yes", TypeError), (1, TypeError)]),
    ):
        cases += _cases(
            "shard",
            arg,
            lambda w, v, arg=arg: dist.shard(w.x, **{"batch_size": 2, arg: v}),
            values,
        )
    for arg, values in (
        ("backup_dir", [(42, TypeError), ("", ValueError)]),
        ("save_freq", [("batch", TypeError), (0, ValueError)]),
        ("delete_checkpoint", [("yes", TypeError)]),
        ("keep", [(1, ValueError), (2.5, TypeError)]),
    ):
        cases += _cases(
            "BackupAndRestore",
            arg,
            lambda w, v, arg=arg: callbacks.BackupAndRestore(
                **{"backup_dir": "backup", arg: v}
            ),
            values,
        )
    return cases


CASES = (
    _top_level_cases()
    + _toolkit_cases()
    + _augment_cases()
    + _mixing_cases()
    + _backbone_cases()
    + _callback_cases()
    + _data_selection_cases()
    + _layer_cases()
    + _optimizer_cases()
    + _peft_cases()
    + _plotting_cases()
    + _regularizer_cases()
    + _schedule_cases()
    + _sequence_cases()
    + _text_cases()
    + _averaging_cases()
    + _export_cases()
    + _adapter_cases()
    + _distributed_cases()
)
