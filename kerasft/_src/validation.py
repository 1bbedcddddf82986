"""Argument checks shared by every kerasft module: one exception policy.

- A value of the wrong *type* raises `TypeError`.
- A value of the right type but outside what is allowed raises `ValueError`.
- Both say what is allowed and end with `Received: name=value` (plus the
  type for a `TypeError`), the way Keras's own checks read.

`bool` is never accepted where a number is asked for (`True` is an `int` in
Python, but `epochs=True` is a mistake), and NaN or infinity never passes a
number check. Every check returns the value in its plain Python form
(`int`, `float`, ...) so callers can store it.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import numbers
import os
import pickle
import zipfile
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from typing import Any


def _received(name: str, value: Any, with_type: bool = False) -> str:
    text = f"Received: {name}={value!r}"
    if with_type:
        text += f" of type {type(value).__name__}"
    return text


def _bounds(minimum, maximum, min_inclusive, max_inclusive) -> str:
    parts = []
    if minimum is not None:
        parts.append(f"{'>=' if min_inclusive else '>'} {minimum}")
    if maximum is not None:
        parts.append(f"{'<=' if max_inclusive else '<'} {maximum}")
    return " and ".join(parts)


def _in_range(value, minimum, maximum, min_inclusive, max_inclusive) -> bool:
    if minimum is not None and (
        value < minimum if min_inclusive else value <= minimum
    ):
        return False
    if maximum is not None and (
        value > maximum if max_inclusive else value >= maximum
    ):
        return False
    return True


def _check_real(name, value, kind, noun, limits, allow_none):
    """Raises unless `value` is a finite `kind` (never a bool) in `limits`.

    `limits` is `(minimum, maximum, min_inclusive, max_inclusive)`.
    """
    what = f"{noun} {_bounds(*limits)}".rstrip()
    what += " or None" if allow_none else ""
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError(
            f"`{name}` must be {what}. {_received(name, value, True)}"
        )
    finite = isinstance(value, numbers.Integral) or math.isfinite(value)
    if not finite or not _in_range(value, *limits):
        raise ValueError(f"`{name}` must be {what}. {_received(name, value)}")


def check_int(
    name: str,
    value: Any,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    allow_none: bool = False,
) -> int | None:
    """Checks an integer argument, e.g. `epochs` (`minimum=1`).

    Raises:
        TypeError: `value` is not an int (a bool is not an int here).
        ValueError: `value` is outside `[minimum, maximum]`.
    """
    if value is None and allow_none:
        return None
    limits = (minimum, maximum, True, True)
    _check_real(name, value, numbers.Integral, "an int", limits, allow_none)
    return int(value)


def check_number(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    min_inclusive: bool = True,
    max_inclusive: bool = True,
    allow_none: bool = False,
) -> float | None:
    """Checks a finite real argument, e.g. a rate (`minimum=0`, exclusive).

    Raises:
        TypeError: `value` is not a real number (a bool is not one here).
        ValueError: `value` is NaN, infinite, or outside the bounds.
    """
    if value is None and allow_none:
        return None
    limits = (minimum, maximum, min_inclusive, max_inclusive)
    _check_real(
        name, value, numbers.Real, "a finite number", limits, allow_none
    )
    return float(value)


def check_bool(name: str, value: Any) -> bool:
    """Checks a `True`/`False` argument (not 0/1, not a string).

    Raises:
        TypeError: `value` is not a bool.
    """
    if not isinstance(value, bool):
        raise TypeError(
            f"`{name}` must be True or False. {_received(name, value, True)}"
        )
    return value


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Checks that `value` is one of `allowed`, suggesting the closest one.

    Raises:
        ValueError: `value` is not in `allowed`.
    """
    allowed = list(allowed)
    try:
        if value in allowed:
            return value
    except TypeError:  # unhashable or incomparable values
        pass
    hint = ""
    if isinstance(value, str):
        names = [a for a in allowed if isinstance(a, str)]
        close = difflib.get_close_matches(value, names, n=1)
        if close:
            hint = f" Did you mean {close[0]!r}?"
    raise ValueError(
        f"`{name}` must be one of {allowed}.{hint} {_received(name, value)}"
    )


