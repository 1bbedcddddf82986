"""Names made unique among names already taken."""

from __future__ import annotations


def unique_name(base: str, used: set[str]) -> str:
    """Returns `base`, or `base_1`, `base_2`... if taken, and records it."""
    name, index = base, 1
    while name in used:
        name = f"{base}_{index}"
        index += 1
    used.add(name)
    return name
