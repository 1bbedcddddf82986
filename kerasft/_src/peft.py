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

from typing import Any

import keras
import numpy as np

from kerasft._src import keras_internals
from kerasft._src import walk
from kerasft._src.stages import HEAD
from kerasft._src.stages import _check_model
from kerasft._src.stages import resolve_layers
from kerasft._src.stages import stages
from kerasft._src.validation import check_int
from kerasft._src.validation import check_number
from kerasft._src.validation import check_path
from kerasft._src.validation import reading

_LORA_TYPES = (
    keras.layers.Dense,
    keras.layers.EinsumDense,
    keras.layers.Embedding,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)


def _supports_lora(layer) -> bool:
    return isinstance(layer, _LORA_TYPES) and callable(
        getattr(layer, "enable_lora", None)
    )


def _head_layers(model, head) -> list:
    """Leaf layers that train in full next to the adapters."""
    if head is None:
        return []
    if isinstance(head, str) and head == "auto":
        if any(s.name == HEAD for s in stages(model)):
            return resolve_layers(model, HEAD)
        return []
    try:
        return resolve_layers(model, head)
    except (TypeError, ValueError) as error:
        raise type(error)(f"Bad `head`: {error}") from error


def _set_variables(model, train_leaves, keep) -> None:
    """Makes `train_leaves` trainable, then freezes every other variable.

    `keep(variable)` says which variables of the other leaves still train.
    Layer flags are set first, because a layer's `trainable` setter resets
    the flags of its variables.
    """
    train_ids = {id(x) for x in train_leaves}
    leaves = walk.leaf_layers(model)
    for container in [
        x for x in walk.sublayers(model) if isinstance(x, keras.Model)
    ]:
        if not container.trainable:
            container.trainable = True
    for leaf in leaves:
        if not leaf.weights:
            continue
        if isinstance(leaf, keras.layers.BatchNormalization):
            leaf.trainable = False
            continue
        leaf.trainable = True
    for leaf in leaves:
        if id(leaf) in train_ids or not leaf.trainable:
            continue
        for variable in leaf.weights:
            if not keep(variable):
                variable.trainable = False


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

    Call it after building the model and before `compile`. Enabling LoRA
    cannot be undone (it is Keras's own mechanism); a model saved afterwards
    keeps the adapters.

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
            the weight layers it holds), or layers that already have LoRA.
        TypeError: for a `rank` or `alpha` of the wrong type.
    """
    check_int("rank", rank, minimum=1)
    # None means alpha=rank.
    check_number(
        "alpha", alpha, minimum=0, min_inclusive=False, allow_none=True
    )
    _check_model(model)
    head_leaves = _head_layers(model, head)
    head_ids = {id(x) for x in head_leaves}
    if target is None:
        targeted = [x for x in walk.leaf_layers(model) if id(x) not in head_ids]
    else:
        targeted = resolve_layers(model, target)
    candidates = []
    for leaf in targeted:
        candidates.extend(x for x in walk.sublayers(leaf) if _supports_lora(x))
    if not candidates:
        weight_layers = [
            f"{x.name} ({type(x).__name__})" for x in targeted if x.weights
        ]
        raise ValueError(
            "No layer of the target supports LoRA. Keras supports it on "
            "Dense, EinsumDense, Embedding and Conv1D/2D/3D(Transpose) "
            "layers; the targeted layers with weights are: "
            f"{weight_layers or 'none'}. Received: target={target!r}"
        )
    already = [x.name for x in candidates if x.lora_enabled]
    if already:
        raise ValueError(
            f"LoRA is already enabled on layers {already}; Keras can enable "
            "it only once per layer. Target other layers. "
            f"Received: target={target!r}"
        )
    for layer in candidates:
        layer.enable_lora(rank, lora_alpha=alpha)
    _set_variables(model, head_leaves, keras_internals.is_lora_variable)
    return candidates


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
    head_leaves = _head_layers(model, head)
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
    _set_variables(model, head_leaves, keras_internals.is_bias)
    trainable = {id(v) for v in model.trainable_variables}
    return [v for v in biases if id(v) in trainable]


def _check_npz(filepath):
    filepath = check_path("filepath", filepath)
    if not filepath.endswith(".npz"):
        raise ValueError(
            "`filepath` must be a path ending in '.npz'. "
            f"Received: filepath={filepath!r}"
        )
    return filepath


def save_adapter_weights(model: keras.Model, filepath: str) -> list:
    """Saves only the weights that train: adapters, biases, head.

    After `enable_lora` or `bitfit`, the trainable variables are a small
    part of the model. This writes just them to a `.npz` file, keyed by
    variable path, so a fine-tuned variant costs kilobytes instead of a copy
    of the pretrained model. Load them with `load_adapter_weights` into a
    model built the same way (same pretrained weights, same `enable_lora` /
    `bitfit` call).

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
    with open(filepath, "wb") as f:
        np.savez(f, **arrays)
    return list(arrays)


def load_adapter_weights(model: keras.Model, filepath: str) -> list:
    """Loads weights written by `save_adapter_weights` into a model.

    Every array of the file is assigned to the variable of `model` with the
    same path. The model must have those variables: call `enable_lora` with
    the same targets and rank (or `bitfit`) before loading.

    Args:
        model: keras.Model. A built model, adapted like the saved one.
        filepath: str. A `.npz` file from `save_adapter_weights`.

    Returns:
        The list of variable paths loaded.

    Raises:
        FileNotFoundError: if `filepath` does not exist.
        ValueError: if the file is not a readable `.npz` archive, or holds
            a path the model lacks (LoRA not enabled on the same layers, for
            instance) or an array whose shape differs; nothing is assigned
            then.
    """
    filepath = _check_npz(filepath)
    _check_model(model)
    by_path = {v.path: v for v in model.weights}
    with reading("filepath", filepath, "an .npz archive of adapter weights"):
        with np.load(filepath) as data:
            arrays = {key: data[key] for key in data.files}
    missing = sorted(k for k in arrays if k not in by_path)
    if missing:
        raise ValueError(
            f"Model '{model.name}' has no variables {missing}, which are in "
            f"{filepath}. Adapt the model the way the saved one was "
            "(`enable_lora` with the same target and rank, or `bitfit`) "
            f"before loading. Received: filepath={filepath!r}"
        )
    wrong = [
        f"{k}: file {arrays[k].shape}, model {tuple(by_path[k].shape)}"
        for k in arrays
        if tuple(arrays[k].shape) != tuple(by_path[k].shape)
    ]
    if wrong:
        raise ValueError(
            f"Shapes in {filepath} do not match model '{model.name}' "
            f"(a different LoRA rank?): {wrong}. "
            f"Received: filepath={filepath!r}"
        )
    for key, value in arrays.items():
        by_path[key].assign(value)
    return list(arrays)
