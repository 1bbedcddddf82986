"""Parameter-efficient fine-tuning: LoRA and BitFit, targeted by stage.

Both functions choose which *variables* train, below the level of layers:
LoRA trains small low-rank factors added to frozen kernels, BitFit trains
only the bias vectors. They build on Keras itself: `enable_lora` calls
Keras's own `layer.enable_lora(rank, lora_alpha=...)`, which exists on
`Dense`, `EinsumDense`, `Embedding` and the convolution layers (`Conv1D`,
`Conv2D`, `Conv3D` and their transposes), and both mark the other variables
`trainable=False`.

Because a layer's `trainable` setter resets the flags of all its variables,
call `enable_lora` / `bitfit` after any `kerasft.freeze` / `unfreeze` /
`freeze_until`: unfreezing an adapted layer afterwards makes all of its
weights train again.
"""

from __future__ import annotations

import json
from typing import Any

import keras
import numpy as np

from kerasft._src import adapters
from kerasft._src import keras_internals
from kerasft._src import walk
from kerasft._src.stages import _check_model
from kerasft._src.validation import check_path
from kerasft._src.validation import reading


def lora_layers(model: keras.Model) -> list:
    """Returns the layers of a model that have LoRA enabled.

    Args:
        model: keras.Model. A built model.

    Returns:
        The layers (leaf layers or layers nested inside them, such as the
        attention projections of a `TransformerEncoder`) with
        `lora_enabled`.
    """
    _check_model(model)
    return [
        x
        for x in walk.sublayers(model)
        if not isinstance(x, keras.Model) and getattr(x, "lora_enabled", False)
    ]


def enable_lora(
    model: keras.Model,
    rank: int,
    *,
    target: Any = None,
    alpha: float | None = None,
    head: Any = "auto",
) -> list:
    """Adds LoRA adapters to a model and trains only them (and the head).

    LoRA (Hu et al., 2021) keeps a pretrained kernel `W` frozen and learns
    `W + (alpha / rank) * A @ B` with `A` and `B` of rank `rank`. This
    function calls Keras's `layer.enable_lora` on every supported layer of
    the target (`Dense`, `EinsumDense`, `Embedding`, `Conv1D/2D/3D` and their
    transposes, including those nested inside a layer such as the attention
    projections of a keras-hub `TransformerEncoder`), then sets the whole
    model so that only the LoRA factors and the `head` layers train; biases,
    normalization layers and all other weights are frozen, and
    BatchNormalization layers run in inference mode. `kerasft.summary`
    shows the trainable parameters per stage afterwards.

    Call it after building the model and before `compile`. The adapters
    form the model's adapter `"default"` (see `add_adapter` for several
    named ones); `merge_adapters` folds them into the base weights and
    `unload_adapters` removes them. A model saved with `model.save` while
    LoRA is on stores the merged kernels (Keras's own behaviour).

    Example:

    ```python
    model = keras_hub.models.BertTextClassifier(backbone, num_classes=2)
    kerasft.peft.enable_lora(model, rank=4, target=r"transformer_layer_\\d+")
    kerasft.summary(model)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    ```

    Args:
        model: keras.Model. A built model.
        rank: int. The rank of the adapters, > 0.
        target: Where to add adapters: a stage name, layer name, regex, int
            stage index, Layer, or a list of these (see
            `kerasft.resolve_layers`); every supported layer inside the
            target is adapted. `None` adapts every supported layer outside
            the head. Defaults to `None`.
        alpha: float or None. The LoRA scale numerator; the update is scaled
            by `alpha / rank`. `None` uses `rank` (scale 1). Defaults to
            `None`.
        head: What trains in full next to the adapters: `"auto"` (the
            `head` stage if the model has one), `None` (nothing), or a
            target as above. Defaults to `"auto"`.

    Returns:
        The list of layers that got adapters.

    Raises:
        ValueError: for `rank` <= 0, `alpha` <= 0, a target that does not
            resolve, a target without any layer that supports LoRA (naming
            the weight layers it holds), layers that already have LoRA, or
            a model with named adapters (use `add_adapter` there).
        TypeError: for a `rank` or `alpha` of the wrong type.
    """
    return adapters.add_lora(
        model, adapters.DEFAULT, rank, target, alpha, head, extend=True
    )