def check_type(
    name: str,
    value: Any,
    types: type | tuple[type, ...],
    what: str,
    *,
    allow_none: bool = False,
) -> Any:
    """Checks `isinstance(value, types)`; `what` reads like "a keras.Model".

    Raises:
        TypeError: `value` is not an instance of `types`.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) and bool not in _as_tuple(types):
        ok = False
    else:
        ok = isinstance(value, types)
    if not ok:
        what += " or None" if allow_none else ""
        raise TypeError(
            f"`{name}` must be {what}. {_received(name, value, True)}"
        )
    return value


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _as_tuple(types) -> tuple:
    return types if isinstance(types, tuple) else (types,)


def check_callable(
    name: str, value: Any, what: str = "a callable", allow_none: bool = False
) -> Callable | None:
    """Checks a function argument such as `print_fn` or `log`.

    Raises:
        TypeError: `value` is not callable.
    """
    if value is None and allow_none:
        return None
    if not callable(value):
        what += " or None" if allow_none else ""
        raise TypeError(
            f"`{name}` must be {what}. {_received(name, value, True)}"
        )
    return value


def check_path(name: str, value: Any, *, allow_none: bool = False) -> Any:
    """Checks a file-system path argument: a non-empty str or os.PathLike.

    An empty string is refused rather than read as the current directory.

    Returns:
        The path as a `str`, or `None` when allowed and given.

    Raises:
        TypeError: `value` is not a str or os.PathLike.
        ValueError: `value` is empty or contains a NUL character.
    """
    if value is None and allow_none:
        return None
    if not isinstance(value, (str, os.PathLike)):
        what = "a path (str or os.PathLike)"
        what += " or None" if allow_none else ""
        raise TypeError(
            f"`{name}` must be {what}. {_received(name, value, True)}"
        )
    path = os.fspath(value)
    if isinstance(path, bytes):
        raise TypeError(
            f"`{name}` must be a str path, not bytes. {_received(name, value)}"
        )
    if not path or "\x00" in path:
        raise ValueError(
            f"`{name}` must be a non-empty path without NUL characters. "
            f"{_received(name, value)}"
        )
    return path


def check_shape(name: str, value: Any, rank: int) -> tuple:
    """Checks a shape argument such as `input_shape`: `rank` sizes > 0.

    `None` is accepted for a size (any length).

    Raises:
        TypeError: `value` is not a tuple or list.
        ValueError: it has another length, or a size that is not an int > 0.
    """
    what = f"a tuple of {rank} sizes (ints > 0 or None)"
    check_type(name, value, (tuple, list), what)
    if len(value) != rank or not all(
        d is None or (_is_int(d) and d > 0) for d in value
    ):
        raise ValueError(f"`{name}` must be {what}. {_received(name, value)}")
    return tuple(value)


def check_dropout(name: str, value: Any) -> float:
    """Checks a dropout rate: a number in `[0, 1)`.

    Raises:
        TypeError: `value` is not a real number.
        ValueError: `value` is outside `[0, 1)`.
    """
    return check_number(name, value, minimum=0, maximum=1, max_inclusive=False)


def check_model(
    model: Any,
    *,
    built: bool = False,
    weights: bool = False,
    compiled: bool = False,
    purpose: str | None = None,
    name: str = "model",
) -> Any:
    """Checks a `model` argument: a `keras.Model`, built or compiled if asked.

    Args:
        model: the argument.
        built: bool. Whether the model must be built (its layers have
            weights to look at).
        weights: bool. Whether it must also have at least one weight.
        compiled: bool. Whether it must be compiled with an optimizer.
        purpose: str or None. What needs the model, for the message
            (e.g. `"L2SP"`).
        name: str. The argument's name, for the message.

    Raises:
        TypeError: `model` is not a `keras.Model`.
        ValueError: it is not built, has no weights, or is not compiled.
    """
    import keras

    for_ = f" for {purpose}" if purpose else ""
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`{name}` must be a keras.Model{for_}. "
            f"{_received(name, model, True)}"
        )
    if (built or weights) and not model.built or weights and not model.weights:
        raise ValueError(
            f"Model '{model.name}' is not built yet, so it has no weights"
            f"{for_}. Build it first: call it on a batch of data, use "
            "`model.build(input_shape)`, or start it with a `keras.Input`. "
            f"Received: model={model.name!r} (built={model.built}, "
            f"weights={len(model.weights)})"
        )
    optimizer = getattr(model, "optimizer", None)
    if compiled and (
        not getattr(model, "compiled", False) or optimizer is None
    ):
        raise ValueError(
            f"Model '{model.name}' is not compiled with an optimizer{for_}. "
            "Call `model.compile(optimizer=..., loss=...)` first. "
            f"Received: model={model.name!r} (compiled="
            f"{getattr(model, 'compiled', False)}, optimizer={optimizer!r})"
        )
    return model


def check_hdf5(name: str, path: str) -> str:
    """Checks that `path` is a readable HDF5 file (`.h5`, `.weights.h5`).

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: it is empty, truncated or not an HDF5 file.
    """
    import h5py

    with reading(name, path, "an HDF5 weights file"):
        with h5py.File(path, "r"):
            pass
    return path


# What readers (numpy, h5py, json, safetensors headers) raise on a file that
# is empty, truncated or not of the expected format.
_READ_ERRORS = (
    OSError,
    ValueError,
    EOFError,
    KeyError,
    TypeError,
    AttributeError,
    zipfile.BadZipFile,
    pickle.UnpicklingError,
)


@contextlib.contextmanager
def reading(name: str, path: str, what: str) -> Iterator[None]:
    """Names the file when reading it fails: missing, empty or corrupt.

    Wrap only the read itself, so that the caller's own checks on what was
    read keep their messages.

    Example:

    ```python
    with reading("filepath", filepath, "an .npz archive"):
        data = dict(np.load(filepath))
    ```

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: the reader failed; the message names the file, what it
            should be and the reader's error.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"No such file: {path!r} (expected {what}). {_received(name, path)}"
        )
    try:
        yield
    except _READ_ERRORS as error:
        raise ValueError(
            f"Cannot read {path!r} as {what}: the file is empty, truncated "
            f"or of another format ({type(error).__name__}: {error}). "
            f"{_received(name, path)}"
        ) from error
