"""AlexNet, which keras.applications does not have."""

from __future__ import annotations

import os

import keras
import numpy as np

from kerasft._src.backbones.preprocessing import ImagePreprocessing
from kerasft._src.validation import check_bool
from kerasft._src.validation import check_dropout
from kerasft._src.validation import check_hdf5
from kerasft._src.validation import check_int
from kerasft._src.validation import check_model
from kerasft._src.validation import check_path
from kerasft._src.validation import check_shape
from kerasft._src.validation import reading

# (layer, torchvision key prefix, kind)
_TORCHVISION_KEYS = (
    ("conv1", "features.0", "conv"),
    ("conv2", "features.3", "conv"),
    ("conv3", "features.6", "conv"),
    ("conv4", "features.8", "conv"),
    ("conv5", "features.10", "conv"),
    ("fc6", "classifier.1", "fc6"),
    ("fc7", "classifier.4", "dense"),
    ("predictions", "classifier.6", "dense"),
)


def AlexNet(
    *,
    weights: str | None = None,
    input_shape: tuple = (224, 224, 3),
    include_top: bool = False,
    classes: int = 1000,
    dropout: float = 0.5,
    name: str = "alexnet",
) -> keras.Model:
    """AlexNet backbone (torchvision's single-tower variant), raw 0-255 input.

    Krizhevsky et al., 2012, in the layout torchvision uses (64-192-384-256-
    256 filters, no local response normalization), so weights trained there
    load directly. Stages: `conv1`..`conv5`, `fc6`, `fc7`, then the `head`
    (`predictions` with `include_top=True`, or what `build_classifier`
    adds). The classic recipe freezes every convolution stage and trains
    only the last layer:

    Example:

    ```python
    backbone = kerasft.backbones.AlexNet(weights=None)
    model = kerasft.build_classifier(backbone, num_classes=5)
    kerasft.freeze_until(model, "fc7")  # only the new last layer trains
    ```

    The model takes raw pixels and applies torchvision's ImageNet
    normalization (`ImagePreprocessing("torch")`) as its first layer.

    Args:
        weights: str or None. `None` (random init), or a local file: a Keras
            `.weights.h5` saved from this architecture, or a torchvision
            state dict saved as `.npz` or `.safetensors` (keys such as
            `features.0.weight`, `classifier.1.weight`); there are no
            downloadable ImageNet weights. Defaults to `None`.
        input_shape: tuple. Defaults to `(224, 224, 3)`; torchvision weights
            need 224x224 (the first dense layer sees 6x6x256 features).
        include_top: bool. Add the 1000-way `predictions` layer. Defaults to
            `False` (the output is the 4096-d `fc7` feature).
        classes: int. Units of `predictions` with `include_top=True`.
            Defaults to `1000`.
        dropout: float. Dropout before `fc6` and `fc7`. Defaults to `0.5`.
        name: str. Defaults to `"alexnet"`.

    Returns:
        A `keras.Model`.

    Raises:
        ValueError: for a weights file that does not exist, has an unknown
            format, cannot be read, or does not match the architecture, or
            for `classes`, `dropout` or `input_shape` out of range.
        TypeError: for `input_shape`, `include_top`, `classes` or
            `dropout` of the wrong type.
    """
    input_shape = check_shape("input_shape", input_shape, 3)
    check_bool("include_top", include_top)
    check_int("classes", classes, minimum=1)
    check_dropout("dropout", dropout)
    if weights is not None and not (
        isinstance(weights, (str, os.PathLike)) and os.path.exists(weights)
    ):
        raise ValueError(
            "`weights` must be None or the path of an existing local file "
            "(.weights.h5, .npz or .safetensors); AlexNet has no "
            f"downloadable weights. Received: weights={weights!r}"
        )
    if weights is not None:
        _check_format("weights", os.fspath(weights))
    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = ImagePreprocessing("torch", name="preprocessing")(inputs)
    x = layers.ZeroPadding2D(2, name="conv1_pad")(x)
    x = layers.Conv2D(64, 11, strides=4, activation="relu", name="conv1")(x)
    x = layers.MaxPooling2D(3, strides=2, name="conv1_pool")(x)
    x = layers.Conv2D(192, 5, padding="same", activation="relu", name="conv2")(
        x
    )
    x = layers.MaxPooling2D(3, strides=2, name="conv2_pool")(x)
    x = layers.Conv2D(384, 3, padding="same", activation="relu", name="conv3")(
        x
    )
    x = layers.Conv2D(256, 3, padding="same", activation="relu", name="conv4")(
        x
    )
    x = layers.Conv2D(256, 3, padding="same", activation="relu", name="conv5")(
        x
    )
    x = layers.MaxPooling2D(3, strides=2, name="conv5_pool")(x)
    x = layers.Flatten(name="conv5_flatten")(x)
    x = layers.Dropout(dropout, name="fc6_dropout")(x)
    x = layers.Dense(4096, activation="relu", name="fc6")(x)
    x = layers.Dropout(dropout, name="fc7_dropout")(x)
    x = layers.Dense(4096, activation="relu", name="fc7")(x)
    if include_top:
        x = layers.Dense(classes, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, x, name=name)
    if weights is not None:
        load_alexnet_weights(model, weights)
    return model


