"""Holding features: numpy arrays up to a budget, `np.memmap` files beyond.

The features take `samples x prod(cut shape) x itemsize` bytes. Up to the
memory budget they are numpy arrays; beyond it they are written batch by
batch to one file per cut tensor in a folder the owner provides, and read
back as read-only `np.memmap` arrays, one batch at a time.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile

import keras
import numpy as np

from kerasft._src.caching.ingest import take


class FeatureStore:
    """Features of one data source: in memory, or spilled to memmap files."""

    def __init__(self, budget, folder):
        self.budget = budget
        self.folder = folder
        self.chunks = None
        self.files = None
        self.nbytes = 0
        self.arrays = None

    def add(self, feats):
        feats = [np.asarray(f) for f in feats]
        if self.chunks is None:
            self.chunks = [[] for _ in feats]
        self.nbytes += sum(f.nbytes for f in feats)
        if self.files is None and self.nbytes > self.budget:
            self.files = []
            for i, chunks in enumerate(self.chunks):
                path = os.path.join(self.folder(), f"features_{i}.bin")
                handle = open(path, "wb")
                for c in chunks:
                    handle.write(np.ascontiguousarray(c).tobytes())
                record = [path, handle, feats[i].dtype, feats[i].shape[1:]]
                self.files.append(record)
                chunks.clear()
        for i, f in enumerate(feats):
            if self.files is not None:
                record = self.files[i]
                record[1].write(np.ascontiguousarray(f).tobytes())
                record[2], record[3] = f.dtype, f.shape[1:]
            else:
                self.chunks[i].append(f)

    def finish(self):
        if self.files is None:
            self.arrays = [np.concatenate(c) for c in self.chunks]
            self.chunks = None
            return self.arrays
        arrays = []
        for record in self.files:
            path, handle = record[0], record[1]
            handle.close()
            dtype, shape = record[2], record[3]
            itemsize = np.dtype(dtype).itemsize * int(np.prod(shape))
            count = os.path.getsize(path) // itemsize
            arrays.append(
                np.memmap(path, dtype=dtype, mode="r", shape=(count, *shape))
            )
        self.arrays = arrays
        return arrays

    @property
    def on_disk(self) -> bool:
        return self.files is not None


class Features:
    """Cached features, labels and sample weights of one data source."""

    def __init__(self, arrays, y, sample_weight, on_disk, batch_size, nbytes):
        self.arrays = arrays
        self.y = y
        self.sample_weight = sample_weight
        self.on_disk = on_disk
        self.batch_size = batch_size
        self.nbytes = nbytes

    def __len__(self):
        return len(self.arrays[0])

    @property
    def x(self):
        return self.arrays[0] if len(self.arrays) == 1 else list(self.arrays)


class FeatureSequence(keras.utils.PyDataset):
    """Batches of memmapped features, shuffled per epoch if asked."""

    def __init__(self, features, batch_size, shuffle):
        super().__init__()
        self.features = features
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.order = np.arange(len(features))
        if shuffle:
            np.random.shuffle(self.order)

    def __len__(self):
        return math.ceil(len(self.features) / self.batch_size)

    def __getitem__(self, index):
        idx = self.order[
            index * self.batch_size : (index + 1) * self.batch_size
        ]
        if self.shuffle:
            idx = np.sort(idx)  # contiguous reads from the memmap
        f = self.features
        xs = [np.asarray(a[idx]) for a in f.arrays]
        bx = xs[0] if len(xs) == 1 else xs
        by = take(f.y, idx)
        if f.sample_weight is not None:
            return bx, by, f.sample_weight[idx]
        return bx, by

    def on_epoch_end(self):
        if self.shuffle:
            np.random.shuffle(self.order)


class SpillFolders:
    """The folders memmap files are written to, and their removal.

    One folder per data source, inside `cache_dir` or else inside a
    temporary root created on first use. It holds no reference to the
    cache that owns it, so a `weakref.finalize` can call `remove`.
    """

    def __init__(self, cache_dir: str | None):
        self.cache_dir = cache_dir
        self.root = None
        self.folders = []
        self.count = 0

    def new(self) -> str:
        """Creates and returns a new, empty folder."""
        self.count += 1
        if self.cache_dir is not None:
            root = self.cache_dir
            os.makedirs(root, exist_ok=True)
        else:
            if self.root is None:
                self.root = tempfile.mkdtemp(prefix="kerasft_features_")
            root = self.root
        path = tempfile.mkdtemp(prefix=f"source{self.count}_", dir=root)
        self.folders.append(path)
        return path

    def remove_folders(self) -> None:
        """Deletes every folder made by `new` (and the files in them)."""
        for folder in self.folders:
            shutil.rmtree(folder, ignore_errors=True)
        self.folders = []

    def remove(self) -> None:
        """Deletes the folders and the temporary root."""
        self.remove_folders()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
