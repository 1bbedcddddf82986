"""The stage-map registry: how `kerasft.stages` knows a family's stages.

A stage map is a fingerprint (which models belong to the family) and a
stage rule (how such a model splits into named stages). The built-in maps
in `stage_maps/` are registered through `register_stage_map`, as a user's
are.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from collections.abc import Sequence

import keras

from kerasft._src import walk
from kerasft._src.stages.stage import HEAD
from kerasft._src.stages.stage import unique
from kerasft._src.validation import check_bool
from kerasft._src.validation import check_type

Fingerprint = Callable[[keras.Model], bool] | Sequence[str | re.Pattern]


class StageMap:
    """One registered family: its name, fingerprint and stage rule."""

    def __init__(self, name, fingerprint, stage_of, split):
        self.name = name
        self.fingerprint = fingerprint
        self.stage_of = stage_of
        self.split = split

    def matches(self, model: keras.Model, names: set) -> bool:
        """Whether `model`, whose top-level layer names are `names`, fits."""
        if callable(self.fingerprint):
            answer = self.fingerprint(model)
            if not isinstance(answer, bool):
                raise TypeError(
                    f"The fingerprint of stage map '{self.name}' must return "
                    f"True or False. Received: {answer!r} of type "
                    f"{type(answer).__name__} for model '{model.name}'"
                )
            return answer
        return all(
            p in names
            if isinstance(p, str)
            else any(p.fullmatch(n) for n in names)
            for p in self.fingerprint
        )

    def groups(self, model: keras.Model) -> list:
        """The `[name, leaf layers]` groups of `model`, checked."""
        if self.stage_of is not None:
            groups = _groups_by_layer_name(model, self.name, self.stage_of)
        else:
            groups = _check_split(model, self.name, self.split(model))
        names = [name for name, _ in groups]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(
                f"Stage map '{self.name}' gives model '{model.name}' several "
                f"stages with one name: {repeated}. A stage is one run of "
                f"layers; name each run once. Received: stages {names}"
            )
        return groups


_REGISTRY: dict[str, StageMap] = {}


def _check_fingerprint(fingerprint):
    if callable(fingerprint):
        return fingerprint
    if isinstance(fingerprint, (list, tuple)) and fingerprint:
        if all(isinstance(p, (str, re.Pattern)) for p in fingerprint):
            return tuple(fingerprint)
    raise TypeError(
        "`fingerprint` must be a function that takes a keras.Model and "
        "returns True or False, or a non-empty list of layer names (str, "
        "matched exactly) and regexes (`re.compile(...)`, matched with "
        "re.fullmatch) that must each match a top-level layer of the model. "
        f"Received: fingerprint={fingerprint!r}"
    )


def register_stage_map(
    name: str,
    *,
    fingerprint: Fingerprint,
    stage_of: Callable[[str], str | None] | None = None,
    split: Callable[[keras.Model], Sequence] | None = None,
    override: bool = False,
) -> None:
    """Teaches `kerasft.stages` the stages of a family of models.

    A stage map has a *fingerprint*, which says whether a model belongs to
    the family, and a *stage rule*, which splits such a model into named
    stages. `kerasft.stages(model)` uses the map whose fingerprint matches
    `model` (or a model nested in it, such as a backbone inside a
    classifier), so freezing, unfreeze schedules, discriminative learning
    rates, LoRA targets and feature caching all speak the family's stage
    names. The maps are tried newest first, so a family registered later
    takes precedence over one registered earlier.

    Give the stage rule in one of two forms:

    - `stage_of(layer_name)` maps the name of each top-level layer to a
      stage name, or to `None`. A layer mapped to `None` joins the stage
      before it (or the first stage, for layers before any match); the
      layers after the last matched layer form the `head` stage. Adjacent
      layers with one stage name form one stage.
    - `split(model)` returns the stages itself: an ordered list of
      `(stage_name, layers)` pairs, where `layers` are layers of `model`
      (a nested model stands for all of its layers). Every layer of the
      model must be in exactly one stage.

    Stage names must be unique within a model.

    Example:

    ```python
    def encoder_stage(layer_name):
        match = re.match(r"(enc\\d+)_", layer_name)
        return match.group(1) if match else None

    kerasft.register_stage_map(
        "my_encoder",
        fingerprint=["enc1_conv", "enc2_conv"],
        stage_of=encoder_stage,
    )
    [s.name for s in kerasft.stages(model)]
    # ['enc1', 'enc2', 'head']
    ```

    Args:
        name: str. The family's name, unique among registered maps (the
            built-in ones are `albert`, `alexnet`, `convnext`,
            `deberta_v3`, `densenet`, `dinov2`, `distil_bert`,
            `efficientnet`, `gemma`, `gpt2`, `hub_efficientnet`,
            `hub_resnet`, `inception_v3`, `llama`, `mistral`, `mobilenet`,
            `mobilenetv2`, `qwen`, `resnet`, `roberta`, `sequence`,
            `siglip`, `transformer`, `vgg`, `vit` and `xception`).
        fingerprint: A function that takes a `keras.Model` and returns
            `True` or `False`, or a non-empty list whose items each match
            the name of a top-level layer of the model: a `str` (exact
            name) or a compiled regex (matched with `re.fullmatch`).
            Prefer the names of the first blocks, so that a backbone cut
            after any stage is still recognised.
        stage_of: Callable or None. Maps a top-level layer name to a stage
            name (str) or `None`, as described above.
        split: Callable or None. Maps the model to its ordered
            `(stage_name, layers)` pairs, as described above. Give exactly
            one of `stage_of` and `split`.
        override: bool. Replace a map already registered under `name`.
            Defaults to `False`.

    Raises:
        TypeError: for a `name` that is not a string, a `fingerprint`,
            `stage_of` or `split` of the wrong type, or both or neither of
            `stage_of` and `split`.
        ValueError: for an empty `name`, or a `name` already registered
            when `override` is `False`.
    """
    check_type("name", name, str, "a string")
    if not name:
        raise ValueError(f"`name` must not be empty. Received: name={name!r}")
    check_bool("override", override)
    fingerprint = _check_fingerprint(fingerprint)
    if (stage_of is None) == (split is None):
        raise TypeError(
            "Pass exactly one stage rule: `stage_of` (layer name -> stage "
            "name) or `split` (model -> (stage name, layers) pairs). "
            f"Received: stage_of={stage_of!r}, split={split!r}"
        )
    for arg, value in (("stage_of", stage_of), ("split", split)):
        if value is not None and not callable(value):
            raise TypeError(
                f"`{arg}` must be callable. Received: {arg}={value!r}"
            )
    if name in _REGISTRY and not override:
        raise ValueError(
            f"A stage map named '{name}' is already registered. Pass "
            "`override=True` to replace it, or choose another name. "
            f"Received: name={name!r}"
        )
    _REGISTRY.pop(name, None)
    _REGISTRY[name] = StageMap(name, fingerprint, stage_of, split)


def find_stage_map(model) -> StageMap | None:
    """The newest registered map whose fingerprint matches, or None."""
    if not isinstance(model, keras.Model):
        return None
    names = {layer.name for layer in model.layers}
    for stage_map in reversed(list(_REGISTRY.values())):
        if stage_map.matches(model, names):
            return stage_map
    return None


def _stage_name(family, stage_of, layer_name):
    stage = stage_of(layer_name)
    if stage is not None and not (isinstance(stage, str) and stage):
        raise TypeError(
            f"The `stage_of` rule of stage map '{family}' must return a "
            f"non-empty stage name (str) or None. Received: {stage!r} for "
            f"layer '{layer_name}'"
        )
    return stage


def _groups_by_layer_name(model, family, stage_of):
    """Groups the top-level layers of `model` by `stage_of(layer.name)`."""
    children = walk.children(model)
    stage_names = [_stage_name(family, stage_of, c.name) for c in children]
    matched = [i for i, stage in enumerate(stage_names) if stage is not None]
    if not matched:
        return [[model.name, walk.leaf_layers(model)]]
    groups = []  # list of [name, leaves]
    for i, (layer, stage) in enumerate(zip(children, stage_names)):
        leaves = walk.leaf_layers(layer)
        if i > matched[-1]:
            stage = HEAD
        elif stage is None:
            # Before the first match: the first stage; else the one before.
            stage = stage_names[matched[0]] if i < matched[0] else None
        if stage is None or (groups and groups[-1][0] == stage):
            groups[-1][1].extend(leaves)
        else:
            groups.append([stage, leaves])
    return groups


def _check_split(model, family, result):
    """Checks what a `split` rule returned; returns `[name, leaves]` groups."""
    if not isinstance(result, (list, tuple)) or not result:
        raise TypeError(
            f"The `split` rule of stage map '{family}' must return a "
            "non-empty list of (stage_name, layers) pairs. "
            f"Received: {result!r} for model '{model.name}'"
        )
    known = {id(x) for x in walk.nested_layers(model)}
    groups = []
    for item in result:
        if not (
            isinstance(item, (list, tuple))
            and len(item) == 2
            and isinstance(item[0], str)
            and item[0]
            and isinstance(item[1], (list, tuple))
            and all(isinstance(x, keras.Layer) for x in item[1])
        ):
            raise TypeError(
                f"The `split` rule of stage map '{family}' must return "
                "(stage_name, layers) pairs: a non-empty str and a list of "
                f"keras.Layer. Received: {item!r} for model '{model.name}'"
            )
        stray = [x.name for x in item[1] if id(x) not in known]
        if stray:
            raise ValueError(
                f"The `split` rule of stage map '{family}' put layers that "
                f"are not in model '{model.name}' into stage '{item[0]}'. "
                f"Received: layers {stray}"
            )
        leaves = unique(x for layer in item[1] for x in walk.leaf_layers(layer))
        groups.append([item[0], leaves])
    _check_cover(model, family, groups)
    return groups


def _check_cover(model, family, groups):
    counts = {}
    for _, leaves in groups:
        for leaf in leaves:
            counts[id(leaf)] = counts.get(id(leaf), 0) + 1
    leaves = walk.leaf_layers(model)
    missing = [x.name for x in leaves if id(x) not in counts]
    twice = [x.name for x in leaves if counts.get(id(x), 0) > 1]
    if missing or twice:
        raise ValueError(
            f"The `split` rule of stage map '{family}' must put every layer "
            f"of model '{model.name}' into exactly one stage. Received: "
            f"layers in no stage {missing}, layers in several stages {twice}"
        )
