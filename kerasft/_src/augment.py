"""Image augmentation recipes built from Keras preprocessing layers.

`augmentation(kind)` returns one `keras.layers.Pipeline` of Keras's random
image layers: `RandomFlip`, `RandomRotation`, `RandomZoom`,
`RandomTranslation` and `RandomContrast` for the `"light"` and
`"standard"` kinds, `keras.layers.RandAugment` or `keras.layers.AugMix`
for the strong policies, and `keras.layers.RandomErasing` on request. A
`Pipeline` rather than a `keras.Sequential`, because Keras runs a
`Pipeline` inside a `tf.data` pipeline on every backend (each layer
switches to TensorFlow ops there), while a `Sequential` converts the
symbolic `tf.Tensor` to the backend's arrays and fails on JAX and PyTorch.

Use it in either place:

- inside the model, in front of the backbone: it augments only while
  training (`fit`) and passes images through unchanged in `predict`,
  `evaluate` and an exported SavedModel;
- in a `tf.data` pipeline, called with `training=True`: the augmentation
  runs on the CPU input threads, in parallel with the training step.

The layers work on raw 0-255 pixels, which is what kerasft backbones take;
`value_range` tells the layers that clip or erase the range to use.

MixUp and CutMix, which mix labels as well as images, are in `mixing.py`.
"""

from __future__ import annotations

import numbers

import keras

from kerasft._src.validation import check_choice
from kerasft._src.validation import check_int
from kerasft._src.validation import check_number
from kerasft._src.validation import check_type

