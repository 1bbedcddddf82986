"""Image augmentation recipes built from Keras preprocessing layers.

`augmentation(kind)` returns one `keras.layers.Pipeline` of Keras's random
image layers (`RandomFlip`, `RandomRotation`, `RandomZoom`,
`RandomTranslation`, `RandomContrast`). A `Pipeline` rather than a
`keras.Sequential`, because Keras runs a `Pipeline` inside a `tf.data`
pipeline on every backend (each layer switches to TensorFlow ops there),
while a `Sequential` converts the symbolic `tf.Tensor` to the backend's
arrays and fails on JAX and PyTorch.

Use it in either place:

- inside the model, in front of the backbone: it augments only while
  training (`fit`) and passes images through unchanged in `predict`,
  `evaluate` and an exported SavedModel;
- in a `tf.data` pipeline, called with `training=True`: the augmentation
  runs on the CPU input threads, in parallel with the training step.

The layers work on raw 0-255 pixels, which is what kerasft backbones take;
`value_range` tells `RandomContrast` the range to clip to.
"""

from __future__ import annotations

import numbers

import keras

from kerasft._src.validation import check_int
from kerasft._src.validation import check_type

# Strength of each transformation per kind: rotation as a fraction of a full
# turn, zoom and translation as fractions of the image size, contrast as
# the factor range [1 - c, 1 + c].
_RECIPES = {
    "light": {"rotation": 0.03, "zoom": 0.1, "translation": 0.0, "contrast": 0},
    "standard": {
        "rotation": 0.08,
        "zoom": 0.15,
        "translation": 0.1,
        "contrast": 0.2,
    },
}
KINDS = tuple(_RECIPES)
_FLIPS = ("horizontal", "vertical", "horizontal_and_vertical")


