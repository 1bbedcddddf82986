"""The package's shape rule: short functions.

A function of `kerasft/` longer than 80 lines of code (its docstring not
counted) needs a reason written beside it, a comment `# long: ...` on its
`def` line or the line before.
"""

import ast
import pathlib

import kerasft

ROOT = pathlib.Path(kerasft.__file__).parent
MAX_LINES = 80


def _body_lines(node):
    body = node.body
    first = body[0]
    docstring = isinstance(first, ast.Expr) and isinstance(
        getattr(first, "value", None), ast.Constant
    )
    if docstring and isinstance(first.value.value, str) and len(body) > 1:
        first = body[1]
    return node.end_lineno - first.lineno + 1


def _long_functions(path, root=ROOT):
    source = path.read_text()
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        length = _body_lines(node)
        if length <= MAX_LINES:
            continue
        around = lines[max(node.lineno - 2, 0) : node.lineno]
        if not any("# long:" in line for line in around):
            found.append(f"{path.relative_to(root)}:{node.lineno} {node.name}")
    return found


def test_functions_are_short_or_say_why():
    long = [f for p in sorted(ROOT.rglob("*.py")) for f in _long_functions(p)]
    assert not long, (
        f"functions over {MAX_LINES} lines without a `# long:` reason: {long}"
    )


def test_the_check_sees_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES + 1))
    path = tmp_path / "m.py"
    path.write_text(f'def f():\n    """Doc."""\n{body}\n')
    assert _long_functions(path, tmp_path) == ["m.py:1 f"]
    path.write_text(f"# long: a table of cases\ndef f():\n{body}\n")
    assert _long_functions(path, tmp_path) == []