# Strength of each transformation per geometric kind: rotation as a
# fraction of a full turn, zoom and translation as fractions of the image
# size, contrast as the factor range [1 - c, 1 + c].
_RECIPES = {
    "light": {"rotation": 0.03, "zoom": 0.1, "translation": 0.0, "contrast": 0},
    "standard": {
        "rotation": 0.08,
        "zoom": 0.15,
        "translation": 0.1,
        "contrast": 0.2,
    },
}
# The strong policies: one Keras layer each, with these arguments. Keras's
# `factor` is one normalized strength shared by every operation of the
# policy (RandAugment: a rotation of up to `factor` of a full turn, a
# translation of up to `factor` of the size, ...); Keras's default (0.5)
# is meant for training from scratch, a fine-tuning run starts milder.
_POLICIES = {
    "randaugment": (keras.layers.RandAugment, {"num_ops": 2, "factor": 0.2}),
    "augmix": (
        keras.layers.AugMix,
        {"num_chains": 3, "chain_depth": 3, "factor": 0.3, "alpha": 1.0},
    ),
}
KINDS = (*_RECIPES, *_POLICIES)
# Area of an erased rectangle, as a fraction of the image (the Random
# Erasing paper's and timm's range).
_ERASED_AREA = (0.02, 1 / 3)
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
    erasing: float = 0.0,
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

    The strong policies flip, then apply one Keras policy layer:
    `"randaugment"` is `keras.layers.RandAugment(num_ops=2, factor=0.2)`
    (two operations per image, drawn from shear, translation, rotation,
    brightness, colour, contrast, sharpness, posterization, solarization,
    auto-contrast and equalization); `"augmix"` is
    `keras.layers.AugMix(num_chains=3, chain_depth=3, factor=0.3)` (three
    chains of such operations, mixed with the image). Use them for long
    runs or full fine-tuning on small datasets, together with MixUp or
    CutMix (`kerasft.augment.mix`).

    `erasing=p` adds `keras.layers.RandomErasing` last: each image has
    probability `p` of getting a rectangle of 2% to 33% of its area
    replaced by noise (timm's `--reprob`; 0.25 is the usual value).

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

    # Or in a tf.data pipeline (any backend), here a strong policy:
    strong = kerasft.augment.augmentation("randaugment", erasing=0.25)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    dataset = dataset.batch(32).map(
        lambda x, y: (strong(x, training=True), y),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    ```

    Args:
        kind: str. `"light"`, `"standard"`, `"randaugment"` or `"augmix"`
            (see above). Defaults to `"standard"`.
        flip: str or None. Flip mode of `keras.layers.RandomFlip`:
            `"horizontal"`, `"vertical"`, `"horizontal_and_vertical"`, or
            `None` for no flip (text, digits, anything whose mirror image is
            another class). Defaults to `"horizontal"`.
        erasing: float. Probability in [0, 1] that an image gets a random
            rectangle erased; `0` adds no `RandomErasing` layer. Defaults
            to `0.0`.
        value_range: tuple. `(low, high)` range of the pixel values, used by
            the layers that clip, erase or change colours. Defaults to
            `(0, 255)` (raw pixels, as kerasft backbones take them).
        seed: int or None. Seed of the first random layer; layer `i` gets
            `seed + i`, so a seeded pipeline is reproducible (except
            `"augmix"`, whose Keras layer draws its operations with Python's
            `random` module). Defaults to `None` (unseeded).
        name: str. Name of the layer (and of its stage inside a model).
            Defaults to `"augmentation"`.

    Returns:
        An `Augmentation` (a `keras.layers.Pipeline`) of Keras
        preprocessing layers.

    Raises:
        ValueError: for an unknown `kind` or `flip`, an `erasing` outside
            [0, 1], or a `value_range` that is not two increasing numbers.
        TypeError: for an `erasing` that is not a number, a `seed` that is
            not an int or None, or a `name` that is not a str.
    """
    check_choice("kind", kind, KINDS)
    if flip is not None and flip not in _FLIPS:
        raise ValueError(
            f"`flip` must be one of {list(_FLIPS)} or None. "
            f"Received: flip={flip!r}"
        )
    erasing = check_number("erasing", erasing, minimum=0.0, maximum=1.0)
    _check_value_range(value_range)
    check_int("seed", seed, allow_none=True)
    if not isinstance(name, str) or not name:
        raise TypeError(
            f"`name` must be a non-empty str. Received: name={name!r}"
        )
    seeds = _Seeds(seed)
    layers = []
    if flip is not None:
        flip_layer = keras.layers.RandomFlip(
            flip, seed=seeds.next(), name=f"{name}_flip"
        )
        layers.append(flip_layer)
    if kind in _POLICIES:
        policy, arguments = _POLICIES[kind]
        layers.append(
            policy(
                value_range=tuple(value_range),
                seed=seeds.next(),
                name=f"{name}_{kind}",
                **arguments,
            )
        )
    else:
        layers += _geometric_layers(_RECIPES[kind], value_range, seeds, name)
    if erasing:
        layers.append(
            keras.layers.RandomErasing(
                factor=(erasing, erasing),
                scale=_ERASED_AREA,
                value_range=tuple(value_range),
                seed=seeds.next(),
                name=f"{name}_erasing",
            )
        )
    return Augmentation(layers, name=name)


def _check_value_range(value_range) -> None:
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


class _Seeds:
    """`seed`, `seed + 1`, ... for the layers in order; `None` unseeded."""

    def __init__(self, seed):
        self.seed = seed
        self.count = 0

    def next(self):
        if self.seed is None:
            return None
        self.count += 1
        return self.seed + self.count - 1


def _geometric_layers(recipe, value_range, seeds, name):
    """The rotation, zoom, translation and contrast layers of `recipe`."""
    layers = [
        keras.layers.RandomRotation(
            recipe["rotation"], seed=seeds.next(), name=f"{name}_rotation"
        ),
        keras.layers.RandomZoom(
            recipe["zoom"], seed=seeds.next(), name=f"{name}_zoom"
        ),
    ]
    if recipe["translation"]:
        layers.append(
            keras.layers.RandomTranslation(
                recipe["translation"],
                recipe["translation"],
                seed=seeds.next(),
                name=f"{name}_translation",
            )
        )
    if recipe["contrast"]:
        layers.append(
            keras.layers.RandomContrast(
                recipe["contrast"],
                value_range=tuple(value_range),
                seed=seeds.next(),
                name=f"{name}_contrast",
            )
        )
    return layers
