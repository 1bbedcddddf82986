"""Fusion models: several backbones, or several stages of one, one head."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from kerasft._src.layers.feature_fusion import MODES
from kerasft._src.layers.feature_fusion import FeatureFusion
from kerasft._src.models import add_head
from kerasft._src.models import check_head_args
from kerasft._src.naming import unique_name
from kerasft._src.stages import resolve_layers
from kerasft._src.validation import check_choice
from kerasft._src.validation import check_int
from kerasft._src.validation import check_model

POOLINGS = ("avg", "max")


def _check_backbones(backbones: Any) -> list:
    if isinstance(backbones, keras.Model):
        backbones = [backbones]
    if not isinstance(backbones, (list, tuple)) or not backbones:
        raise TypeError(
            "`backbones` must be a keras.Model or a non-empty list of them. "
            f"Received: backbones={backbones!r}"
        )
    for i, backbone in enumerate(backbones):
        if not isinstance(backbone, keras.Model):
            raise TypeError(
                "Every backbone must be a `keras.Model` (e.g. from "
                f"`kerasft.backbones`). Backbone {i} is a "
                f"{type(backbone).__name__}. Received: backbones={backbones!r}"
            )
        if len(backbone.inputs or []) != 1:
            raise ValueError(
                "Every backbone must take exactly one image input. Backbone "
                f"'{backbone.name}' has {len(backbone.inputs or [])} inputs."
            )
    ids = [id(b) for b in backbones]
    if len(set(ids)) != len(ids):
        raise ValueError(
            "The same backbone instance appears more than once in "
            "`backbones`; its weights would be shared, so the branches would "
            "compute the same features. Build one backbone per branch. "
            f"Received: backbones={[b.name for b in backbones]}"
        )
    return list(backbones)


def _reconcile_input_shape(backbones: list) -> tuple:
    """One input shape that every backbone accepts, or a ValueError."""
    shapes = [tuple(b.inputs[0].shape[1:]) for b in backbones]
    if len({len(s) for s in shapes}) > 1:
        raise ValueError(
            "The backbones' input shapes cannot be reconciled: they have "
            "different ranks. All branches read the same raw input. "
            f"Received input shapes: {dict(zip(_names(backbones), shapes))}"
        )
    merged = []
    for dims in zip(*shapes):
        known = {d for d in dims if d is not None}
        if len(known) > 1:
            raise ValueError(
                "The backbones' input shapes cannot be reconciled: all "
                "branches read the same raw input, so each dimension must "
                "agree (None matches anything). Build the backbones with "
                "the same `input_shape`. Received input shapes: "
                f"{dict(zip(_names(backbones), shapes))}"
            )
        merged.append(known.pop() if known else None)
    return tuple(merged)


def _names(backbones: list) -> list:
    return [b.name for b in backbones]


def _check_options(
    fusion, units, num_classes, head, pooling, dropout, hidden_units
):
    if isinstance(fusion, FeatureFusion):
        if units is not None:
            raise ValueError(
                "Pass `units` to the FeatureFusion layer you built, not to "
                f"build_fusion_model. Received: units={units}"
            )
        if fusion.return_gates:
            raise ValueError(
                "The fusion layer of a fusion model must return only the "
                "fused features; read gates with `kerasft.fusion_gates(model,"
                " x)`. Received: a FeatureFusion with return_gates=True"
            )
    elif not isinstance(fusion, str):
        raise TypeError(
            "`fusion` must be a mode name (e.g. 'gated') or a "
            "`kerasft.layers.FeatureFusion` layer. "
            f"Received: fusion={fusion!r}"
        )
    else:  # checked here so that a bad mode fails before any branch is built
        check_choice("fusion", fusion, MODES)
        check_int("units", units, minimum=1, allow_none=True)
    check_head_args(num_classes, head, dropout, hidden_units)
    if pooling not in POOLINGS:
        raise ValueError(
            f"`pooling` must be one of {list(POOLINGS)}. "
            f"Received: pooling={pooling!r}"
        )


def _tap_model(backbone: keras.Model, taps: Sequence) -> keras.Model:
    """A model from the backbone's input to the outputs of each tap."""
    if isinstance(taps, (str, int)) or not isinstance(taps, (list, tuple)):
        raise TypeError(
            "`taps` must be a list of stage or layer names (e.g. "
            f"['conv3', 'conv4', 'conv5']). Received: taps={taps!r}"
        )
    if len(taps) < 2:
        raise ValueError(
            "Multi-scale fusion needs two or more taps. "
            f"Received: taps={list(taps)}"
        )
    outputs = []
    for tap in taps:
        layers = resolve_layers(backbone, tap)
        outputs.append(layers[-1].output)
    if len({id(o) for o in outputs}) != len(outputs):
        raise ValueError(
            "Two taps resolve to the same tensor; each tap must name a "
            f"different stage or layer. Received: taps={list(taps)}"
        )
    return keras.Model(backbone.inputs, outputs, name=backbone.name)


