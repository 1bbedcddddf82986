"""Keras internals are used in one module: kerasft/_src/keras_internals.py.

An AST check over every other module of `kerasft/` fails on:

- an import or attribute path through `keras.src`;
- `vars(...)` or `.__dict__` on anything;
- `x._name` where `_name` is a private attribute name Keras itself uses
  (`self._name` anywhere in Keras's sources, or a private name of a Layer,
  Model, Optimizer or Variable instance), unless `x` is `self` inside a
  kerasft class that does not derive from a Keras class (then the attribute
  is kerasft's own), or `x` is a kerasft module.

A self-test plants offending snippets so the check cannot rot into a test
that passes because it finds nothing.
"""

from __future__ import annotations

import ast
import functools
import pathlib
import re

import keras
import numpy as np
import pytest

import kerasft
from kerasft._src import keras_internals

PACKAGE = pathlib.Path(kerasft.__file__).parent
QUARANTINE = PACKAGE / "_src" / "keras_internals.py"

# The one exception, (module relative to the package, code): argparse
# documents `vars(args)` as the way to turn its Namespace, not a Keras
# object, into a dict.
ALLOWED = {("_src/cli.py", "vars(args)")}


@functools.cache
def keras_private_names() -> frozenset:
    """Private attribute names Keras uses on its own objects."""
    names = set()
    pattern = re.compile(r"self\.(_[a-z]\w*)")
    for path in (pathlib.Path(keras.__file__).parent / "src").rglob("*.py"):
        names.update(pattern.findall(path.read_text(encoding="utf-8")))
    inputs = keras.Input((3,))
    layer = keras.layers.Dense(2)
    model = keras.Model(inputs, layer(inputs))
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    variable = keras.Variable(np.zeros((2,)))
    for obj in (layer, model, optimizer, variable):
        names.update(
            n for n in dir(obj) if n.startswith("_") and not n.endswith("__")
        )
    return frozenset(names)


def _keras_object(node: ast.expr):
    """The Keras object a `keras.a.b` expression names, or None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not (isinstance(node, ast.Name) and node.id == "keras"):
        return None
    obj = keras
    for part in reversed(parts):
        obj = getattr(obj, part, None)
    return obj


def _is_keras_expr(node: ast.expr) -> bool:
    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name) and node.id == "keras"


class _Classes:
    """kerasft's classes: which derive from Keras, and their own methods."""

    def __init__(self, trees: dict):
        self.bases = {}
        self.methods = {}
        for tree in trees.values():
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    self.bases.setdefault(node.name, []).extend(node.bases)
                    self.methods.setdefault(node.name, set()).update(
                        item.name
                        for item in node.body
                        if isinstance(
                            item, (ast.FunctionDef, ast.AsyncFunctionDef)
                        )
                    )

    def _chain(self, name, seen=None):
        """The kerasft classes in `name`'s ancestry, and its Keras bases."""
        seen = set() if seen is None else seen
        if name in seen or name not in self.bases:
            return set(), []
        seen.add(name)
        own, keras_bases = {name}, []
        for expr in self.bases[name]:
            if _is_keras_expr(expr):
                keras_bases.append(_keras_object(expr))
            elif isinstance(expr, ast.Name):
                more, bases = self._chain(expr.id, seen)
                own |= more
                keras_bases += bases
        return own, keras_bases

    def is_keras(self, name) -> bool:
        return bool(self._chain(name)[1])

    def owns(self, name, attr) -> bool:
        """Whether `self.<attr>` in class `name` is kerasft's own.

        In a class that does not derive from Keras, every attribute is.
        In a Keras subclass, a method kerasft defines in the class (or a
        kerasft ancestor) is, unless a Keras base class has that name.
        """
        own, keras_bases = self._chain(name)
        if not keras_bases:
            return True
        if any(hasattr(base, attr) for base in keras_bases):
            return False
        return any(attr in self.methods.get(c, ()) for c in own)


