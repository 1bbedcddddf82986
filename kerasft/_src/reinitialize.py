"""Re-initialize the layers of chosen stages with their own initializers.

Zhang et al. 2021, "Revisiting few-sample BERT fine-tuning": re-drawing the
top pretrained layers helps when they are too specialised for the new task.
"""

from __future__ import annotations

import random as python_random

import keras
import numpy as np

from kerasft._src import keras_internals
from kerasft._src.stages import Target
from kerasft._src.stages import resolve_layers
from kerasft._src.validation import check_int
from kerasft._src.validation import check_model
from kerasft._src.walk import sublayers


def _own_variables(layer) -> list:
    """The variables a layer creates itself (not those of its sublayers)."""
    inner = {id(v) for sub in sublayers(layer)[1:] for v in sub.weights}
    return [v for v in layer.weights if id(v) not in inner]


def _seeded(initializer, seed):
    """A copy of `initializer` drawing from `seed`, if it is random."""
    if not isinstance(initializer, keras.initializers.Initializer):
        return initializer
    config = initializer.get_config()
    if "seed" not in config:
        return initializer
    config["seed"] = seed
    return type(initializer).from_config(config)


def _new_value(layer, variable, initializer, seed):
    dtype = variable.dtype
    value = keras_internals.unit_forget_bias(
        layer,
        variable,
        lambda part, shape: _seeded(initializer, seed + part)(
            shape, dtype=dtype
        ),
    )
    if value is not None:
        return value
    return _seeded(initializer, seed)(tuple(variable.shape), dtype=dtype)


def _variable_seeds(seed, count):
    if seed is None:
        # Keras initializers seeded with `None` draw one default seed when
        # they are created and then repeat their values on every call, so a
        # layer's own initializer would give back its first values. Fresh
        # seeds from Python's generator (seeded by
        # `keras.utils.set_random_seed`) give new values instead.
        return [python_random.randint(1, 10**9) for _ in range(count)]
    state = np.random.SeedSequence(seed).generate_state(count)
    return [int(s) % (2**31 - 1) for s in state]


def reinitialize(
    model: keras.Model, target: Target, *, seed: int | None = None
):
    """Re-initializes the layers of chosen stages with their own initializers.

    Every variable of the targeted layers, and of the layers they hold
    (the projections of `MultiHeadAttention`, the sublayers of a keras-hub
    `TransformerEncoder`, the cell of an `LSTM`), gets a fresh value from
    the initializer its layer was built with: `kernel_initializer`,
    `bias_initializer`, `recurrent_initializer`, `depthwise_initializer`,
    `embeddings_initializer`, BatchNormalization's `gamma`/`beta`/
    `moving_mean`/`moving_variance` initializers, and so on (an LSTM keeps
    its forget-gate bias of 1 when `unit_forget_bias=True`). Other layers
    are left bit-identical. This is the re-initialization of the top layers
    of Zhang et al. 2021 ("Revisiting few-sample BERT fine-tuning").

    With a `seed`, each variable draws from its own seed derived from it, in
    model order, so the same seed gives identical weights on every run.
    Without one, each call draws new values (from seeds of Python's
    generator, which `keras.utils.set_random_seed` seeds).
    Re-initialize before `compile`/`fit`: an optimizer that already has
    slots (Adam moments) for these variables keeps them.

    Example:

    ```python
    # Re-draw the last two Transformer blocks of a BERT-like model.
    kerasft.regularizers.reinitialize(
        model, ["transformer_layer_10", "transformer_layer_11"], seed=0
    )
    ```

    Args:
        model: keras.Model. A built model.
        target: The stages or layers: anything `kerasft.resolve_layers`
            accepts (a stage name, layer name, regex, index, Layer, or a
            list of these).
        seed: int or None. Seed for reproducible values. Defaults to `None`
            (new values on each call).

    Returns:
        The list of variables that were re-initialized, in model order.

    Raises:
        ValueError: for an unbuilt model, an unknown stage or layer, targeted
            layers without weights, or a variable whose layer has no
            initializer for it.
        TypeError: for a target or seed of another type.
    """
    check_model(model, weights=True, purpose="reinitialize")
    check_int("seed", seed, minimum=0, allow_none=True)
    leaves = resolve_layers(model, target)
    work = []  # (layer, variable, initializer)
    seen = set()
    for leaf in leaves:
        for layer in sublayers(leaf):
            for variable in _own_variables(layer):
                if id(variable) in seen:
                    continue
                seen.add(id(variable))
                initializer = keras_internals.initializer_for(layer, variable)
                if initializer is None:
                    raise ValueError(
                        f"Cannot re-initialize variable {variable.path!r}: "
                        f"layer '{layer.name}' ({type(layer).__name__}) has "
                        f"no initializer for '{variable.name}' (looked for "
                        f"`{variable.name}_initializer` and `initializer`). "
                        "Leave this layer out of the target. "
                        f"Received: target={target!r}"
                    )
                work.append((layer, variable, initializer))
    if not work:
        names = [leaf.name for leaf in leaves]
        raise ValueError(
            f"The target selects layers without weights ({names}), so there "
            f"is nothing to re-initialize. Received: target={target!r}"
        )
    seeds = _variable_seeds(seed, len(work))
    # Inside `fit` the new values must reach the trainer (JAX holds them
    # apart from the variables); the optimizer and the steps stay as they
    # are.
    with keras_internals.mutating(model, optimizer="keep", steps="keep"):
        for (layer, variable, initializer), s in zip(work, seeds):
            variable.assign(_new_value(layer, variable, initializer, s))
    return [variable for _, variable, _ in work]