def build_fusion_model(
    backbones: keras.Model | Sequence[keras.Model],
    *,
    fusion: str | FeatureFusion,
    num_classes: int,
    head: str = "linear",
    units: int | None = None,
    taps: Sequence[Any] | None = None,
    pooling: str = "avg",
    dropout: float = 0.0,
    hidden_units: int = 256,
    activation: str | None = "softmax",
    name: str | None = None,
) -> keras.Model:
    """Builds a classifier on the fused features of several branches.

    Two ways to get branches:

    - Several backbones (e.g. `VGG16` and `ResNet50`, or two `ResNet50`),
      all reading the same raw image. Each backbone keeps its own
      preprocessing inside, so the model takes raw 0-255 pixels. Backbones
      whose names collide are renamed in place (`resnet50`, `resnet50_1`),
      so the model has no duplicate layer names and saves to `.keras`; its
      stages are prefixed per branch (`resnet50/conv4`,
      `resnet50_1/conv4`), and `kerasft.freeze(model, "resnet50_1")` or
      `kerasft.freeze(model, "resnet50/conv4")` address one branch.
    - One backbone and `taps`, the stages (or layers) whose outputs are the
      branches: multi-scale fusion, e.g. `taps=["conv3", "conv4",
      "conv5"]` of a ResNet50. The nested model keeps the backbone's name
      and contains the backbone up to the deepest tap.

    Rank-4 branch outputs (a backbone built with `pooling=None`, or a tap)
    are pooled with global `pooling`. The pooled features go through a
    `kerasft.layers.FeatureFusion` layer named `fusion`, then the head:
    as in `kerasft.build_classifier`: `"linear"` is `Dropout(dropout)`
    (when `dropout > 0`) and a `Dense(num_classes)` named `predictions`;
    `"mlp"` puts a `Dense(hidden_units, "relu")` named `head_hidden` before
    them. The pooling, fusion and head layers form the `head` stage.

    Example:

    ```python
    model = kerasft.build_fusion_model(
        [
            kerasft.backbones.ResNet50(weights=None, input_shape=(32, 32, 3)),
            kerasft.backbones.VGG16(weights=None, input_shape=(32, 32, 3)),
        ],
        fusion="gated",
        units=256,
        num_classes=10,
    )
    kerasft.freeze(model, "resnet50")  # train VGG16, fusion and head
    ```

    Args:
        backbones: keras.Model or list of them. Two or more backbones, or
            exactly one with `taps`.
        fusion: str or FeatureFusion. A mode (`"mean"`, `"max"`,
            `"concat"`, `"gated"`, `"attention"`) or a configured layer.
        num_classes: int. Number of classes, at least 2.
        head: str. `"linear"` or `"mlp"`. Defaults to `"linear"`.
        units: int or None. Common width of the fusion layer (see
            `FeatureFusion`); only with a mode name. Required by `mean`,
            `max`, `gated` and `attention` when the branch widths differ.
            Defaults to `None`.
        taps: list or None. Stage or layer names of the single backbone
            whose outputs are fused. Defaults to `None`.
        pooling: str. Global pooling of rank-4 branch outputs, `"avg"` or
            `"max"`. Defaults to `"avg"`.
        dropout: float. Dropout rate before the output layer, in [0, 1).
            Defaults to `0.0` (no dropout layer).
        hidden_units: int. Width of the hidden layer of the `"mlp"` head.
            Defaults to `256`.
        activation: str or None. Activation of the output layer; `None`
            gives logits. Defaults to `"softmax"`.
        name: str or None. Model name. Defaults to `"fusion_model"`.

    Returns:
        A functional `keras.Model` from raw images to `num_classes` outputs.

    Raises:
        ValueError: for fewer than two branches, taps with several
            backbones, backbones whose input shapes cannot be reconciled,
            the same backbone instance twice, an unknown head, pooling or
            tap, or a fusion mode that needs `units` (see `FeatureFusion`).
        TypeError: for arguments of the wrong type.
    """
    backbones = _check_backbones(backbones)
    _check_options(
        fusion, units, num_classes, head, pooling, dropout, hidden_units
    )
    if taps is not None:
        if len(backbones) != 1:
            raise ValueError(
                "`taps` fuses stages of one backbone; pass exactly one "
                f"backbone with it. Received: {len(backbones)} backbones "
                f"({_names(backbones)}) and taps={taps!r}"
            )
        branches = [_tap_model(backbones[0], taps)]
    else:
        if len(backbones) < 2:
            raise ValueError(
                "Fusion needs two or more branches: pass two or more "
                "backbones, or one backbone with `taps=[...]` for "
                f"multi-scale fusion. Received: backbones={_names(backbones)}"
            )
        branches = backbones
    input_shape = _reconcile_input_shape(branches)

    used = {"pixels", "fusion", "head_hidden", "head_dropout", "predictions"}
    original_names = [branch.name for branch in branches]
    for branch in branches:
        branch.name = unique_name(branch.name, used)
    try:
        return _assemble(
            branches,
            input_shape,
            used,
            taps=taps,
            pooling=pooling,
            fusion=fusion,
            units=units,
            num_classes=num_classes,
            head=head,
            dropout=dropout,
            hidden_units=hidden_units,
            activation=activation,
            name=name,
        )
    except Exception:
        # A failed build leaves the caller's backbones as they were.
        for branch, original in zip(branches, original_names):
            branch.name = original
        raise


