"""Recompute BatchNormalization moving statistics for the current weights.

Averaged weights (SWA, an EMA, WiSE-FT) come with averaged BatchNorm
moving statistics, which are not the statistics of the averaged network's
activations. Izmailov et al. (2018) recompute them with one pass over
training data; `torch.optim.swa_utils.update_bn` does the same. Here each
trainable BN layer is run in training mode with its `momentum` set so
that its moving mean and variance become the plain average of the
per-batch statistics.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from kerasft._src import walk
from kerasft._src.logs import get_logger
from kerasft._src.validation import check_int
from kerasft._src.validation import check_model


def recompute_bn_statistics(
    model: keras.Model,
    data: Any,
    *,
    batch_size: int = 32,
    steps: int | None = None,
) -> list[str]:
    """Recomputes the moving statistics of the model's trainable BN layers.

    Runs the model once over `data` in training mode and sets the moving
    mean and variance of every `keras.layers.BatchNormalization` layer
    whose `trainable` is True to the average of its per-batch mean and
    variance (a cumulative average, like `torch.optim.swa_utils.update_bn`).
    Call it after writing averaged weights into a model whose BN layers
    trained. Frozen BN layers (`trainable=False`, kerasft's default
    `bn="frozen"` policy) run in inference mode and keep their statistics;
    every other weight is left as it is. Dropout and other random layers
    run in training mode during the pass, as in PyTorch's `update_bn`.

    Example:

    ```python
    kerasft.recompute_bn_statistics(model, x_train, batch_size=64)
    ```

    Args:
        model: keras.Model. A built model, changed in place.
        data: The inputs to run: an array (or a list or dict of arrays, as
            the model takes), cut into batches of `batch_size`; or a
            `tf.data.Dataset`, a `keras.utils.PyDataset` or an iterable of
            batches, each the inputs `x` or a tuple `(x, y)` or
            `(x, y, sample_weight)` (the targets are ignored).
        batch_size: int. Batch size for arrays. Defaults to `32`.
        steps: int or None. Most batches to run. Defaults to `None` (all
            of `data`).

    Returns:
        The paths (`layer.path`) of the layers recomputed, in model order;
        empty when no BN layer is trainable (then `data` is not read).

    Raises:
        TypeError: for a `model`, `batch_size`, `steps` or `data` of the
            wrong type.
        ValueError: for an unbuilt model, a `batch_size` or `steps` below
            1, or `data` without a batch (nothing changes then).
    """
    check_model(model, weights=True, purpose="recompute_bn_statistics")
    batch_size = check_int("batch_size", batch_size, minimum=1)
    steps = check_int("steps", steps, minimum=1, allow_none=True)
    batches = input_batches(data, batch_size)
    layers = [
        layer
        for layer in walk.sublayers(model)
        if isinstance(layer, keras.layers.BatchNormalization)
        and layer.trainable
    ]
    if not layers:
        get_logger().info(
            "recompute_bn_statistics: no trainable BatchNormalization layer"
            " in model %r; nothing to recompute.",
            model.name,
        )
        return []
    momenta = [layer.momentum for layer in layers]
    count = 0
    try:
        for x in batches():
            if steps is not None and count >= steps:
                break
            count += 1
            # Momentum (k - 1) / k makes the moving value after batch k the
            # mean of the first k batch statistics.
            for layer in layers:
                layer.momentum = (count - 1) / count
            model(x, training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    if count == 0:
        raise ValueError(
            "`data` gave no batch, so no BatchNormalization statistics "
            f"could be computed. Received: data of type {type(data).__name__}"
        )
    get_logger().info(
        "recompute_bn_statistics: %d BatchNormalization layers from %d "
        "batches.",
        len(layers),
        count,
    )
    return [layer.path for layer in layers]


def input_batches(data: Any, batch_size: int, name: str = "data"):
    """A function returning a fresh iterator over the input part of `data`.

    `name` is the argument's name for the messages.

    Raises:
        TypeError: for `data` that is none of the accepted kinds.
        ValueError: for arrays without a sample.
    """
    leaves = keras.tree.flatten(data) if _is_structure(data) else []
    if _is_array(data) or (leaves and all(_is_array(a) for a in leaves)):
        leaves = keras.tree.flatten(data)
        count = int(leaves[0].shape[0]) if leaves[0].shape else 0
        if count == 0:
            raise ValueError(
                f"`{name}` must hold at least one sample. Received: {name} "
                f"with shape {tuple(leaves[0].shape)}"
            )

        def arrays():
            for begin in range(0, count, batch_size):
                yield keras.tree.map_structure(
                    lambda a, b=begin: a[b : b + batch_size], data
                )

        return arrays
    if isinstance(data, keras.utils.PyDataset):

        def py_dataset():
            for i in range(len(data)):
                yield _inputs(data[i])

        return py_dataset
    if hasattr(data, "as_numpy_iterator"):  # tf.data.Dataset

        def dataset():
            for batch in data.as_numpy_iterator():
                yield _inputs(batch)

        return dataset
    if hasattr(data, "__iter__") and not isinstance(
        data, (str, bytes, dict, list, tuple)
    ):

        def iterable():
            for batch in data:
                yield _inputs(batch)

        return iterable
    raise TypeError(
        f"`{name}` must be an array (or a list or dict of arrays), a "
        "tf.data.Dataset, a keras.utils.PyDataset or an iterable of "
        f"batches. Received: {name}={_short(data)} of type "
        f"{type(data).__name__}"
    )


def _inputs(batch):
    return keras.utils.unpack_x_y_sample_weight(batch)[0]


def _is_structure(data):
    return isinstance(data, (list, tuple, dict))


def _is_array(x):
    return isinstance(x, np.ndarray) or keras.ops.is_tensor(x)


def _short(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