def _read_state_dict(path):
    """Reads an .npz or .safetensors state dict (`_check_format` passed)."""
    if path.endswith(".npz"):
        with reading("path", path, "an .npz state dict"):
            with np.load(path) as data:
                return {k: data[k] for k in data.files}
    try:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file
    except ImportError as error:
        raise ImportError(
            "Reading .safetensors needs the `safetensors` package: "
            "`pip install safetensors`."
        ) from error
    with reading("path", path, "a .safetensors state dict"):
        try:
            return load_file(path)
        except SafetensorError as error:
            raise ValueError(str(error)) from error


_FORMATS = (".weights.h5", ".npz", ".safetensors")


def _check_format(name, path):
    if not path.endswith(_FORMATS):
        raise ValueError(
            "Unknown AlexNet weights format. Allowed: .weights.h5 (Keras), "
            ".npz or .safetensors (torchvision state dict). "
            f"Received: {name}={path!r}"
        )
    return path


def load_alexnet_weights(model: keras.Model, path: str) -> None:
    """Loads AlexNet weights from a local file into `model`.

    Args:
        model: keras.Model. A model built by `kerasft.backbones.AlexNet`.
        path: str. A Keras `.weights.h5` file, or a torchvision AlexNet state
            dict as `.npz` / `.safetensors` (conv kernels are transposed to
            channels-last, and `fc6`'s rows reordered from torch's
            channels-first flattening).

    Raises:
        FileNotFoundError: for a file that does not exist.
        ValueError: for an unknown format, a file that cannot be read
            (empty, truncated, corrupt) or shapes that do not match.
        TypeError: for a `model` or `path` of the wrong type.
    """
    check_model(model)
    path = _check_format("path", check_path("path", path))
    if path.endswith(".weights.h5"):
        model.load_weights(check_hdf5("path", path))
        return
    state = _read_state_dict(path)
    pending = []  # assigned once every layer checked out: all or nothing
    for layer_name, key, kind in _TORCHVISION_KEYS:
        missing = [
            k for k in (f"{key}.weight", f"{key}.bias") if k not in state
        ]
        if missing:
            if layer_name == "predictions":
                continue
            raise ValueError(
                f"The state dict in {path!r} has no {missing[0]!r} (needed "
                f"for layer '{layer_name}'). Keys found: "
                f"{sorted(state)[:12]}"
            )
        try:
            layer = model.get_layer(layer_name)
        except ValueError:
            continue
        kernel = np.asarray(state[f"{key}.weight"])
        bias = np.asarray(state[f"{key}.bias"])
        if kind == "conv":
            kernel = kernel.transpose(2, 3, 1, 0)
        elif kind == "fc6":
            # torch flattens (C, H, W); Keras flattens (H, W, C).
            channels = model.get_layer("conv5").filters
            expected_in = layer.kernel.shape[0]
            side = int(round((expected_in / channels) ** 0.5))
            if side * side * channels != kernel.shape[1]:
                raise ValueError(
                    f"fc6 weights expect {kernel.shape[1]} inputs but the "
                    f"model's fc6 has {expected_in}; torchvision AlexNet "
                    "weights need input_shape=(224, 224, 3). "
                    f"Received: weights={path!r}"
                )
            kernel = kernel.reshape(-1, channels, side, side)
            kernel = kernel.transpose(2, 3, 1, 0).reshape(expected_in, -1)
        else:
            kernel = kernel.T
        expected = tuple(layer.kernel.shape)
        if kernel.shape != expected:
            raise ValueError(
                f"Layer '{layer_name}' expects a kernel of shape {expected}, "
                f"the file gives {kernel.shape}. Received: weights={path!r}"
            )
        pending.append((layer, [kernel, bias]))
    for layer, values in pending:
        layer.set_weights(values)
