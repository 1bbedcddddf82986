"""Test-time augmentation: average predictions over augmented views.

`tta_predict(model, x, n=2)` predicts the images as they are and `n - 1`
augmented copies of them, and averages the predicted probabilities. The
views are made with `keras.ops` and Keras's random image layers, so it
runs on every backend, and on the raw 0-255 pixels kerasft models take.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from kerasft._src.validation import check_bool
from kerasft._src.validation import check_choice
from kerasft._src.validation import check_int
from kerasft._src.validation import check_model

POLICIES = ("flip", "flip_crop", "flip_shift")


def tta_predict(
    model: keras.Model | Callable,
    x: Any,
    *,
    n: int = 2,
    policy: str | keras.layers.Layer = "flip",
    batch_size: int = 32,
    seed: int | None = None,
    from_logits: bool = False,
) -> np.ndarray:
    """Predicts with test-time augmentation: the mean over `n` views.

    View 0 is the images as given. The other views depend on `policy`:

    - `"flip"`: view 1 is the left-right mirror image (`n` is 1 or 2);
    - `"flip_crop"`: odd views are mirrored, and every view after the
      first is zoomed in by up to 15% at a random place (a random crop
      resized back), `keras.layers.RandomZoom`;
    - `"flip_shift"`: odd views are mirrored, and every view after the
      first is shifted by up to 10% of the height and width with
      reflected borders, `keras.layers.RandomTranslation`;
    - a Keras layer: every view after the first is that layer called with
      `training=True` (for example a `keras.layers.Pipeline` of random
      layers built with a seed).

    Random views are reproducible with `seed`. The model's outputs are
    averaged as probabilities: with `from_logits=True` a softmax (a
    sigmoid for a single output unit) is applied to each view's output
    first, and the mean is returned as probabilities.

    Example:

    ```python
    probabilities = kerasft.tta_predict(model, x_test, n=2, policy="flip")
    predicted = probabilities.argmax(axis=-1)
    ```

    Args:
        model: keras.Model or callable. A built image model with one
            output, or a function from a batch of images to its outputs
            (such as the serving function of a reloaded SavedModel).
        x: array. A batch of images, `(samples, height, width, channels)`
            (channels first when `keras.config.image_data_format()` says
            so), in the value range the model takes (raw 0-255 pixels for
            kerasft models).
        n: int. The number of views, >= 1; `n=1` is `model.predict`.
            Defaults to `2`.
        policy: str or keras.layers.Layer. One of `"flip"`, `"flip_crop"`,
            `"flip_shift"`, or a layer that augments a batch. Defaults to
            `"flip"`.
        batch_size: int. Images per prediction call. Defaults to `32`.
        seed: int or None. Seed of the random views. Defaults to `None`.
        from_logits: bool. Whether the model outputs logits. Defaults to
            `False`.

    Returns:
        A float32 NumPy array of averaged probabilities, one row per
        image.

    Raises:
        TypeError: for an argument of the wrong type.
        ValueError: for an unknown policy, `n < 1`, `n > 2` with
            `policy="flip"`, or `x` that is not a batch of images.
    """
    if isinstance(model, keras.Model) or not callable(model):
        check_model(model, built=True, purpose="tta_predict")
        predict = model.predict_on_batch
    else:  # a serving function, e.g. of a reloaded SavedModel
        predict = model
    n = check_int("n", n, minimum=1)
    if not isinstance(policy, keras.layers.Layer):
        if not isinstance(policy, str):
            raise TypeError(
                f"`policy` must be one of {list(POLICIES)} or a "
                "keras.layers.Layer. Received: policy="
                f"{policy!r} of type {type(policy).__name__}"
            )
        check_choice("policy", policy, POLICIES)
        if policy == "flip" and n > 2:
            raise ValueError(
                "`n` must be 1 or 2 for policy='flip': an image and its "
                "mirror image are the only two views. Use 'flip_crop' or "
                f"'flip_shift' for more. Received: n={n}"
            )
    batch_size = check_int("batch_size", batch_size, minimum=1)
    seed = check_int("seed", seed, minimum=0, allow_none=True)
    from_logits = check_bool("from_logits", from_logits)
    images = _check_images(x)

    augment = _random_layer(policy, seed)
    outputs = []
    for begin in range(0, images.shape[0], batch_size):
        batch = images[begin : begin + batch_size]
        total = None
        for view in range(n):
            view_batch = _view(batch, view, policy, augment)
            probs = _probabilities(predict(view_batch), from_logits)
            total = probs if total is None else total + probs
        outputs.append(total / n)
    return np.concatenate(outputs, axis=0).astype("float32")


def _check_images(x):
    if not (isinstance(x, np.ndarray) or keras.ops.is_tensor(x)):
        raise TypeError(
            "`x` must be an array of images. "
            f"Received: x={reprlib.repr(x)} of type {type(x).__name__}"
        )
    images = keras.ops.convert_to_numpy(x)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(
            "`x` must be a non-empty batch of images with 4 dimensions "
            "(samples, height, width, channels). "
            f"Received: x with shape {images.shape}"
        )
    return images


def _random_layer(policy, seed):
    if isinstance(policy, keras.layers.Layer):
        return policy
    if policy == "flip_crop":
        return keras.layers.RandomZoom(
            height_factor=(-0.15, 0.0), fill_mode="reflect", seed=seed
        )
    if policy == "flip_shift":
        return keras.layers.RandomTranslation(
            0.1, 0.1, fill_mode="reflect", seed=seed
        )
    return None


def _view(batch, view, policy, augment):
    """The images of view number `view` (0 is the images themselves)."""
    if view == 0:
        return batch
    if isinstance(policy, keras.layers.Layer):
        return keras.ops.convert_to_numpy(augment(batch, training=True))
    images = batch.astype("float32")
    if view % 2 == 1:
        width = 2 if keras.config.image_data_format() == "channels_last" else 3
        images = np.flip(images, axis=width)
    if augment is not None:
        images = keras.ops.convert_to_numpy(augment(images, training=True))
    return images


def _probabilities(outputs, from_logits):
    outputs = np.asarray(keras.ops.convert_to_numpy(outputs), dtype="float64")
    if not from_logits:
        return outputs
    if outputs.shape[-1] == 1:
        return 1.0 / (1.0 + np.exp(-outputs))
    shifted = outputs - outputs.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)
