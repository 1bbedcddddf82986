"""Reference weights (w0) given for a model, checked against its weights.

L2-SP pulls weights towards them (`kerasft.regularizers.L2SP.apply`) and
WiSE-FT mixes them in (`kerasft.interpolate`). Both take the same forms:
a `keras.Model` with the same weights, a list of arrays in the order of
`model.weights`, or a dict `{variable.path: array}`.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from kerasft._src.validation import check_model

FORMS = (
    "a keras.Model with the same weights, a list of arrays in the order of "
    "`model.weights`, or a dict {variable.path: array}"
)


def reference_pairs(model: keras.Model, reference: Any, *, forms: str = FORMS):
    """Pairs `(variable, array)` for every weight of `model`.

    Args:
        model: the model whose weights the reference is for.
        reference: a keras.Model, a list or tuple of arrays, or a dict
            keyed by `variable.path`.
        forms: what the caller accepts, for the TypeError's message.

    Raises:
        TypeError: for a reference of another type.
        ValueError: for a count, a key, a shape or a dtype that does not
            match `model.weights`.
    """
    weights = model.weights
    if isinstance(reference, keras.Model):
        check_model(reference, weights=True, name="reference")
        source = f"model {reference.name!r}"
        values = [keras.ops.convert_to_numpy(v) for v in reference.weights]
    elif isinstance(reference, Mapping):
        source = "the dict"
        _check_keys(model, reference)
        values = [reference[v.path] for v in weights]
    elif isinstance(reference, (list, tuple)):
        source = "the list"
        values = list(reference)
    else:
        raise TypeError(
            f"`reference` must be {forms}. Received: "
            f"reference={reprlib.repr(reference)} of type "
            f"{type(reference).__name__}"
        )
    if len(values) != len(weights):
        raise ValueError(
            f"`reference` must have one array per weight of model "
            f"'{model.name}' ({len(weights)}), in the order of "
            f"`model.weights`. Received: {len(values)} arrays from {source}"
        )
    return [
        checked_pair(v, value, model, source)
        for v, value in zip(weights, values)
    ]


def checked_pair(variable, value, model, source):
    """`(variable, array)` after checking the array's shape and dtype."""
    array = np.asarray(keras.ops.convert_to_numpy(value))
    if tuple(array.shape) != tuple(variable.shape):
        raise ValueError(
            f"`reference` does not match model '{model.name}': weight "
            f"{variable.path!r} has shape {tuple(variable.shape)}, the "
            f"reference has shape {tuple(array.shape)}. Received: reference "
            f"from {source}"
        )
    if np.issubdtype(np.dtype(variable.dtype), np.floating) and not (
        np.issubdtype(array.dtype, np.number)
    ):
        raise ValueError(
            f"`reference` for weight {variable.path!r} must hold numbers. "
            f"Received: dtype {array.dtype} from {source}"
        )
    return variable, array


def _check_keys(model, reference):
    paths = {v.path for v in model.weights}
    missing = [v.path for v in model.weights if v.path not in reference]
    extra = sorted(str(k) for k in set(reference) - paths)
    if missing or extra:
        name = missing[0] if missing else extra[0]
        raise ValueError(
            f"`reference` does not match model '{model.name}': "
            f"weight {name!r} is "
            f"{'missing from' if missing else 'not a weight of'} "
            f"{'the dict' if missing else 'the model'}. Keys must be "
            "the paths of `model.weights`. Received: "
            f"{len(reference)} keys, {len(missing)} missing, "
            f"{len(extra)} unknown"
        )
