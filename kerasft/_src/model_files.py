"""Loading a saved model file with an error that names the file."""

from __future__ import annotations

import os
import warnings
import zipfile

import keras

from kerasft._src.validation import check_path
from kerasft._src.validation import reading


def load_model_file(
    path: str | os.PathLike,
    *,
    name: str = "model",
    suffixes: tuple[str, ...] = (".keras",),
) -> keras.Model:
    """Loads a model saved by `model.save()`, uncompiled.

    Args:
        path: str or path. The file.
        name: str. The argument or option that gave the path, for messages.
        suffixes: tuple of str. The accepted file extensions.

    Returns:
        The `keras.Model`.

    Raises:
        TypeError: if `path` is not a str or os.PathLike.
        ValueError: if `path` does not end with one of `suffixes`, or the
            file cannot be loaded (empty, truncated, corrupt); the message
            names the file.
        FileNotFoundError: if there is no file at `path`.
    """
    path = check_path(name, path)
    received = f"Received: {name}={path!r}"
    if not path.endswith(suffixes):
        raise ValueError(
            f"`{name}` must be the path of a {' or '.join(suffixes)} file. "
            f"{received}"
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such file: {path}. {received}")
    if path.endswith(".keras") and not zipfile.is_zipfile(path):
        raise ValueError(
            f"Cannot load {path}: a .keras file is a zip archive, and this "
            f"one is empty, truncated or not a .keras file. {received}"
        )
    # A damaged file: a bad zip, a truncated or invalid config.json, a
    # weights file of random bytes, missing keys.
    with (
        reading(
            name,
            path,
            "a model saved by model.save() (if it uses custom classes, import "
            "them first)",
        ),
        warnings.catch_warnings(),
    ):
        # A keras-hub task compiles itself when it is made, with a new
        # optimizer into which Keras then fails to load the saved one's
        # slots, and says so; uncompiled, the optimizer is not used.
        warnings.filterwarnings(
            "ignore", message="Skipping variable loading for optimizer"
        )
        return keras.saving.load_model(path, compile=False)
