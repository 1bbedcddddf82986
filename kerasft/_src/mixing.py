"""MixUp and CutMix for a `tf.data` pipeline, with their labels.

`mix(kind, num_classes=...)` returns a `Mixer`: a function
`(images, labels) -> (images, soft_labels)` for `tf.data.Dataset.map`,
after `batch`. It composes Keras's own `keras.layers.MixUp` and
`keras.layers.CutMix` (which take `{"images": ..., "labels": ...}`) and adds
what a classification pipeline needs around them:

- class indices (shape `(batch,)` or `(batch, 1)`) become one-hot rows;
  one-hot or soft rows of width `num_classes` pass as they are;
- CutMix's label weight is the area that was really pasted. Keras's layer
  weighs the labels by the area of a box with fractional corners, while
  the pasted region is made of whole pixels; the mixer lets the layer cut
  and paste a map of where each pixel comes from along with the images
  (its `segmentation_masks` input), and weighs the labels by it, so the
  labels match the images exactly;
- `kind="both"` picks CutMix or MixUp for each batch, with equal chance
  (timm's switch);
- `probability`, a `tf.Variable` read by the pipeline at every batch, is
  the chance that a batch is mixed: `MixOff` sets it to 0 for the last
  epochs, while `model.fit` runs.

The mixer runs TensorFlow ops (the Keras layers switch to TensorFlow inside
`tf.data`, on every backend), so it needs TensorFlow installed, as
`tf.data` does. Called outside `tf.data` it runs the same ops through a
`tf.function` and returns `tf.Tensor`s.
"""

from __future__ import annotations

import keras

from kerasft._src.logs import verbose_message
from kerasft._src.validation import check_choice
from kerasft._src.validation import check_int
from kerasft._src.validation import check_number
from kerasft._src.validation import check_type

MIX_KINDS = ("mixup", "cutmix", "both")
# Beta(alpha, alpha) of the mixing weight when `alpha` is not given: the
# MixUp paper's ImageNet value, and CutMix's (a uniform weight).
_DEFAULT_ALPHA = {"mixup": 0.2, "cutmix": 1.0}


def _tensorflow():
    try:
        import tensorflow as tf
    except ImportError as error:
        raise ImportError(
            "`kerasft.augment.mix` runs in a tf.data pipeline and needs "
            "TensorFlow: pip install tensorflow"
        ) from error
    return tf


def mix(
    kind: str = "mixup",
    *,
    num_classes: int,
    alpha: float | None = None,
    probability: float = 1.0,
    seed: int | None = None,
) -> Mixer:
    """Returns a MixUp/CutMix function for a batched `tf.data` pipeline.

    MixUp blends each image of a batch with another image of the same
    batch, `lam * x1 + (1 - lam) * x2`; CutMix pastes a rectangle of the
    other image, of area `1 - lam`. The labels are mixed with the same
    weight: `lam * y1 + (1 - lam) * y2`. `lam` follows
    `Beta(alpha, alpha)`, drawn for each image. Class indices are turned
    into one-hot rows first, so the labels that come out are always soft
    rows of width `num_classes`: train with
    `keras.losses.CategoricalCrossentropy()` (add `label_smoothing=0.1`
    for label smoothing), not the sparse loss. Accuracy metrics must be
    `"categorical_accuracy"` for the same reason.

    The images come out as `float32`. Map the mixer after `batch` (it
    mixes within a batch) and only on the training data.

    Example:

    ```python
    mixer = kerasft.augment.mix("cutmix", num_classes=10, seed=0)
    train = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(1000)
        .batch(32)
        .map(mixer, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    model.compile(
        "adam",
        keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
        metrics=["categorical_accuracy"],
    )
    # Mix for the first 8 epochs, train on clean images for the last 2.
    model.fit(
        train, epochs=10,
        callbacks=[kerasft.augment.MixOff(mixer, off_epoch=8)],
    )
    ```

    Args:
        kind: str. `"mixup"`, `"cutmix"`, or `"both"` (CutMix or MixUp for
            each batch, with equal chance). Defaults to `"mixup"`.
        num_classes: int. Number of classes, >= 2: the width of the
            one-hot labels.
        alpha: float or None. Concentration of `Beta(alpha, alpha)`, > 0;
            small values mix little, 1 draws `lam` uniformly. CutMix takes
            `alpha <= 1` (the bound of `keras.layers.CutMix`). `None`
            uses 0.2 for MixUp and 1.0 for CutMix. Defaults to `None`.
        probability: float. Chance in [0, 1] that a batch is mixed (the
            others pass with one-hot labels). Defaults to `1.0`.
        seed: int or None. Seed of the Keras layers and of the per-batch
            draws: two mixers with the same seed mix the same batches the
            same way (with a deterministic `map`). Defaults to `None`.

    Returns:
        A `Mixer`: call it with `(images, labels)`.

    Raises:
        ValueError: for an unknown `kind`, a `num_classes` below 2, an
            `alpha` <= 0 (or above 1 with CutMix), or a `probability`
            outside [0, 1].
        TypeError: for an argument of the wrong type.
        ImportError: when TensorFlow is not installed.
    """
    check_choice("kind", kind, MIX_KINDS)
    num_classes = check_int("num_classes", num_classes, minimum=2)
    alpha = check_number(
        "alpha", alpha, minimum=0.0, min_inclusive=False, allow_none=True
    )
    if alpha is not None and alpha > 1 and kind != "mixup":
        raise ValueError(
            "`alpha` must be <= 1 with CutMix (the bound of "
            f"keras.layers.CutMix). Received: alpha={alpha!r} with "
            f"kind={kind!r}"
        )
    probability = check_number(
        "probability", probability, minimum=0.0, maximum=1.0
    )
    seed = check_int("seed", seed, minimum=0, allow_none=True)
    return Mixer(kind, num_classes, alpha, probability, seed)


