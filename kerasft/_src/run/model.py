"""The model of a fine-tuning run: a keras.applications backbone + a head."""

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
from kerasft._src.run.config import FinetuneConfig
from kerasft._src.run.config import FinetuneError
from kerasft._src.stages import stages as model_stages

_LOGGER = get_logger("finetune")


def check_dependencies(export: bool, tensorboard: bool = False) -> None:
    """Fails before training when a package needed afterwards is missing."""
    needed = [("PIL", "pillow"), ("matplotlib", "matplotlib")]
    # The TF Serving export and TensorBoard's log writer need TensorFlow.
    without = [
        text
        for text, on in (
            ("`export=False`", export),
            ("without `tensorboard`", tensorboard),
        )
        if on
    ]
    if without:
        needed.append(("tensorflow", "tensorflow"))
    missing = [
        pip for module, pip in needed if not importlib.util.find_spec(module)
    ]
    if missing:
        hint = ""
        if "tensorflow" in missing:
            hint = f" (or {' and '.join(without)})"
        raise FinetuneError(
            f"missing package(s) {', '.join(missing)}: pip install "
            f"{' '.join(missing)}{hint}"
        )


def build(config: FinetuneConfig, num_classes: int, log) -> keras.Model:
    """Builds the classifier of a config whose weights are resolved."""
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


def resolve_weights(weights):
    """`None`, `"imagenet"` or an existing path.

    `"imagenet"` is left to Keras: its cache, else its own download. Nothing
    here provisions assets; `python -m kerasft.assets` does that.
    """
    if weights is None or str(weights).lower() == "none":
        return None
    weights = os.fspath(weights)
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
