"""Fashion-MNIST: the subset shipped with kerasft and the full set.

The full set's IDX files come from the Debian package
`dataset-fashion-mnist` (MIT, Zalando SE), registered here as the asset
`"fashion_mnist"`. A balanced 4,000-image subset ships inside kerasft, with
its license in `kerasft/data/`, and needs no provisioning.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable

import numpy as np

from kerasft._src.assets.archive import SourceFile
from kerasft._src.assets.archive import extract_members
from kerasft._src.assets.archive import targets
from kerasft._src.assets.errors import COMMAND
from kerasft._src.assets.errors import AssetError
from kerasft._src.assets.fetch import pinned
from kerasft._src.assets.paths import fashion_mnist_dir
from kerasft._src.assets.registry import is_provisioned
from kerasft._src.assets.registry import register_asset

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
    os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ),
    "data",
)
_FASHION_SUBSET_FILE = os.path.join(_DATA_DIR, "fashion_mnist_subset.npz")

FASHION_DEB = pinned(
    "dataset-fashion-mnist==0.0~git20200523.55506a9-1",
    "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb",
    "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0",
)
_FASHION_PREFIX = "./usr/share/datasets/fashion-mnist/"
FASHION_FILES = tuple(
    SourceFile(member=_FASHION_PREFIX + filename, sha256=digest)
    for filename, digest in (
        (
            "t10k-images-idx3-ubyte.gz",
            "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
        ),
        (
            "t10k-labels-idx1-ubyte.gz",
            "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
        ),
        (
            "train-images-idx3-ubyte.gz",
            "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
        ),
        (
            "train-labels-idx1-ubyte.gz",
            "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
        ),
    )
)


def _provision_fashion_mnist(
    packages: list[str], cache: str, log: Callable[..., None]
) -> None:
    extract_members(packages[0], FASHION_FILES, fashion_mnist_dir(cache), log)


register_asset(
    "fashion_mnist",
    sources=[FASHION_DEB],
    provision=_provision_fashion_mnist,
    paths=lambda cache: targets(FASHION_FILES, fashion_mnist_dir(cache)),
    description="the full Fashion-MNIST set (60,000 + 10,000 images)",
    overwrite=True,
)


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
            f"{fashion_mnist_dir(cache_dir)}. Run `{COMMAND} --only "
            "fashion_mnist` first."
        )
    directory = fashion_mnist_dir(cache_dir)

    def read(filename):
        with gzip.open(os.path.join(directory, filename), "rb") as f:
            return parse_idx(f.read())

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


def parse_idx(blob: bytes) -> np.ndarray:
    """Parses an IDX file of unsigned bytes (the MNIST format)."""
    if blob[:3] != b"\x00\x00\x08":
        raise AssetError("Not an IDX file of unsigned bytes.")
    ndim = blob[3]
    shape = tuple(
        int.from_bytes(blob[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    )
    data = np.frombuffer(blob, dtype=np.uint8, offset=4 + 4 * ndim)
    return data.reshape(shape).copy()
