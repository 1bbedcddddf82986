"""The model of a fine-tuning run: a pretrained backbone + a new head.

Images: a keras.applications backbone and a linear head. Text: a keras-hub
text classifier (its tokenizer and packer travel with the model as its
preprocessor) on a keras-hub backbone: the offline all-MiniLM-L6-v2 or a
local preset folder.
"""

from __future__ import annotations

import importlib.util
import os
import warnings

import keras

from kerasft._src import assets
from kerasft._src.assets.errors import COMMAND
from kerasft._src.backbones import applications
from kerasft._src.logs import get_logger
from kerasft._src.models import build_classifier
from kerasft._src.run.config import BACKBONES
from kerasft._src.run.config import DEFAULT_SEQUENCE_LENGTH
from kerasft._src.run.config import TEXT_BACKBONES
from kerasft._src.run.config import FinetuneConfig
from kerasft._src.run.config import FinetuneError
from kerasft._src.stages import stages as model_stages

_LOGGER = get_logger("finetune")


def check_dependencies(
    export: bool, tensorboard: bool = False, text: bool = False
) -> None:
    """Fails before training when a package needed afterwards is missing."""
    needed = [("matplotlib", "matplotlib")]
    if text:
        # keras-hub's tokenizers run TensorFlow (tf.data, tensorflow-text)
        # on every backend.
        needed += [
            ("keras_hub", "keras-hub"),
            ("tensorflow", "tensorflow"),
            ("tensorflow_text", "tensorflow-text"),
        ]
    else:
        needed.insert(0, ("PIL", "pillow"))
    # The TF Serving export and TensorBoard's log writer need TensorFlow.
    without = [
        option
        for option, on in (
            ("`export=False`", export),
            ("without `tensorboard`", tensorboard),
        )
        if on
    ]
    if without and not text:
        needed.append(("tensorflow", "tensorflow"))
    missing = [
        pip for module, pip in needed if not importlib.util.find_spec(module)
    ]
    if missing:
        hint = ""
        if "tensorflow" in missing and not text:
            hint = f" (or {' and '.join(without)})"
        raise FinetuneError(
            f"missing package(s) {', '.join(missing)}: pip install "
            f"{' '.join(missing)}{hint}"
        )


def build(config: FinetuneConfig, num_classes: int, log) -> keras.Model:
    """Builds the classifier of a config whose weights are resolved."""
    if config.modality == "text":
        return build_text(config, num_classes, log)
    weights = config.weights
    # Before the run's first random draw (weights, then dropout and the
    # shuffling of `fit`): the same `seed` repeats the run.
    keras.utils.set_random_seed(config.seed)
    model = build_classifier(
        build_backbone(config.backbone, weights, config.image_size),
        num_classes=num_classes,
        dropout=0.2,
    )
    names = ", ".join(s.name for s in model_stages(model))
    log(
        f"Model: {config.backbone} (weights: {weights or 'random'}) + linear "
        f"head, {model.count_params():,} parameters; stages: {names}"
    )
    return model


def resolve_weights(weights, modality="image"):
    """`None`, `"imagenet"` or an existing path; for text `"pretrained"`.

    `"imagenet"` is left to Keras: its cache, else its own download. Nothing
    here provisions assets; `python -m kerasft.assets` does that. For text,
    `"imagenet"` (the default) stands for the backbone's own weights.
    """
    if weights is None or str(weights).lower() == "none":
        return None
    weights = os.fspath(weights)
    if modality == "text":
        if weights != "imagenet":
            raise FinetuneError(
                "`weights` must be 'imagenet' (the text backbone's own "
                "pretrained weights) or 'none' (random) for text data; "
                "a keras-hub preset folder holds its weights: pass it as "
                f"`backbone`. Received: weights={weights!r}"
            )
        return "pretrained"
    if weights == "imagenet":
        return weights
    if not os.path.isfile(weights):
        raise FinetuneError(
            "`weights` must be 'imagenet', 'none' or the path of a weights "
            f"file; no file exists at {weights!r}"
        )
    return weights