def bitfit(model: keras.Model, *, head: Any = "auto") -> list:
    """Trains only the bias vectors of a model, and its head.

    BitFit (Ben Zaken et al., 2022) fine-tunes a pretrained model by
    updating only its bias terms: the `bias` variables of dense, einsum,
    convolution and attention layers. Everything else is frozen
    (normalization layers included; BatchNormalization layers run in
    inference mode), except the `head` layers, which train in full. Call it
    before `compile`. `kerasft.summary` shows the trainable parameters per
    stage afterwards.

    Example:

    ```python
    backbone = kerasft.backbones.VGG16(weights=None, input_shape=(32, 32, 3))
    model = kerasft.build_classifier(backbone, num_classes=10)
    kerasft.peft.bitfit(model)  # biases of block1..block5, and the head
    ```

    Args:
        model: keras.Model. A built model.
        head: What trains in full next to the biases: `"auto"` (the `head`
            stage if the model has one), `None` (nothing), or a stage name,
            layer name, regex, int stage index, Layer, or a list of these.
            Defaults to `"auto"`.

    Returns:
        The list of bias variables that train (the head's aside).

    Raises:
        ValueError: if the model has no bias outside the head (for example
            a model built with `use_bias=False` everywhere), or for a head
            target that does not resolve.
    """
    _check_model(model)
    head_leaves = adapters.head_layers(model, head)
    head_ids = {id(x) for x in head_leaves}
    biases = [
        v
        for leaf in walk.leaf_layers(model)
        if id(leaf) not in head_ids
        and not isinstance(leaf, keras.layers.BatchNormalization)
        for v in leaf.weights
        if keras_internals.is_bias(v)
    ]
    if not biases:
        raise ValueError(
            f"Model '{model.name}' has no bias variable outside its head, so "
            "BitFit would train nothing but the head. BitFit needs layers "
            "built with `use_bias=True`; to train only the head, use "
            "`kerasft.freeze_until(model, 'head', inclusive=False)`. "
            f"Received: model={model.name!r}, head={head!r}"
        )
    adapters.set_variables(model, head_leaves, keras_internals.is_bias)
    trainable = {id(v) for v in model.trainable_variables}
    return [v for v in biases if id(v) in trainable]


# The key of the file's description: a JSON string with the format version
# and, for each LoRA `A` factor saved, its layer's rank and alpha. Files
# without it (written before it existed) load with the shape checks only.
_META = "__kerasft_adapter__"
_FORMAT = 1


def _check_npz(filepath):
    filepath = check_path("filepath", filepath)
    if not filepath.endswith(".npz"):
        raise ValueError(
            "`filepath` must be a path ending in '.npz'. "
            f"Received: filepath={filepath!r}"
        )
    return filepath


def _lora_meta(model, paths) -> dict:
    """`{path of A: {"rank", "alpha"}}` for the LoRA layers saved."""
    out = {}
    for layer in lora_layers(model):
        a, _ = keras_internals.lora_factors(layer)
        if a.path in paths:
            out[a.path] = {
                "rank": int(layer.lora_rank),
                "alpha": float(layer.lora_alpha),
            }
    return out


def save_adapter_weights(model: keras.Model, filepath: str) -> list:
    """Saves only the weights that train: adapters, biases, head.

    After `enable_lora`, `add_adapter` or `bitfit`, the trainable variables
    are a small part of the model. This writes just them to a `.npz` file,
    keyed by variable path (never by layer position), with the rank and
    alpha of each LoRA layer, so a fine-tuned variant costs kilobytes
    instead of a copy of the pretrained model. Load them with
    `load_adapter_weights` into a model built the same way (same pretrained
    weights, same `enable_lora` / `add_adapter` / `bitfit` call). With named
    adapters, the active one is saved.

    Example:

    ```python
    kerasft.peft.enable_lora(model, 4, target=r"transformer_layer_\\d+")
    model.fit(...)
    kerasft.peft.save_adapter_weights(model, "sentiment.npz")
    ```

    Args:
        model: keras.Model. A built model.
        filepath: str. Where to write; must end in `.npz`.

    Returns:
        The list of variable paths written.

    Raises:
        ValueError: for a `filepath` that does not end in `.npz`, or a model
            with nothing trainable.
    """
    filepath = _check_npz(filepath)
    _check_model(model)
    variables = model.trainable_variables
    if not variables:
        raise ValueError(
            f"Model '{model.name}' has no trainable variable to save. Call "
            "`enable_lora` or `bitfit` (or unfreeze something) first. "
            f"Received: model={model.name!r}"
        )
    arrays = {v.path: keras.ops.convert_to_numpy(v) for v in variables}
    if len(arrays) != len(variables):
        raise ValueError(
            "Several trainable variables share a path, so they cannot be "
            "told apart in the file. Give the layers unique names. "
            f"Received: paths={[v.path for v in variables]}"
        )
    meta = {"format": _FORMAT, "lora": _lora_meta(model, arrays)}
    with open(filepath, "wb") as f:
        np.savez(f, **arrays, **{_META: np.array(json.dumps(meta))})
    return list(arrays)