class Mixer:
    """MixUp and/or CutMix for a `tf.data` pipeline: see `mix`.

    Built by `kerasft.augment.mix`, which checks the arguments. Call it
    with a batch `(images, labels)`; it returns `(images, soft_labels)`.

    Example:

    ```python
    mixer = kerasft.augment.mix("both", num_classes=10, seed=0)
    images, labels = mixer(images, labels)  # or dataset.map(mixer)
    mixer.probability.assign(0.5)  # mix half of the batches from now on
    ```

    Attributes:
        kind, num_classes, alpha, seed: as given to `mix` (`alpha` is
            `None` when each layer uses its default).
        base_probability: float. The `probability` given to `mix`.
        probability: tf.Variable. The chance that a batch is mixed, read at
            every batch; `MixOff` assigns it.
        layers: dict. The Keras layers, `{"mixup": keras.layers.MixUp,
            "cutmix": keras.layers.CutMix}` (those `kind` uses).
    """

    def __init__(self, kind, num_classes, alpha, probability, seed):
        tf = _tensorflow()
        self.kind = kind
        self.num_classes = num_classes
        self.alpha = alpha
        self.seed = seed
        self.base_probability = probability
        self.probability = tf.Variable(
            probability, trainable=False, dtype="float32", name="mix_prob"
        )
        if seed is None:
            self._draws = tf.random.Generator.from_non_deterministic_state()
        else:
            self._draws = tf.random.Generator.from_seed(seed)
        self.layers = {}
        self._channel_axis = (
            1 if keras.config.image_data_format() == "channels_first" else -1
        )
        for index, name in enumerate(("mixup", "cutmix")):
            if kind in (name, "both"):
                self.layers[name] = _layer(name, alpha, seed, index)
        self._function = tf.function(self._mix, reduce_retracing=True)

    def __repr__(self):
        return (
            f"Mixer(kind={self.kind!r}, num_classes={self.num_classes}, "
            f"alpha={self.alpha!r}, probability={self.base_probability}, "
            f"seed={self.seed!r})"
        )

    def __call__(self, images, labels):
        """Mixes a batch: returns `(float32 images, soft labels)`."""
        return self._function(images, labels)

    def _mix(self, images, labels):
        tf = _tensorflow()
        images = tf.convert_to_tensor(images)
        if images.shape.rank != 4:
            raise ValueError(
                "The mixer takes a batch of images, shape (batch, height, "
                "width, channels): map it after `dataset.batch(...)`. "
                f"Received: images.shape={tuple(images.shape)}"
            )
        images = tf.cast(images, "float32")
        labels = _soft_labels(tf, labels, self.num_classes)
        draws = self._draws.uniform([2])

        def mixed():
            if self.kind == "mixup":
                return self._mixup(images, labels)
            if self.kind == "cutmix":
                return self._cutmix(images, labels)
            return tf.cond(
                draws[1] < 0.5,
                lambda: self._cutmix(images, labels),
                lambda: self._mixup(images, labels),
            )

        return tf.cond(
            draws[0] < self.probability, mixed, lambda: (images, labels)
        )

    def _mixup(self, images, labels):
        out = self.layers["mixup"]({"images": images, "labels": labels})
        return out["images"], out["labels"]

    def _cutmix(self, images, labels):
        """CutMix, its labels weighed by the pixels really pasted."""
        tf = _tensorflow()
        own = tf.cast(tf.range(tf.shape(images)[0]), "float32")
        axis = self._channel_axis
        sources = tf.ones_like(tf.gather(images, [0], axis=axis))
        sources *= tf.reshape(own, [-1, 1, 1, 1])
        out = self.layers["cutmix"](
            {"images": images, "segmentation_masks": sources}
        )
        # The index of the image each pixel now comes from.
        sources = tf.gather(out["segmentation_masks"], 0, axis=axis)
        pasted = tf.not_equal(sources, tf.reshape(own, [-1, 1, 1]))
        area = tf.reduce_mean(tf.cast(pasted, "float32"), axis=[1, 2])
        # The image pasted in, or the image itself when nothing was.
        partner = tf.reduce_max(tf.where(pasted, sources, -1.0), axis=[1, 2])
        partner = tf.cast(tf.where(partner < 0, own, partner), "int32")
        area = area[:, None]
        labels = (1.0 - area) * labels + area * tf.gather(labels, partner)
        return out["images"], labels


