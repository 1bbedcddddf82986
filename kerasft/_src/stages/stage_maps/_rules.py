"""A stage rule made of regular expressions, shared by the stage maps."""

import re


def by_pattern(*patterns, names=None):
    """Returns a `stage_of(layer_name)` rule from patterns and exact names.

    Args:
        *patterns: each a regex whose first group is the stage name, or a
            `(regex, template)` pair whose template (`re.Match.expand`)
            builds it. They are tried in order with `re.match`.
        names: dict or None. Exact layer names and their stages, looked up
            before the patterns.
    """
    rules = [
        (re.compile(p), r"\1")
        if isinstance(p, str)
        else (re.compile(p[0]), p[1])
        for p in patterns
    ]
    names = dict(names or {})

    def stage_of(name):
        if name in names:
            return names[name]
        for regex, template in rules:
            match = regex.match(name)
            if match:
                return match.expand(template)
        return None

    return stage_of
