"""The errors of offline asset provisioning, and the command that fixes them."""

COMMAND = "python -m kerasft.assets"


class AssetError(RuntimeError):
    """An asset could not be fetched, checked or converted."""


class AssetDownloadError(AssetError):
    """A registry package could not be downloaded."""


class AssetHashError(AssetError):
    """A file does not have the pinned sha256."""