@keras.saving.register_keras_serializable(package="kerasft")
class Augmentation(keras.layers.Pipeline):
    """A `keras.layers.Pipeline` of shape-preserving image augmentations.

    Built by `kerasft.augment.augmentation`. It differs from a plain
    `Pipeline` only in declaring that its output has the shape of its input
    (every layer `augmentation` uses keeps the image size) and building its
    layers from the input shape, so Keras does not run the layers on
    placeholder data when the model is built, which takes most of a minute
    for rotations on the PyTorch backend.

    Example:

    ```python
    layer = kerasft.augment.Augmentation(
        [keras.layers.RandomFlip("horizontal")], name="flip_only"
    )
    ```

    Args:
        layers: list of `keras.Layer`. Layers that keep the shape of their
            input.
        name: str or None. Name of the layer. Defaults to `None`.

    Raises:
        TypeError: for `layers` that is not a list of `keras.Layer`.
    """

    def __init__(self, layers, name=None):
        what = "a list of keras.Layer"
        check_type("layers", layers, (list, tuple), what)
        for layer in layers:
            check_type("layers", layer, keras.Layer, what)
        super().__init__(list(layers), name=name)

    def build(self, input_shape):
        for layer in self.layers:
            if not layer.built:
                layer.build(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        return input_shape


def augmentation(
    kind: str = "standard",
    *,
    flip: str | None = "horizontal",
    value_range: tuple[float, float] = (0, 255),
    seed: int | None = None,
    name: str = "augmentation",
) -> Augmentation:
    """Returns a random image augmentation layer for fine-tuning.

    `"light"` flips, rotates by up to 3% of a turn (about 11 degrees) and
    zooms by up to 10%: safe for almost any photo dataset, and a good default
    when the pretrained features already fit the task. `"standard"` adds
    translation by up to 10% and contrast changes of up to 20%, and rotates
    and zooms more (up to 29 degrees, 15%): a stronger regularizer for small
    datasets and for fine-tuning many stages. Rotations, zooms and
    translations fill new pixels by reflection (Keras's default).

    The layer is only active in training: Keras calls it with
    `training=False` in `predict`, `evaluate` and exported models, where it
    returns its input unchanged. In a `tf.data` pipeline, call it with
    `training=True`.

    Example:

    ```python
    augment = kerasft.augment.augmentation("light", seed=0)

    # Inside the model, in front of the backbone (stages are kept: the
    # augmentation is a stage without weights, before "block1"):
    inputs = keras.Input((96, 96, 3))
    features = backbone(augment(inputs))
    outputs = keras.layers.Dense(10, activation="softmax")(features)
    model = keras.Model(inputs, outputs)

    # Or in a tf.data pipeline (any backend):
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    dataset = dataset.batch(32).map(
        lambda x, y: (augment(x, training=True), y),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    ```

    Args:
        kind: str. `"light"` or `"standard"` (see above). Defaults to
            `"standard"`.
        flip: str or None. Flip mode of `keras.layers.RandomFlip`:
            `"horizontal"`, `"vertical"`, `"horizontal_and_vertical"`, or
            `None` for no flip (text, digits, anything whose mirror image is
            another class). Defaults to `"horizontal"`.
        value_range: tuple. `(low, high)` range of the pixel values, used by
            `RandomContrast` to clip. Defaults to `(0, 255)` (raw pixels, as
            kerasft backbones take them).
        seed: int or None. Seed of the first random layer; layer `i` gets
            `seed + i`, so a seeded pipeline is reproducible. Defaults to
            `None` (unseeded).
        name: str. Name of the layer (and of its stage inside a model).
            Defaults to `"augmentation"`.

    Returns:
        An `Augmentation` (a `keras.layers.Pipeline`) of Keras
        preprocessing layers.

    Raises:
        ValueError: for an unknown `kind` or `flip`, or a `value_range` that
            is not two increasing numbers.
        TypeError: for a `seed` that is not an int or None, or a `name`
            that is not a str.
    """
    if kind not in _RECIPES:
        raise ValueError(
            f"Unknown augmentation kind. Allowed: {list(KINDS)}. "
            f"Received: kind={kind!r}"
        )
    if flip is not None and flip not in _FLIPS:
        raise ValueError(
            f"`flip` must be one of {list(_FLIPS)} or None. "
            f"Received: flip={flip!r}"
        )
    if (
        not isinstance(value_range, (tuple, list))
        or len(value_range) != 2
        or not all(
            isinstance(v, numbers.Real) and not isinstance(v, bool)
            for v in value_range
        )
        or not value_range[0] < value_range[1]
    ):
        raise ValueError(
            "`value_range` must be two numbers (low, high) with low < high. "
            f"Received: value_range={value_range!r}"
        )
    check_int("seed", seed, allow_none=True)
    if not isinstance(name, str) or not name:
        raise TypeError(
            f"`name` must be a non-empty str. Received: name={name!r}"
        )

    recipe = _RECIPES[kind]
    seeds = iter(range(int(seed or 0), int(seed or 0) + 5))

    def next_seed():
        value = next(seeds)
        return None if seed is None else value

    layers = []
    if flip is not None:
        layers.append(
            keras.layers.RandomFlip(flip, seed=next_seed(), name=f"{name}_flip")
        )
    layers.append(
        keras.layers.RandomRotation(
            recipe["rotation"], seed=next_seed(), name=f"{name}_rotation"
        )
    )
    layers.append(
        keras.layers.RandomZoom(
            recipe["zoom"], seed=next_seed(), name=f"{name}_zoom"
        )
    )
    if recipe["translation"]:
        layers.append(
            keras.layers.RandomTranslation(
                recipe["translation"],
                recipe["translation"],
                seed=next_seed(),
                name=f"{name}_translation",
            )
        )
    if recipe["contrast"]:
        layers.append(
            keras.layers.RandomContrast(
                recipe["contrast"],
                value_range=tuple(value_range),
                seed=next_seed(),
                name=f"{name}_contrast",
            )
        )
    return Augmentation(layers, name=name)