def _layer(name, alpha, seed, index):
    """Keras's MixUp or CutMix, in float32 whatever the dtype policy."""
    alpha = _DEFAULT_ALPHA[name] if alpha is None else alpha
    seed = None if seed is None else seed + index
    if name == "mixup":
        return keras.layers.MixUp(alpha=alpha, seed=seed, dtype="float32")
    return keras.layers.CutMix(
        factor=(alpha, alpha), seed=seed, dtype="float32"
    )


def _soft_labels(tf, labels, num_classes):
    """One-hot rows for class indices; one-hot or soft rows as float32."""
    labels = tf.convert_to_tensor(labels)
    shape = labels.shape
    if shape.rank == 2 and shape[-1] == num_classes:
        return tf.cast(labels, "float32")
    if shape.rank == 1 or (shape.rank == 2 and shape[-1] == 1):
        if labels.dtype.is_floating:
            tf.debugging.assert_equal(
                labels,
                tf.round(labels),
                message="Class indices must be whole numbers.",
            )
        indices = tf.cast(tf.reshape(labels, [-1]), "int32")
        # A negative index wraps to a large unsigned one: one check.
        tf.debugging.assert_less(
            tf.cast(indices, "uint32"),
            tf.constant(num_classes, "uint32"),
            message=f"Class indices must be >= 0 and < num_classes="
            f"{num_classes}.",
        )
        return tf.one_hot(indices, num_classes, dtype="float32")
    raise ValueError(
        "`labels` must be class indices, shape (batch,) or (batch, 1), or "
        f"one-hot or soft rows, shape (batch, {num_classes}). "
        f"Received: labels.shape={tuple(shape)}"
    )


class MixOff(keras.callbacks.Callback):
    """Stops MixUp/CutMix from epoch `off_epoch` on, inside `model.fit`.

    Training on clean images for the last few epochs lets the model settle
    on the real data distribution (timm's `--mixup-off-epoch`). At the
    start of each epoch the callback sets the mixer's `probability` to its
    value from `mix` before `off_epoch`, and to 0 from `off_epoch` on; the
    `tf.data` pipeline reads it at every batch, on every backend. The
    state depends only on the epoch number, so a run resumed by
    `keras.callbacks.BackupAndRestore` mixes as the uninterrupted run did.
    After `fit` the mixer's probability is set back to its value from
    `mix`. The epoch's probability is written to the logs as
    `mix_probability`.

    Keras makes a new iterator of a finite dataset for each epoch, after
    this callback ran, so the switch is exact. A repeated dataset
    (`dataset.repeat()` with `steps_per_epoch`) keeps one iterator: the
    batches it had already prepared (its `prefetch` buffer) are still
    mixed after the switch.

    Example:

    ```python
    mixer = kerasft.augment.mix("mixup", num_classes=10)
    train = dataset.batch(32).map(mixer)
    model.fit(
        train, epochs=20,
        callbacks=[kerasft.augment.MixOff(mixer, off_epoch=15)],
    )  # epochs 0-14 mixed, 15-19 clean
    ```

    Args:
        mixer: Mixer. The function from `kerasft.augment.mix` that the
            training pipeline maps.
        off_epoch: int. First epoch (counted from 0, as `fit` counts them)
            without mixing, >= 0.
        verbose: int. 1 reports the epoch where mixing stops. Defaults to
            `0`.

    Raises:
        TypeError: for a `mixer` that is not a `Mixer`, or an `off_epoch`
            or `verbose` that is not an int.
        ValueError: for a negative `off_epoch`, or a `verbose` other than
            0 or 1.
    """

    def __init__(self, mixer: Mixer, off_epoch: int, *, verbose: int = 0):
        super().__init__()
        check_type(
            "mixer", mixer, Mixer, "the function kerasft.augment.mix returns"
        )
        self.off_epoch = check_int("off_epoch", off_epoch, minimum=0)
        self.verbose = check_int("verbose", verbose, minimum=0, maximum=1)
        self.mixer = mixer

    def on_epoch_begin(self, epoch, logs=None):
        on = epoch < self.off_epoch
        value = self.mixer.base_probability if on else 0.0
        if self.verbose and epoch == self.off_epoch:
            verbose_message(
                "augment", f"Epoch {epoch + 1}: MixOff stops mixing."
            )
        self.mixer.probability.assign(value)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["mix_probability"] = float(self.mixer.probability.numpy())

    def on_train_end(self, logs=None):
        self.mixer.probability.assign(self.mixer.base_probability)