def _kerasft_module_aliases(tree: ast.Module) -> set:
    """Local names bound to kerasft modules by imports."""
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("kerasft"):
                    aliases.add(a.asname or a.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and (
            node.module or ""
        ).startswith("kerasft"):
            for a in node.names:
                module = f"{node.module}.{a.name}"
                if (PACKAGE.parent / module.replace(".", "/")).with_suffix(
                    ".py"
                ).exists() or (
                    PACKAGE.parent / module.replace(".", "/")
                ).is_dir():
                    aliases.add(a.asname or a.name)
    return aliases


class _Checker(ast.NodeVisitor):
    def __init__(self, rel, source, classes, private):
        self.rel = rel
        self.source = source
        self.classes = classes
        self.private = private
        self.modules = set()
        self.scope = []  # names of the enclosing classes
        self.problems = []

    def report(self, node, why):
        code = ast.get_source_segment(self.source, node) or ""
        if (self.rel, code) not in ALLOWED:
            self.problems.append(f"{self.rel}:{node.lineno}: {why}: {code}")

    def visit_Module(self, node):
        self.modules = _kerasft_module_aliases(node)
        self.generic_visit(node)

    def visit_ClassDef(self, node):
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    def visit_Import(self, node):
        for a in node.names:
            if a.name == "keras.src" or a.name.startswith("keras.src."):
                self.report(node, "imports keras.src")

    def visit_ImportFrom(self, node):
        module = node.module or ""
        if module == "keras.src" or module.startswith("keras.src."):
            self.report(node, "imports keras.src")
        elif module == "keras" and any(a.name == "src" for a in node.names):
            self.report(node, "imports keras.src")

    def visit_Call(self, node):
        if isinstance(node.func, ast.Name) and node.func.id == "vars":
            self.report(node, "calls vars()")
        self.generic_visit(node)

    def visit_Attribute(self, node):
        attr = node.attr
        if attr == "src" and _is_keras_expr(node.value):
            self.report(node, "reaches keras.src")
        elif attr == "__dict__":
            self.report(node, "reads __dict__")
        elif attr in self.private and not self._owned(node.value, attr):
            self.report(node, f"uses Keras's private attribute {attr}")
        self.generic_visit(node)

    def _owned(self, receiver, attr):
        if not isinstance(receiver, ast.Name):
            return False
        if receiver.id in self.modules:
            return True
        if receiver.id == "self" and self.scope:
            return self.classes.owns(self.scope[-1], attr)
        return False


def find_offenders(sources: dict) -> list:
    """Offences in `{relative path: source}`; see the module docstring."""
    trees = {rel: ast.parse(src) for rel, src in sources.items()}
    classes = _Classes(trees)
    private = keras_private_names()
    problems = []
    for rel, tree in trees.items():
        checker = _Checker(rel, sources[rel], classes, private)
        checker.visit(tree)
        problems.extend(checker.problems)
    return problems


def _package_sources() -> dict:
    return {
        path.relative_to(PACKAGE).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != QUARANTINE
    }


def test_only_keras_internals_touches_keras_internals():
    problems = find_offenders(_package_sources())
    assert not problems, (
        "Keras internals outside kerasft/_src/keras_internals.py (move them "
        "there, with the reason and the Keras version):\n" + "\n".join(problems)
    )


def test_the_check_sees_the_whole_package():
    sources = _package_sources()
    assert len(sources) > 30 and "__init__.py" in sources
    assert "_src/keras_internals.py" not in sources
    assert "_inbound_nodes" in keras_private_names()
    assert "_inner_optimizers" in keras_private_names()


PLANTED = """
import keras
import keras.src.ops
from keras.src import backend
from keras import src
from kerasft._src import stages


class Callback(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        self._model.stop_training = True


class Child(Callback):
    def hook(self):
        return self._model, self._start(), self._api_export_path()

    def _start(self):
        return self._tracker

    def _api_export_path(self):
        return None


class Own:
    def __init__(self):
        self._model = None
        self._variables = []

    def read(self, layer):
        return layer._inbound_nodes, self._model, stages._unique


def walk(layer, optimizer):
    keras.src.utils.something()
    return vars(layer), layer.__dict__, optimizer._inner_optimizers
"""


def test_the_check_catches_planted_offences():
    problems = find_offenders({"planted.py": PLANTED})
    found = [p.split(": ", 1)[1] for p in problems]
    assert found == [
        "imports keras.src: import keras.src.ops",
        "imports keras.src: from keras.src import backend",
        "imports keras.src: from keras import src",
        "uses Keras's private attribute _model: self._model",
        "uses Keras's private attribute _model: self._model",
        "uses Keras's private attribute _api_export_path: "
        "self._api_export_path",
        "uses Keras's private attribute _tracker: self._tracker",
        "uses Keras's private attribute _inbound_nodes: layer._inbound_nodes",
        "reaches keras.src: keras.src",
        "calls vars(): vars(layer)",
        "reads __dict__: layer.__dict__",
        "uses Keras's private attribute _inner_optimizers: "
        "optimizer._inner_optimizers",
    ], problems


def test_the_one_exception_is_exact():
    assert find_offenders({"_src/cli.py": "x = vars(args)\n"}) == []
    assert find_offenders({"_src/cli.py": "x = vars(model)\n"}) != []
    assert find_offenders({"_src/other.py": "x = vars(args)\n"}) != []


def _compiled_model():
    inputs = keras.Input((3,))
    x = keras.layers.Dense(2, name="body")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(x))
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((4, 3)), np.ones((4, 1)), epochs=1, verbose=0)
    return model


def test_mutating_rebuilds_the_optimizer_only_when_asked():
    model = _compiled_model()
    optimizer = model.optimizer
    with keras_internals.mutating(
        model, optimizer="rebuild_if_changed", steps="reset"
    ):
        pass
    assert model.optimizer is optimizer
    with keras_internals.mutating(
        model, optimizer="rebuild_if_changed", steps="reset"
    ):
        model.get_layer("body").trainable = False
    assert model.optimizer is not optimizer
    assert len(model.optimizer.variables) < len(optimizer.variables)
    rebuilt = model.optimizer
    with keras_internals.mutating(model, optimizer="rebuild", steps="reset"):
        pass
    assert model.optimizer is not rebuilt
    with keras_internals.mutating(model, optimizer="keep", steps="reset_loss"):
        model.get_layer("body").trainable = True
    assert model.optimizer is not rebuilt


def test_mutating_changes_nothing_when_the_block_raises():
    model = _compiled_model()
    optimizer = model.optimizer
    with pytest.raises(RuntimeError, match="boom"):
        with keras_internals.mutating(
            model, optimizer="rebuild", steps="reset"
        ):
            model.get_layer("body").trainable = False
            raise RuntimeError("boom")
    assert model.optimizer is optimizer


def test_mutating_rejects_unknown_modes():
    model = _compiled_model()
    with pytest.raises(ValueError, match="Received: optimizer='new'"):
        with keras_internals.mutating(model, optimizer="new", steps="reset"):
            pass
    with pytest.raises(ValueError, match="Received: steps='all'"):
        with keras_internals.mutating(model, optimizer="keep", steps="all"):
            pass
    with pytest.raises(ValueError, match="needs new step functions"):
        with keras_internals.mutating(model, optimizer="rebuild", steps="keep"):
            pass
