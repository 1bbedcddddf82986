"""Ready-made models: a backbone plus a classification head."""

from __future__ import annotations

import keras

from kerasft._src.validation import check_choice
from kerasft._src.validation import check_dropout
from kerasft._src.validation import check_int

HEADS = ("linear", "mlp")


def build_classifier(
    backbone: keras.Model,
    num_classes: int,
    *,
    head: str = "linear",
    dropout: float = 0.0,
    hidden_units: int = 256,
    activation: str | None = "softmax",
    name: str | None = None,
) -> keras.Model:
    """Puts a classification head on a backbone.

    The result is a functional model with the backbone nested as one layer,
    so `kerasft.stages(model)` returns the backbone's stages followed by a
    `head` stage holding the new layers (and the backbone's own pooling).
    It takes the backbone's raw input (0-255 pixels for kerasft backbones).

    Example:

    ```python
    backbone = kerasft.backbones.ResNet50(
        weights=None, input_shape=(64, 64, 3)
    )
    model = kerasft.build_classifier(backbone, num_classes=5, dropout=0.2)
    kerasft.freeze_until(model, "conv4")
    model.compile("adam", "sparse_categorical_crossentropy")
    ```

    Args:
        backbone: keras.Model. A built model with one input, whose output is
            a feature vector `(batch, features)` or a feature map
            `(batch, h, w, channels)` (averaged by a pooling layer).
        num_classes: int. Number of classes, at least 2.
        head: str. `"linear"` (one Dense layer) or `"mlp"` (a hidden ReLU
            Dense layer of `hidden_units`, then the output layer). Defaults
            to `"linear"`.
        dropout: float. Dropout rate before the output layer, in [0, 1).
            Defaults to `0.0` (no dropout layer).
        hidden_units: int. Width of the hidden layer of the `"mlp"` head.
            Defaults to `256`.
        activation: str or None. Activation of the output layer; `None`
            gives logits (compile with `from_logits=True`). Defaults to
            `"softmax"`.
        name: str or None. Model name. Defaults to `"<backbone>_classifier"`.

    Returns:
        A `keras.Model`.

    Raises:
        TypeError: if `backbone` is not a `keras.Model`.
        ValueError: for an unbuilt backbone, a backbone with several inputs,
            or invalid `num_classes`, `head`, `dropout` or `hidden_units`.
    """
    if not isinstance(backbone, keras.Model):
        raise TypeError(
            "`backbone` must be a keras.Model. "
            f"Received: backbone={backbone!r} of type "
            f"{type(backbone).__name__}"
        )
    if not backbone.built or not getattr(backbone, "inputs", None):
        raise ValueError(
            f"`backbone` '{backbone.name}' must be a built model with a "
            "defined input (start it with `keras.Input`). "
            f"Received: backbone={backbone.name!r}"
        )
    if len(backbone.inputs) != 1:
        raise ValueError(
            "`build_classifier` needs a backbone with exactly one input. "
            f"Received: backbone with {len(backbone.inputs)} inputs"
        )
    check_head_args(num_classes, head, dropout, hidden_units)
    input_shape = tuple(backbone.inputs[0].shape[1:])
    inputs = keras.Input(shape=input_shape, name=backbone.inputs[0].name)
    x = backbone(inputs)
    rank = len(x.shape)
    if rank == 4:
        x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    elif rank == 3:
        x = keras.layers.GlobalAveragePooling1D(name="head_pool")(x)
    elif rank != 2:
        raise ValueError(
            "The backbone's output must have rank 2, 3 or 4. "
            f"Received: output shape {tuple(x.shape)}"
        )
    outputs = add_head(x, num_classes, head, dropout, hidden_units, activation)
    return keras.Model(
        inputs, outputs, name=name or f"{backbone.name}_classifier"
    )


def check_head_args(num_classes, head, dropout, hidden_units) -> None:
    """Validates the head arguments shared by the model builders."""
    check_int("num_classes", num_classes, minimum=2)
    check_choice("head", head, HEADS)
    check_dropout("dropout", dropout)
    check_int("hidden_units", hidden_units, minimum=1)


def add_head(x, num_classes, head, dropout, hidden_units, activation):
    """Adds the classification head layers to the tensor `x`."""
    if head == "mlp":
        x = keras.layers.Dense(
            hidden_units, activation="relu", name="head_hidden"
        )(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    # float32 under a mixed dtype policy too: the softmax and the loss
    # need its range (Keras's mixed precision guide).
    return keras.layers.Dense(
        num_classes, activation=activation, name="predictions", dtype="float32"
    )(x)