def _read_adapter_file(filepath) -> tuple:
    """The arrays of an adapter file and its description (or `None`)."""
    with reading("filepath", filepath, "an .npz archive of adapter weights"):
        with np.load(filepath) as data:
            arrays = {key: data[key] for key in data.files}
    meta = arrays.pop(_META, None)
    if meta is None:
        return arrays, None
    try:
        meta = json.loads(str(meta))
        lora = meta["lora"]
        if meta["format"] != _FORMAT or not isinstance(lora, dict):
            raise ValueError(f"unknown format {meta['format']!r}")
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"Cannot read {filepath!r} as adapter weights: its description "
            f"{_META!r} is damaged or of a newer kerasft ({error}). "
            f"Received: filepath={filepath!r}"
        ) from error
    return arrays, lora


def _mismatches(model, arrays, lora) -> list:
    """What keeps `arrays` from loading into `model`, path by path."""
    by_path = {v.path: v for v in model.weights}
    problems = [
        f"{k!r}: not in the model" for k in sorted(arrays) if k not in by_path
    ]
    problems += [
        f"{k!r}: shape {arrays[k].shape} in the file, "
        f"{tuple(by_path[k].shape)} in the model"
        for k in arrays
        if k in by_path and tuple(arrays[k].shape) != tuple(by_path[k].shape)
    ]
    layers = {
        keras_internals.lora_factors(x)[0].path: x for x in lora_layers(model)
    }
    for path, saved in (lora or {}).items():
        layer = layers.get(path)
        if layer is not None and (
            layer.lora_rank != saved.get("rank")
            or float(layer.lora_alpha) != saved.get("alpha")
        ):
            problems.append(
                f"{path!r}: rank {saved.get('rank')}, alpha "
                f"{saved.get('alpha')} in the file, rank {layer.lora_rank}, "
                f"alpha {layer.lora_alpha} in the model"
            )
    if any(
        keras_internals.is_lora_variable(by_path[k])
        for k in arrays
        if k in by_path
    ):
        problems += [
            f"{v.path!r}: trains in the model, not in the file"
            for v in model.trainable_variables
            if keras_internals.is_lora_variable(v) and v.path not in arrays
        ]
    return problems


def load_adapter_weights(model: keras.Model, filepath: str) -> list:
    """Loads weights written by `save_adapter_weights` into a model.

    Every array of the file is assigned to the variable of `model` with the
    same path. The model must match the saved one: call `enable_lora` (or
    `add_adapter`) with the same targets, rank and alpha, or `bitfit`,
    before loading. Every mismatch is reported, by path, before anything is
    assigned.

    Example:

    ```python
    kerasft.peft.enable_lora(model, 4, target=r"transformer_layer_\\d+")
    kerasft.peft.load_adapter_weights(model, "sentiment.npz")
    ```

    Args:
        model: keras.Model. A built model, adapted like the saved one.
        filepath: str. A `.npz` file from `save_adapter_weights`.

    Returns:
        The list of variable paths loaded.

    Raises:
        FileNotFoundError: if `filepath` does not exist.
        ValueError: if the file is not a readable `.npz` archive of
            adapter weights, or does not match the model: a path the model
            lacks, an array of another shape (another LoRA rank, for
            instance), a LoRA layer of another rank or alpha, or a LoRA
            variable that trains in the model and is missing from the file.
            Nothing is assigned then.
    """
    filepath = _check_npz(filepath)
    _check_model(model)
    arrays, lora = _read_adapter_file(filepath)
    problems = _mismatches(model, arrays, lora)
    if problems:
        raise ValueError(
            f"The adapter weights in {filepath} do not match model "
            f"'{model.name}': {problems}. Adapt the model the way the saved "
            "one was (`enable_lora` or `add_adapter` with the same target, "
            "rank and alpha, or `bitfit`) before loading. "
            f"Received: filepath={filepath!r}"
        )
    by_path = {v.path: v for v in model.weights}
    for key, value in arrays.items():
        by_path[key].assign(value)
    return list(arrays)
