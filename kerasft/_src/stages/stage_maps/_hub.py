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
from kerasft._src.stages.stage import HEAD
from kerasft._src.stages.stage_maps._rules import by_pattern


def is_instance_of(model, class_names) -> bool:
    """Whether `model`'s class, or a class it derives from, is named so."""
    return any(cls.__name__ in class_names for cls in type(model).__mro__)


def _mismatch(model, family, what, expected, names):
    return ValueError(
        f"Model '{model.name}' is a keras-hub "
        f"{type(model).__name__}, but its layers do not match the "
        f"'{family}' stage map: {what}. The map expects layers matching "
        f"{expected}. This keras-hub version may name its layers "
        "differently; register a map that fits it with "
        "`kerasft.register_stage_map` (it is tried first). "
        f"Received: layers {names}"
    )


def _check_layers(model, family, expected):
    names = [layer.name for layer in walk.children(model)]
    missing = [
        p.pattern for p in expected if not any(p.fullmatch(n) for n in names)
    ]
    if missing:
        raise _mismatch(
            model,
            family,
            f"no top-level layer matches {missing}",
            [p.pattern for p in expected],
            names,
        )


def register_hub_map(name, *, classes, expected, stage_of=None, split=None):
    """Registers the stage map of a keras-hub family.

    Args:
        name: str. The map's name.
        classes: tuple of str. The backbone class names of the family.
        expected: tuple of str. Regexes (matched with `re.fullmatch`) that
            must each match a top-level layer of such a backbone.
        stage_of: Callable or None. The `stage_of` rule.
        split: Callable or None. The `split` rule, used instead of
            `stage_of`.
    """
    expected = tuple(re.compile(p) for p in expected)

    def fingerprint(model):
        if not is_instance_of(model, classes):
            return False
        _check_layers(model, name, expected)
        return True

    register_stage_map(
        name, fingerprint=fingerprint, stage_of=stage_of, split=split
    )


def encoder_blocks(family, *, container, encoder, block, first=()):
    """The `split` rule of a vision encoder that runs its blocks in one
    layer: `patch_embedding`, `encoder_block_0`.., `head`.

    The layer `encoder` (of class `container`, opened by the walk) holds
    the blocks, the layers whose names match `block`; they are numbered
    in order from 0. `patch_embedding` is the top-level layers before
    `encoder`; the encoder's layers named in `first` join
    `encoder_block_0`, and its other layers, with the top-level layers
    after it, form the `head`. A backbone whose encoder is not opened or
    does not hold `num_layers` blocks raises an error naming what it
    holds.

    Args:
        family: str. The map's name, for the error message.
        container: str. The class name of the encoder layer.
        encoder: str. The name of the top-level encoder layer.
        block: str. A regex (matched with `re.fullmatch`) for the blocks.
        first: tuple of str. Encoder layers that run before the blocks.
    """
    walk.register_block_container(container)
    pattern = re.compile(block)

    def split(model):
        children = walk.children(model)
        at = [layer.name for layer in children].index(encoder)
        layer = children[at]
        inner = walk.children(layer) if walk.is_container(layer) else []
        blocks = [x for x in inner if pattern.fullmatch(x.name)]
        expected = getattr(layer, "num_layers", None)
        if not blocks or expected not in (None, len(blocks)):
            raise _mismatch(
                model,
                family,
                f"layer '{encoder}' ({type(layer).__name__}, "
                f"num_layers={expected}) holds {len(blocks)} layers "
                f"matching {block!r}",
                [f"{encoder}/{block}"],
                [f"{encoder}/{x.name}" for x in inner] or [encoder],
            )
        before = [x for x in inner if x.name in first]
        rest = [x for x in inner if x not in blocks and x not in before]
        return [
            ("patch_embedding", children[:at]),
            *(
                (f"encoder_block_{i}", ([*before] if i == 0 else []) + [x])
                for i, x in enumerate(blocks)
            ),
            (HEAD, rest + children[at + 1 :]),
        ]

    return split


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
