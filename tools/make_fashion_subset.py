"""Writes the Fashion-MNIST subset that ships inside kerasft.

One-off script: it provisions the full Fashion-MNIST set (Debian package
`dataset-fashion-mnist`, through `kerasft.assets`), draws a class-balanced
subset with a fixed seed and writes

- `kerasft/data/fashion_mnist_subset.npz` (compressed): `x_train`,
  `y_train`, `x_test`, `y_test`, `class_names`, and `train_index` /
  `test_index`, the positions of the images in the full training / test
  sets;
- `kerasft/data/FASHION_MNIST_LICENSE.txt`: the MIT license and attribution.

The output is deterministic: running it again rewrites the same arrays.

Usage: `python tools/make_fashion_subset.py [--train-per-class 300]
[--test-per-class 100] [--cache-dir DIR]`
"""

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from kerasft import assets  # noqa: E402

DATA_DIR = os.path.join(ROOT, "kerasft", "data")
SEED = 20170825  # Fashion-MNIST's release date.

LICENSE = """\
Fashion-MNIST subset shipped with kerasft
=========================================

kerasft/data/fashion_mnist_subset.npz holds {n_train} training and {n_test}
test images ({train_per_class} and {test_per_class} per class) drawn with a
fixed seed from Fashion-MNIST, a dataset of Zalando article images by Han Xiao,
Kashif Rasul and Roland Vollgraf (Zalando Research):
https://github.com/zalandoresearch/fashion-mnist

  Han Xiao, Kashif Rasul, Roland Vollgraf. Fashion-MNIST: a Novel Image
  Dataset for Benchmarking Machine Learning Algorithms. arXiv:1708.07747, 2017.

The images were taken from the Debian package dataset-fashion-mnist
(version 0.0~git20200523.55506a9-1) and are unchanged (uint8, 28x28).
The arrays train_index / test_index give each image's position in the
original training / test set. tools/make_fashion_subset.py rebuilds the file.

The MIT License (MIT)

Copyright (c) 2017 Zalando SE, https://tech.zalando.com

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def balanced_indices(labels, per_class, rng):
    """Returns `per_class` random positions of each class, shuffled."""
    chosen = []
    for label in range(len(assets.FASHION_MNIST_CLASS_NAMES)):
        positions = np.flatnonzero(labels == label)
        chosen.append(rng.choice(positions, size=per_class, replace=False))
    return rng.permutation(np.concatenate(chosen))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-per-class", type=int, default=300)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()

    assets.provision(["fashion_mnist"], cache_dir=args.cache_dir)
    (x_train, y_train), (x_test, y_test), names = assets.load_fashion_mnist(
        args.cache_dir
    )
    rng = np.random.default_rng(SEED)
    train_index = balanced_indices(y_train, args.train_per_class, rng)
    test_index = balanced_indices(y_test, args.test_per_class, rng)

    os.makedirs(DATA_DIR, exist_ok=True)
    npz_path = os.path.join(DATA_DIR, "fashion_mnist_subset.npz")
    np.savez_compressed(
        npz_path,
        x_train=x_train[train_index],
        y_train=y_train[train_index].astype("int64"),
        x_test=x_test[test_index],
        y_test=y_test[test_index].astype("int64"),
        class_names=np.array(names),
        train_index=train_index.astype("int32"),
        test_index=test_index.astype("int32"),
    )
    license_path = os.path.join(DATA_DIR, "FASHION_MNIST_LICENSE.txt")
    with open(license_path, "w") as f:
        f.write(
            LICENSE.format(
                n_train=len(train_index),
                n_test=len(test_index),
                train_per_class=args.train_per_class,
                test_per_class=args.test_per_class,
            )
        )
    size_kib = os.path.getsize(npz_path) / 1024
    print(f"wrote {npz_path} ({size_kib:.0f} KiB)")
    print(f"wrote {license_path}")


if __name__ == "__main__":
    main()
