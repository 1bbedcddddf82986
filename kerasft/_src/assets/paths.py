"""Where offline assets land: the kerasft cache and Keras's model cache."""

from __future__ import annotations

import os
import shutil
import tempfile

from kerasft._src.validation import check_bool
from kerasft._src.validation import check_int


def default_cache_dir() -> str:
    """Returns the directory kerasft caches downloads and converted files in.

    `$KERASFT_CACHE_DIR` if set, else `$XDG_CACHE_HOME/kerasft`, else
    `~/.cache/kerasft`.

    Example:

    ```python
    cache = kerasft.assets.default_cache_dir()
    ```

    Returns:
        The absolute path (it may not exist yet).
    """
    if os.environ.get("KERASFT_CACHE_DIR"):
        return os.path.abspath(os.environ["KERASFT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    return os.path.abspath(os.path.join(base, "kerasft"))


def resolve_cache_dir(cache_dir: str | os.PathLike | None) -> str:
    """Returns the absolute cache directory for a `cache_dir` argument.

    Raises:
        TypeError: if `cache_dir` is neither a path nor None.
    """
    if cache_dir is None:
        return default_cache_dir()
    if not isinstance(cache_dir, (str, os.PathLike)):
        raise TypeError(
            "`cache_dir` must be a path (str) or None. "
            f"Received: cache_dir={cache_dir!r}"
        )
    return os.path.abspath(os.path.expanduser(os.fspath(cache_dir)))


def keras_models_dir() -> str:
    """Returns the directory where Keras looks for cached application weights.

    This mirrors what `keras.utils.get_file(..., cache_subdir="models")` does
    (checked on Keras 3.15): the base is `$KERAS_HOME`, else `~/.keras` (or
    `/tmp/.keras` when the home directory is not writable); when the base
    cannot be written to, Keras uses `/tmp/.keras` instead. `KERAS_HOME` is
    read when Keras is imported, so set it before importing Keras.

    Example:

    ```python
    models_dir = kerasft.assets.keras_models_dir()
    ```

    Returns:
        The absolute path of the `models` directory (it may not exist yet).
    """
    if "KERAS_HOME" in os.environ:
        base = os.environ["KERAS_HOME"]
    else:
        home = os.path.expanduser("~")
        base = os.path.join(
            home if os.access(home, os.W_OK) else "/tmp", ".keras"
        )
    base = os.path.expanduser(base)
    # Importing Keras creates its base directory when it can, so a missing
    # base counts as writable when its parent is.
    parent = os.path.dirname(os.path.abspath(base))
    writable = (
        os.access(base, os.W_OK)
        if os.path.exists(base)
        else os.access(parent, os.W_OK)
    )
    if not writable:
        base = os.path.join(
            "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(),
            ".keras",
        )
    return os.path.abspath(os.path.join(base, "models"))


# The input sizes Keras has MobileNet v1 ImageNet weights for: it loads the
# file of the input size when the input is square and one of these, and the
# 224-pixel file for any other input (checked on Keras 3.15).
MOBILENET_V1_SIZES = (128, 160, 192, 224)


def mobilenet_v1_imagenet_path(
    include_top: bool = False, *, image_size: int = 224
) -> str:
    """Returns where Keras looks for the MobileNet v1 1.0 ImageNet weights.

    `keras.applications.MobileNet(alpha=1.0, weights="imagenet")` looks for
    one file per input size: `mobilenet_1_0_<size>_tf.h5` (or
    `..._tf_no_top.h5`) for a square input of 128, 160, 192 or 224 pixels,
    and the 224-pixel file for any other size. `python -m kerasft.assets
    --only mobilenet_v1` writes all of them, so Keras loads them offline at
    every input size.

    Example:

    ```python
    path = kerasft.assets.mobilenet_v1_imagenet_path(image_size=128)
    ```

    Args:
        include_top: bool. Whether to return the file with the 1000-class
            ImageNet classifier (`include_top=True`) or the convolution stack
            only. Defaults to `False`.
        image_size: int >= 32. The side of the square input, in pixels.
            Defaults to `224`.

    Returns:
        The absolute path of the legacy `.h5` weights file.

    Raises:
        TypeError: if `include_top` is not a bool or `image_size` not an
            int.
        ValueError: if `image_size` is below 32.
    """
    check_bool("include_top", include_top)
    # keras.applications refuses inputs smaller than 32 pixels.
    check_int("image_size", image_size, minimum=32)
    size = image_size if image_size in MOBILENET_V1_SIZES else 224
    suffix = "" if include_top else "_no_top"
    return os.path.join(
        keras_models_dir(), f"mobilenet_1_0_{size}_tf{suffix}.h5"
    )


def mobilenet_v1_imagenet_paths() -> list[str]:
    """Every file of the `mobilenet_v1` asset, the 224-pixel ones first."""
    sizes = sorted(MOBILENET_V1_SIZES, key=lambda size: size != 224)
    return [
        mobilenet_v1_imagenet_path(include_top, image_size=size)
        for size in sizes
        for include_top in (True, False)
    ]


def vgg16_hed_path(cache_dir: str | None = None) -> str:
    """Returns the path of the converted VGG16 (HED) convolution weights.

    Pass it to `keras.applications.VGG16(include_top=False, weights=path)`
    (or `kerasft.backbones.VGG16(weights=path)`). The file exists once
    `python -m kerasft.assets --only vgg16_hed` has run. The weights are the
    VGG16 stack of the HED edge detector, fine-tuned from ImageNet VGG16:
    real pretrained filters, but weaker as generic features than ImageNet's.

    Example:

    ```python
    path = kerasft.assets.vgg16_hed_path()
    ```

    Args:
        cache_dir: str or None. The kerasft cache directory. Defaults to
            `default_cache_dir()`.

    Returns:
        The absolute path of the legacy `.h5` weights file.
    """
    return os.path.join(resolve_cache_dir(cache_dir), "vgg16_hed_notop.h5")


def fashion_mnist_dir(cache_dir: str | None = None) -> str:
    """Returns the directory holding the full Fashion-MNIST IDX `.gz` files.

    The files exist once `python -m kerasft.assets --only fashion_mnist` has
    run.

    Example:

    ```python
    directory = kerasft.assets.fashion_mnist_dir()
    ```

    Args:
        cache_dir: str or None. The kerasft cache directory. Defaults to
            `default_cache_dir()`.

    Returns:
        The absolute path of the directory.
    """
    return os.path.join(resolve_cache_dir(cache_dir), "fashion_mnist")


def publish(tmp: str, target: str) -> None:
    """Moves a finished temporary file into place with ordinary permissions.

    `tempfile.mkstemp` creates files readable by their owner only.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, target)


def link(source: str, target: str) -> None:
    """Puts a link to `source` at `target`, atomically, replacing any file.

    A relative symbolic link when `target` is in the same directory, so the
    link follows `source` when that is written again; a copy where the file
    system does not allow symbolic links.
    """
    directory = os.path.dirname(target)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".part")
    os.close(fd)
    try:
        os.remove(tmp)
        try:
            os.symlink(os.path.relpath(source, directory), tmp)
        except (OSError, NotImplementedError):
            shutil.copyfile(source, tmp)
            publish(tmp, target)
            return
        os.replace(tmp, target)
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)
