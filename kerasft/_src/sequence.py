"""Recurrent sequence models (LSTM, GRU) with named stages.

`build_sequence_classifier` and `build_language_model` return functional
models whose stages (`kerasft.stages(model)`) are `embedding`, one stage per
recurrent layer (`rnn_0` .. `rnn_{N-1}`; a `Bidirectional` wrapper is one
stage) and `head`. The recurrent layers are top-level layers named after
their stage, and the head is a nested model named `head`, so the generic
stage split of `kerasft.stages` gives these names without a special rule.
Freezing, `kerasft.callbacks.UnfreezeSchedule` and discriminative learning
rates therefore work on them as on any backbone.

`classifier_from_pretrained` puts a new classification head on the
embedding and recurrent layers of a trained model (for example a language
model built with `build_language_model`): ULMFiT's pretrain-then-fine-tune
recipe; for that, `pooling="concat"` (the `SequencePooling` layer) reads
the last valid step, the max and the mean of the top layer over time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import keras

from kerasft._src import walk
from kerasft._src.models import add_head
from kerasft._src.validation import check_bool
from kerasft._src.validation import check_choice
from kerasft._src.validation import check_dropout
from kerasft._src.validation import check_int

CELLS = ("lstm", "gru")
POOLINGS = ("last", "mean", "max", "concat")

_RNN_NAME = re.compile(r"rnn_(\d+)")


def _layer_units(units, num_layers) -> list[int]:
    """Returns the width of every recurrent layer."""
    if isinstance(units, (list, tuple)):
        if not units:
            raise ValueError(
                "`units` must be an int or a non-empty list of ints. "
                f"Received: units={units!r}"
            )
        for value in units:
            check_int("units", value, minimum=1)
        if num_layers is not None:
            check_int("num_layers", num_layers, minimum=1)
            if num_layers != len(units):
                raise ValueError(
                    "`units` is a list, so its length is the number of "
                    "recurrent layers; `num_layers` must be None or equal "
                    f"to it. Received: units={list(units)!r} "
                    f"(length {len(units)}), num_layers={num_layers}"
                )
        return list(units)
    check_int("units", units, minimum=1)
    num_layers = 2 if num_layers is None else num_layers
    check_int("num_layers", num_layers, minimum=1)
    return [units] * num_layers


def _recurrent_layer(cell, units, *, return_sequences, dropout, name):
    layer_class = keras.layers.LSTM if cell == "lstm" else keras.layers.GRU
    return layer_class(
        units, return_sequences=return_sequences, dropout=dropout, name=name
    )


@keras.saving.register_keras_serializable(package="kerasft")
class SequencePooling(keras.layers.Layer):
    """Pools a masked sequence `(batch, steps, features)` over time.

    `"last"` takes the output at the last valid step (the last step whose
    mask is true, so left and right padding both work), `"mean"` and
    `"max"` pool over the valid steps only, and `"concat"` concatenates
    last, max and mean (ULMFiT's concat pooling), giving `3 * features`.
    Without a mask every step is valid. A row with no valid step pools to
    zeros.

    Example:

    ```python
    x = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(100, 8, mask_zero=True)(x)
    h = keras.layers.LSTM(16, return_sequences=True)(h)
    features = kerasft.sequence.SequencePooling("concat")(h)  # (None, 48)
    ```

    Args:
        mode: str. One of `"last"`, `"mean"`, `"max"`, `"concat"`.
            Defaults to `"concat"`.
        **kwargs: Base `keras.layers.Layer` arguments (`name`, `dtype`).

    Raises:
        ValueError: for an unknown `mode`.
    """

    def __init__(self, mode: str = "concat", **kwargs):
        super().__init__(**kwargs)
        check_choice("mode", mode, POOLINGS)
        self.mode = mode
        self.supports_masking = True

    def call(self, inputs, mask=None):
        ops = keras.ops
        steps = ops.shape(inputs)[1]
        if mask is None:
            valid = ops.ones(ops.shape(inputs)[:2], dtype="bool")
        else:
            valid = ops.cast(mask, "bool")
        weights = ops.expand_dims(ops.cast(valid, inputs.dtype), -1)
        count = ops.sum(weights, axis=1)
        any_valid = ops.cast(count > 0, inputs.dtype)
        parts = {}
        if self.mode in ("last", "concat"):
            # Index of the last valid step: argmax of (t + 1) * valid.
            position = ops.arange(1, steps + 1, dtype="int32")
            score = ops.cast(valid, "int32") * ops.expand_dims(position, 0)
            index = ops.argmax(score, axis=1)
            index = ops.reshape(ops.cast(index, "int32"), (-1, 1, 1))
            last = ops.take_along_axis(inputs, index, axis=1)[:, 0, :]
            parts["last"] = last * any_valid
        if self.mode in ("max", "concat"):
            lowest = ops.min(inputs) - 1.0
            masked = ops.where(ops.expand_dims(valid, -1), inputs, lowest)
            parts["max"] = ops.max(masked, axis=1) * any_valid
        if self.mode in ("mean", "concat"):
            total = ops.sum(inputs * weights, axis=1)
            parts["mean"] = total / ops.maximum(count, 1.0)
        if self.mode == "concat":
            return ops.concatenate(
                [parts["last"], parts["max"], parts["mean"]], axis=-1
            )
        return parts[self.mode]

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        features = input_shape[-1]
        if self.mode == "concat" and features is not None:
            features = 3 * features
        return (input_shape[0], features)

    def get_config(self):
        config = super().get_config()
        config["mode"] = self.mode
        return config


def _head_model(features, num_classes, dropout, activation, pooling="last"):
    """The `head` stage: a nested model ([pooling,] dropout and dense).

    With `pooling="last"` the head reads the top recurrent layer's final
    output `(batch, features)`; otherwise it reads the whole sequence
    `(batch, steps, features)` with its mask and pools it first.
    """
    if pooling == "last":
        inputs = keras.Input(shape=(features,), name="head_input")
        x = inputs
    else:
        inputs = keras.Input(shape=(None, features), name="head_input")
        x = SequencePooling(pooling, name="pooling")(inputs)
    outputs = add_head(x, num_classes, "linear", dropout, 1, activation)
    return keras.Model(inputs, outputs, name="head")


def _token_embedding(vocab_size, embedding_dim, mask_zero, sequence_length):
    """The int token input and its `embedding` stage, shared by the models."""
    inputs = keras.Input(
        shape=(sequence_length,), dtype="int32", name="token_ids"
    )
    x = keras.layers.Embedding(
        vocab_size, embedding_dim, mask_zero=mask_zero, name="embedding"
    )(inputs)
    return inputs, x


def _check_classifier_args(num_classes, dropout):
    check_int("num_classes", num_classes, minimum=2)
    check_dropout("head_dropout", dropout)


# --------------------------------------------------------------------------
# Builders.


def build_sequence_classifier(
    vocab_size: int,
    num_classes: int,
    *,
    cell: str = "lstm",
    bidirectional: bool = False,
    units: int | Sequence[int] = 64,
    num_layers: int | None = None,
    embedding_dim: int = 64,
    dropout: float = 0.0,
    head_dropout: float = 0.0,
    mask_zero: bool = True,
    sequence_length: int | None = None,
    pooling: str = "last",
    activation: str | None = "softmax",
    name: str | None = None,
) -> keras.Model:
    """Builds a recurrent text classifier with named stages.

    Token ids go through an `Embedding` (stage `embedding`), then
    `num_layers` LSTM or GRU layers (stages `rnn_0` .. `rnn_{N-1}`, each
    optionally wrapped in `Bidirectional`), then the `head` (a nested model:
    dropout and a dense classifier) reads the final output of the top
    recurrent layer: its output at the last valid step, and for a
    bidirectional layer the final state of both directions. With
    `pooling="mean"`, `"max"` or `"concat"` the head starts with a
    `SequencePooling` layer over the top layer's whole sequence instead.
    With `mask_zero=True`, id 0 is padding: every recurrent layer and the
    pooling skip it, so the output does not depend on how much padding a
    sequence has, nor on which side.

    Example:

    ```python
    model = kerasft.sequence.build_sequence_classifier(
        vocab_size=5000, num_classes=2, bidirectional=True, units=[64, 32]
    )
    [s.name for s in kerasft.stages(model)]
    # ['embedding', 'rnn_0', 'rnn_1', 'head']
    kerasft.freeze_until(model, "rnn_0")  # rnn_1 and head train
    ```

    Args:
        vocab_size: int >= 2. Number of token ids (including 0, the padding
            id when `mask_zero=True`).
        num_classes: int >= 2. Number of classes.
        cell: str. `"lstm"` or `"gru"`. Defaults to `"lstm"`.
        bidirectional: bool. Whether each recurrent layer reads both
            directions (`keras.layers.Bidirectional`, outputs concatenated).
            Defaults to `False`.
        units: int or list of int. Width of every recurrent layer, or one
            width per layer (then the list's length is the number of
            layers). Defaults to `64`.
        num_layers: int >= 1 or None. Number of recurrent layers. Defaults
            to `None`: `len(units)` for a list, else `2`.
        embedding_dim: int >= 1. Size of the token embeddings. Defaults to
            `64`.
        dropout: float in [0, 1). Dropout on the inputs of every recurrent
            layer (the layers' own `dropout` argument). Defaults to `0.0`.
        head_dropout: float in [0, 1). Dropout before the classifier.
            Defaults to `0.0`.
        mask_zero: bool. Whether id 0 is padding. Defaults to `True`.
        sequence_length: int or None. Fixed input length, or `None` for any
            length. Defaults to `None`.
        pooling: str. What the head reads from the top recurrent layer:
            `"last"` (its output at the last valid step), `"mean"` or
            `"max"` over the valid steps, or `"concat"` (last, max and
            mean concatenated: ULMFiT's concat pooling, three times as
            wide). Padding never counts. Defaults to `"last"`.
        activation: str or None. Activation of the output layer; `None`
            gives logits. Defaults to `"softmax"`.
        name: str or None. Model name. Defaults to `"<cell>_classifier"`.

    Returns:
        A functional `keras.Model` taking int token ids `(batch, length)`.

    Raises:
        TypeError: for an argument of the wrong type (for example a float
            `units` or a non-bool `bidirectional`).
        ValueError: for a value out of range, an unknown `cell`, or a
            `units` list whose length differs from
            `num_layers`.
    """
    check_int("vocab_size", vocab_size, minimum=2)
    _check_classifier_args(num_classes, head_dropout)
    check_choice("cell", cell, CELLS)
    check_bool("bidirectional", bidirectional)
    widths = _layer_units(units, num_layers)
    check_int("embedding_dim", embedding_dim, minimum=1)
    check_dropout("dropout", dropout)
    check_bool("mask_zero", mask_zero)
    check_int("sequence_length", sequence_length, minimum=1, allow_none=True)
    check_choice("pooling", pooling, POOLINGS)

    inputs, x = _token_embedding(
        vocab_size, embedding_dim, mask_zero, sequence_length
    )
    for i, width in enumerate(widths):
        last = i == len(widths) - 1
        name_i = f"rnn_{i}"
        layer = _recurrent_layer(
            cell,
            width,
            return_sequences=not last or pooling != "last",
            dropout=dropout,
            name=f"{cell}_{i}" if bidirectional else name_i,
        )
        if bidirectional:
            layer = keras.layers.Bidirectional(layer, name=name_i)
        x = layer(x)
    head = _head_model(
        x.shape[-1], num_classes, head_dropout, activation, pooling
    )
    outputs = head(x)
    return keras.Model(inputs, outputs, name=name or f"{cell}_classifier")


def build_language_model(
    vocab_size: int,
    *,
    cell: str = "lstm",
    units: int | Sequence[int] = 64,
    num_layers: int | None = None,
    embedding_dim: int = 64,
    dropout: float = 0.0,
    mask_zero: bool = True,
    sequence_length: int | None = None,
    name: str | None = None,
) -> keras.Model:
    """Builds a recurrent next-token language model with named stages.

    The stages are those of `build_sequence_classifier` (`embedding`,
    `rnn_0` .. `rnn_{N-1}`, `head`); the head is a `Dense` layer named
    `head` that gives logits over the vocabulary at every time step (with
    `mask_zero=True` the padding mask reaches the loss, so padded targets
    do not count). The recurrent layers
    read left to right only (a bidirectional layer would see the token it
    must predict). Train it on `x = ids[:, :-1]`, `y = ids[:, 1:]` with
    `SparseCategoricalCrossentropy(from_logits=True)`, then pass it to
    `classifier_from_pretrained`.

    Example:

    ```python
    lm = kerasft.sequence.build_language_model(vocab_size=5000, units=128)
    lm.compile(
        "adam",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    lm.fit(ids[:, :-1], ids[:, 1:], epochs=2)
    clf = kerasft.sequence.classifier_from_pretrained(lm, num_classes=2)
    ```

    Args:
        vocab_size: int >= 2. Number of token ids (including 0, the padding
            id when `mask_zero=True`).
        cell: str. `"lstm"` or `"gru"`. Defaults to `"lstm"`.
        units: int or list of int. As in `build_sequence_classifier`.
            Defaults to `64`.
        num_layers: int >= 1 or None. As in `build_sequence_classifier`.
            Defaults to `None`.
        embedding_dim: int >= 1. Size of the token embeddings. Defaults to
            `64`.
        dropout: float in [0, 1). Dropout on the inputs of every recurrent
            layer. Defaults to `0.0`.
        mask_zero: bool. Whether id 0 is padding. Defaults to `True`.
        sequence_length: int or None. Fixed input length, or `None`.
            Defaults to `None`.
        name: str or None. Model name. Defaults to `"<cell>_language_model"`.

    Returns:
        A functional `keras.Model` mapping ids `(batch, length)` to logits
        `(batch, length, vocab_size)`.

    Raises:
        TypeError, ValueError: as for `build_sequence_classifier`.
    """
    check_int("vocab_size", vocab_size, minimum=2)
    check_choice("cell", cell, CELLS)
    widths = _layer_units(units, num_layers)
    check_int("embedding_dim", embedding_dim, minimum=1)
    check_dropout("dropout", dropout)
    check_bool("mask_zero", mask_zero)
    check_int("sequence_length", sequence_length, minimum=1, allow_none=True)

    inputs, x = _token_embedding(
        vocab_size, embedding_dim, mask_zero, sequence_length
    )
    for i, width in enumerate(widths):
        x = _recurrent_layer(
            cell, width, return_sequences=True, dropout=dropout, name=f"rnn_{i}"
        )(x)
    outputs = keras.layers.Dense(vocab_size, name="head")(x)
    return keras.Model(inputs, outputs, name=name or f"{cell}_language_model")


# --------------------------------------------------------------------------
# Transfer.


def _encoder_layers(model):
    """The `embedding` and `rnn_N` top-level layers of a model, in order."""
    children = walk.children(model)
    names = [layer.name for layer in children]
    embedding = [layer for layer in children if layer.name == "embedding"]
    recurrent = {}
    for layer in children:
        match = _RNN_NAME.fullmatch(layer.name)
        if match:
            recurrent[int(match.group(1))] = layer
    if not embedding or not recurrent:
        raise ValueError(
            f"Model '{model.name}' has no recurrent encoder to transfer: "
            "`classifier_from_pretrained` needs top-level layers named "
            "'embedding' and 'rnn_0', 'rnn_1', ... (as built by "
            "`build_language_model` or `build_sequence_classifier`). "
            f"Received: a model with layers {names}"
        )
    if sorted(recurrent) != list(range(len(recurrent))):
        raise ValueError(
            f"The recurrent layers of model '{model.name}' must be numbered "
            "rnn_0, rnn_1, ... without gaps. "
            f"Received: {['rnn_' + str(i) for i in sorted(recurrent)]}"
        )
    return embedding[0], [recurrent[i] for i in range(len(recurrent))]


def _set_return_sequences(config, value):
    """Sets `return_sequences` in a serialized RNN or Bidirectional layer."""
    inner = config["config"]
    if config["class_name"] == "Bidirectional":
        for key in ("layer", "backward_layer"):
            if inner.get(key) is not None:
                inner[key]["config"]["return_sequences"] = value
    else:
        inner["return_sequences"] = value
    return config


def _copy_layer(layer, return_sequences=None):
    config = keras.layers.serialize(layer)
    if return_sequences is not None:
        config = _set_return_sequences(config, return_sequences)
    return keras.layers.deserialize(config)


def classifier_from_pretrained(
    model: keras.Model,
    num_classes: int,
    *,
    head_dropout: float = 0.0,
    sequence_length: int | None = None,
    pooling: str = "last",
    activation: str | None = "softmax",
    name: str | None = None,
) -> keras.Model:
    """Puts a new classification head on a trained recurrent encoder.

    The `embedding` and `rnn_N` layers of `model` (a language model from
    `build_language_model`, or a classifier from `build_sequence_classifier`
    trained on another task) are copied with their weights into a new
    classifier; the old head is dropped. The result has the same stages as
    `build_sequence_classifier` and shares no variables with `model`, so
    fine-tuning it leaves `model` unchanged.

    Example:

    ```python
    clf = kerasft.sequence.classifier_from_pretrained(lm, num_classes=2)
    clf.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    clf.fit(
        x,
        y,
        epochs=4,
        callbacks=[kerasft.callbacks.UnfreezeSchedule.gradual()],
    )
    ```

    Args:
        model: keras.Model. A built model with top-level layers named
            `embedding`, `rnn_0`, `rnn_1`, ...
        num_classes: int >= 2. Number of classes of the new head.
        head_dropout: float in [0, 1). Dropout before the classifier.
            Defaults to `0.0`.
        sequence_length: int or None. As in `build_sequence_classifier`.
        pooling: str. `"last"`, `"mean"`, `"max"` or `"concat"`, as in
            `build_sequence_classifier`. For a language model's encoder
            `"concat"` usually works much better: the state at the last
            token mostly predicts what follows it. Defaults to `"last"`.
        activation: str or None. Activation of the output layer. Defaults
            to `"softmax"`.
        name: str or None. Model name. Defaults to
            `"<model name>_classifier"`.

    Returns:
        A new functional `keras.Model`.

    Raises:
        TypeError: if `model` is not a `keras.Model`, or for an argument of
            the wrong type.
        ValueError: if `model` has no `embedding` and `rnn_N` layers, is not
            built, or for an invalid `num_classes` or `head_dropout`.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            "`model` must be a keras.Model. "
            f"Received: model={model!r} of type {type(model).__name__}"
        )
    if not model.built:
        raise ValueError(
            f"`model` '{model.name}' must be built (trained) before its "
            f"encoder can be transferred. Received: model={model.name!r}"
        )
    _check_classifier_args(num_classes, head_dropout)
    check_int("sequence_length", sequence_length, minimum=1, allow_none=True)
    check_choice("pooling", pooling, POOLINGS)
    embedding, recurrent = _encoder_layers(model)

    inputs = keras.Input(
        shape=(sequence_length,), dtype="int32", name="token_ids"
    )
    new_embedding = _copy_layer(embedding)
    x = new_embedding(inputs)
    pairs = [(embedding, new_embedding)]
    for i, layer in enumerate(recurrent):
        last = i == len(recurrent) - 1
        new_layer = _copy_layer(
            layer, return_sequences=not last or pooling != "last"
        )
        x = new_layer(x)
        pairs.append((layer, new_layer))
    for old, new in pairs:
        new.set_weights(old.get_weights())
    head = _head_model(
        x.shape[-1], num_classes, head_dropout, activation, pooling
    )
    outputs = head(x)
    return keras.Model(inputs, outputs, name=name or f"{model.name}_classifier")
