"""keras-hub families: recognised by class, checked by layer names.

A keras-hub backbone is recognised by its class (or a subclass), by name,
so that keras-hub need not be imported. The map then checks that the
layers its rule relies on are there: a backbone of the family whose layers
were renamed (a new keras-hub version) raises an error naming the expected
and the found layers, instead of silently getting the generic split.
"""

import re

from kerasft._src import walk
from kerasft._src.stages.registry import register_stage_map
from kerasft._src.stages.stage_maps._rules import by_pattern


def is_instance_of(model, class_names) -> bool:
    """Whether `model`'s class, or a class it derives from, is named so."""
    return any(cls.__name__ in class_names for cls in type(model).__mro__)


def _check_layers(model, family, expected):
    names = [layer.name for layer in walk.children(model)]
    missing = [
        p.pattern for p in expected if not any(p.fullmatch(n) for n in names)
    ]
    if missing:
        raise ValueError(
            f"Model '{model.name}' is a keras-hub "
            f"{type(model).__name__}, but its layers do not match the "
            f"'{family}' stage map: no top-level layer matches "
            f"{missing}. The map expects layers matching "
            f"{[p.pattern for p in expected]}. This keras-hub version may "
            "name its layers differently; register a map that fits it with "
            "`kerasft.register_stage_map` (it is tried first). "
            f"Received: layers {names}"
        )


def register_hub_map(name, *, classes, expected, stage_of):
    """Registers the stage map of a keras-hub family.

    Args:
        name: str. The map's name.
        classes: tuple of str. The backbone class names of the family.
        expected: tuple of str. Regexes (matched with `re.fullmatch`) that
            must each match a top-level layer of such a backbone.
        stage_of: Callable. The `stage_of` rule.
    """
    expected = tuple(re.compile(p) for p in expected)

    def fingerprint(model):
        if not is_instance_of(model, classes):
            return False
        _check_layers(model, name, expected)
        return True

    register_stage_map(name, fingerprint=fingerprint, stage_of=stage_of)


def decoder_rule(*, embeddings, block, final_norm):
    """The rule of a decoder LLM: `embeddings`, `decoder_block_N`,
    `final_norm`.

    Args:
        embeddings: tuple of str. The layers before the first block.
        block: str. A regex whose first group is the block number.
        final_norm: str. The normalization after the last block.
    """
    names = {layer: "embeddings" for layer in embeddings}
    names[final_norm] = "final_norm"
    return by_pattern((block, r"decoder_block_\1"), names=names)


# Llama, Mistral and Qwen lay their layers out alike.
LLAMA_LAYOUT = {
    "expected": (
        "token_embedding",
        "transformer_layer_0",
        "sequence_output_layernorm",
    ),
    "stage_of": decoder_rule(
        embeddings=("token_embedding",),
        block=r"transformer_layer_(\d+)$",
        final_norm="sequence_output_layernorm",
    ),
}