def build_backbone(backbone, weights, image_size):
    """The keras.applications backbone, with errors that say what to do."""
    builder = getattr(applications, BACKBONES[backbone])
    with warnings.catch_warnings():
        # Keras loads its 224-pixel ImageNet weights for other sizes, and
        # says so; convolution weights do not depend on the input size.
        warnings.filterwarnings("ignore", message=".*input_shape.*")
        warnings.filterwarnings("ignore", message=".*weights for input shape.*")
        try:
            return builder(
                weights=weights, input_shape=(image_size, image_size, 3)
            )
        except RuntimeError as error:
            if weights != "imagenet":
                raise
            raise FinetuneError(
                f"could not download the ImageNet weights of {backbone}: "
                "this machine may be offline; "
                f"{_offline_hint(backbone, image_size)}"
                "or use `weights=none` or `weights=PATH`"
            ) from error
        except (ValueError, OSError) as error:
            if weights in (None, "imagenet"):
                raise
            raise FinetuneError(
                f"cannot load `weights={weights!r}` into {backbone}: "
                f"{type(error).__name__}: {_first_line(error)}"
            ) from error


def text_preset(backbone) -> str:
    """The preset folder of a text `backbone`: a name or a folder."""
    if backbone not in TEXT_BACKBONES:
        return backbone
    from kerasft._src.backbones import hub

    if not hub.is_minilm_provisioned():
        raise FinetuneError(
            f"the {TEXT_BACKBONES[backbone]} backbone is not in the kerasft "
            f"cache ({hub.minilm_dir()}): run `{COMMAND} --only "
            f"{hub.MINILM_ASSET}` once to provision it offline, or pass a "
            "keras-hub preset folder as `backbone`"
        )
    return hub.minilm_dir()


def build_text(config: FinetuneConfig, num_classes: int, log) -> keras.Model:
    """A keras-hub text classifier on the config's backbone (softmax out).

    A Hugging Face checkpoint (no keras-hub `metadata.json`, e.g.
    all-MiniLM-L6-v2) was trained with exact GELU; a keras-hub preset
    keeps keras-hub's own activation.
    """
    from kerasft._src.backbones import hub

    preset = text_preset(config.backbone)
    hugging_face = not os.path.isfile(os.path.join(preset, "metadata.json"))
    keras.utils.set_random_seed(config.seed)
    try:
        model = hub.load_hub_text_classifier(
            preset,
            num_classes,
            exact_gelu=hugging_face,
            load_weights=config.weights is not None,
            # Probabilities, as the image models: the same losses apply.
            activation="softmax",
        )
    except (ValueError, OSError, KeyError) as error:
        raise FinetuneError(
            f"cannot load the text backbone {preset!r} (`backbone`): "
            f"{type(error).__name__}: {_first_line(error)}"
        ) from error
    length = _sequence_length(model, config.sequence_length)
    model.preprocessor.sequence_length = length
    names = ", ".join(s.name for s in model_stages(model))
    label = TEXT_BACKBONES.get(config.backbone, preset)
    log(
        f"Model: {label} (weights: {config.weights or 'random'}) + linear "
        f"head, {model.count_params():,} parameters, {length} tokens per "
        f"text; stages: {names}"
    )
    return model


def _sequence_length(model, requested):
    """The requested length, or the default cut to the backbone's maximum."""
    maximum = getattr(model.backbone, "max_sequence_length", None)
    if requested is None:
        return min(DEFAULT_SEQUENCE_LENGTH, maximum or DEFAULT_SEQUENCE_LENGTH)
    if maximum is not None and requested > maximum:
        raise FinetuneError(
            f"`sequence_length` must be at most {maximum}, the backbone's "
            f"longest input. Received: sequence_length={requested}"
        )
    return requested


def _offline_hint(backbone, image_size):
    """What provisions weights for `backbone` offline, if anything does."""
    if backbone == "mobilenet":
        path = assets.mobilenet_v1_imagenet_path(image_size=image_size)
        return (
            f"the weights file {path} is missing: run `{COMMAND} --only "
            "mobilenet_v1` once to provision it (and the files of the "
            "other image sizes) offline into Keras's cache, "
        )
    if backbone == "vgg16":
        return (
            "a VGG16 convolution stack fine-tuned from ImageNet is available "
            f"offline: run `{COMMAND} --only vgg16_hed`, then use "
            f"`weights={assets.vgg16_hed_path()}`, "
        )
    return "kerasft provisions ImageNet weights offline only for mobilenet; "


def _first_line(error):
    return str(error).strip().splitlines()[0] if str(error) else ""
