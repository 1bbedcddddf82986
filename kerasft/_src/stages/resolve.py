"""The resolver: a user's target (stage name, layer name, regex, index,
Layer, or a list of these) to stages or layers, with one error message
everywhere."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Any
from typing import Union

import keras

from kerasft._src import walk
from kerasft._src.stages.split import _check_model
from kerasft._src.stages.split import stages
from kerasft._src.stages.stage import Stage
from kerasft._src.stages.stage import unique

Target = Union[str, int, "re.Pattern[str]", keras.Layer, Sequence[Any]]


def _compile(pattern):
    if isinstance(pattern, re.Pattern):
        return pattern
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _unknown_name_error(model, target, stage_list):
    stage_names = [s.name for s in stage_list]
    layer_names = [layer.name for layer in walk.nested_layers(model)]
    close = difflib.get_close_matches(
        str(target), stage_names + layer_names, n=1, cutoff=0.6
    )
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return ValueError(
        f"No stage or layer of model '{model.name}' matches {target!r}."
        f"{hint} Valid stage names: {stage_names}. Layer names (exact, or "
        "a regex matched with re.fullmatch) and stage indices are accepted "
        f"too. Received: target={target!r}"
    )


def _resolve_one(model, target, stage_list):
    """Returns (stages, layers) for one target; layers are leaf layers."""
    if isinstance(target, bool):
        raise TypeError(
            "A target must be a stage name, a layer name, a regex, an int "
            f"stage index or a Layer. Received: target={target!r}"
        )
    if isinstance(target, int):
        n = len(stage_list)
        if not -n <= target < n:
            raise ValueError(
                f"Stage index {target} is out of range for model "
                f"'{model.name}', which has {n} stages (valid indices: "
                f"{-n}..{n - 1}; stages: {[s.name for s in stage_list]}). "
                f"Received: target={target}"
            )
        stage = stage_list[target]
        return [stage], list(stage.layers)
    if isinstance(target, keras.Layer):
        if target is model:
            return list(stage_list), walk.leaf_layers(model)
        if not any(target is x for x in walk.nested_layers(model)):
            raise ValueError(
                f"Layer '{target.name}' is not part of model '{model.name}'. "
                "Pass a layer of this model, or its name. "
                f"Received: target={target!r}"
            )
        leaves = walk.leaf_layers(target)
        return _stages_of(leaves, stage_list), leaves
    if isinstance(target, (str, re.Pattern)):
        if isinstance(target, str):
            for stage in stage_list:
                if stage.name == target:
                    return [stage], list(stage.layers)
            named = [x for x in walk.nested_layers(model) if x.name == target]
            if named:
                leaves = unique(
                    [leaf for x in named for leaf in walk.leaf_layers(x)]
                )
                return _stages_of(leaves, stage_list), leaves
        pattern = _compile(target)
        if pattern is not None:
            matched = [s for s in stage_list if pattern.fullmatch(s.name)]
            if matched:
                leaves = [leaf for s in matched for leaf in s.layers]
                return matched, leaves
            named = [
                x
                for x in walk.nested_layers(model)
                if pattern.fullmatch(x.name)
            ]
            if named:
                leaves = unique(
                    [leaf for x in named for leaf in walk.leaf_layers(x)]
                )
                return _stages_of(leaves, stage_list), leaves
        shown = getattr(target, "pattern", target)
        raise _unknown_name_error(model, shown, stage_list)
    raise TypeError(
        "A target must be a stage name, a layer name, a regex, an int stage "
        "index, a Layer, or a list of these. "
        f"Received: target={target!r} of type {type(target).__name__}"
    )


def _stages_of(leaves, stage_list):
    ids = {id(x) for x in leaves}
    return [s for s in stage_list if any(id(x) in ids for x in s.layers)]


def _resolve(model, target):
    _check_model(model)
    stage_list = stages(model)
    targets = (
        list(target) if isinstance(target, (list, tuple, set)) else [target]
    )
    if not targets:
        raise ValueError(
            f"Expected at least one target. Received: target={target!r}"
        )
    found_stages, found_layers = [], []
    for t in targets:
        s, layers = _resolve_one(model, t, stage_list)
        found_stages.extend(s)
        found_layers.extend(layers)
    found_stages = sorted(unique(found_stages), key=lambda s: s.index)
    return found_stages, unique(found_layers), stage_list


def resolve_stages(model: keras.Model, target: Target) -> list[Stage]:
    """Returns the stages a target refers to, in model order.

    Args:
        model: keras.Model. A built model.
        target: The stage(s) or layer(s): a stage name, a layer name, a regex
            (`str` or compiled, matched with `re.fullmatch` against stage
            names first, then layer names), an int index into `stages(model)`
            (negative counts from the end), a `keras.Layer` of the model, or
            a list of these. A layer selects the stage that contains it.

    Returns:
        A list of `Stage`.

    Raises:
        ValueError: for a name that matches nothing (the message lists the
            valid stage names and the closest match), an index out of range,
            a layer that is not in the model, or an unbuilt model.
        TypeError: for a target of another type.
    """
    return _resolve(model, target)[0]


def resolve_layers(model: keras.Model, target: Target) -> list:
    """Returns the leaf layers a target refers to, in model order.

    A stage name selects all layers of the stage; a layer name, a regex over
    layer names, or a Layer selects just those layers (a nested model
    selects all of its layers). Arguments and errors are those of
    `resolve_stages`.
    """
    layers = _resolve(model, target)[1]
    order = {id(x): i for i, x in enumerate(walk.leaf_layers(model))}
    return sorted(layers, key=lambda x: order.get(id(x), len(order)))


def stage_index(model: keras.Model, target: Target) -> int:
    """Returns the index of the deepest stage a target refers to.

    Arguments and errors are those of `resolve_stages`.
    """
    return resolve_stages(model, target)[-1].index