def _assemble(
    branches,
    input_shape,
    used,
    *,
    taps,
    pooling,
    fusion,
    units,
    num_classes,
    head,
    dropout,
    hidden_units,
    activation,
    name,
):
    """Wires input, branches, pooling, fusion and head into one model."""
    inputs = keras.Input(shape=input_shape, name="pixels")
    features = []
    for branch in branches:
        outputs = branch(inputs)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        tap_names = list(taps) if taps is not None else [None]
        for output, tap in zip(outputs, tap_names):
            if len(output.shape) == 4:
                label = branch.name
                if tap is not None:
                    label += "_" + re.sub(r"\W+", "_", str(tap)).strip("_")
                pool_cls = (
                    keras.layers.GlobalAveragePooling2D
                    if pooling == "avg"
                    else keras.layers.GlobalMaxPooling2D
                )
                pool_name = unique_name(f"{label}_pool", used)
                output = pool_cls(name=pool_name)(output)
            features.append(output)

    if isinstance(fusion, str):
        fusion = FeatureFusion(fusion, units=units, name="fusion")
    x = fusion(features)
    outputs = add_head(x, num_classes, head, dropout, hidden_units, activation)
    return keras.Model(inputs, outputs, name=name or "fusion_model")


def _find_fusion(model: keras.Model) -> FeatureFusion:
    found = [
        layer for layer in model.layers if isinstance(layer, FeatureFusion)
    ]
    if len(found) != 1:
        raise ValueError(
            "Expected a model with exactly one top-level FeatureFusion "
            f"layer. Model '{model.name}' has {len(found)}."
        )
    return found[0]


def fusion_gates(
    model: keras.Model, x: Any, *, batch_size: int | None = None
) -> np.ndarray:
    """Returns the fusion gates a model computes for a batch of inputs.

    Runs the model up to its `FeatureFusion` layer and returns that layer's
    per-branch gates, shape `(num_samples, num_branches)`, as NumPy. The
    columns follow the order of the branches (backbones, or taps). With a
    `"gated"` layer using softmax, or an `"attention"` layer, each row sums
    to 1 and reads as the share of each branch in the fused vector for that
    sample.

    Example:

    ```python
    gates = kerasft.fusion_gates(model, images)
    gates.mean(axis=0)  # average weight of each branch
    ```

    Args:
        model: keras.Model. A model with one top-level `FeatureFusion`
            layer in mode `"gated"` or `"attention"`, such as one built by
            `build_fusion_model`.
        x: Model inputs (array or tensors).
        batch_size: int or None. Batch size for computing features.
            Defaults to `None` (Keras's default).

    Returns:
        A NumPy array of gates.

    Raises:
        ValueError: if the model does not have exactly one fusion layer, or
            its mode has no gates.
    """
    check_model(model)
    check_int("batch_size", batch_size, minimum=1, allow_none=True)
    layer = _find_fusion(model)
    if layer.mode not in ("gated", "attention"):
        raise ValueError(
            f"Mode {layer.mode!r} has no gates; only 'gated' and "
            f"'attention' do. Received: model={model.name!r}"
        )
    features_model = keras.Model(model.inputs, layer.input)
    features = features_model.predict(x, batch_size=batch_size, verbose=0)
    return keras.ops.convert_to_numpy(layer.gates(features))
