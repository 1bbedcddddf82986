"""Feature caching: train the layers above a frozen prefix on cached features.

When the part of a model below its first trainable stage is frozen and
deterministic, every epoch of `model.fit` recomputes the same features for
every sample. `cached_fit` computes them once per sample and trains the rest
of the model on them:

- the functional model is split at the *cut*: the tensors where the frozen,
  deterministic prefix ends. The *body* (inputs to cut) runs once per
  sample, with `predict_on_batch`; the *top* (cut to outputs) is a
  functional model over the SAME layer objects, so training it trains
  `model`. The user-facing model stays whole: `model.predict`,
  `model.save` and the exporters take raw inputs as before.
- the prefix is the stages before the first stage with trainable
  variables (`kerasft.stages`), extended by any further operation that has
  no trainable weights, is deterministic and reads only the prefix (e.g. a
  global pooling layer in the head), so the cache holds the smallest
  tensors available.
- training-time randomness (Dropout, GaussianNoise, `Random*`
  augmentation layers, any layer with a `keras.random.SeedGenerator`) or a
  BatchNormalization layer in training mode inside the frozen stages make
  the cached features wrong, so `cached_fit` refuses them with a
  ValueError. BatchNormalization layers that are not trainable (kerasft's
  `bn="frozen"` policy) run in inference mode in both paths and are fine.
- memory: the features take `samples x prod(cut shape) x itemsize` bytes
  (plus the labels). Up to `memory_budget` bytes they are numpy arrays in
  memory; beyond, they are written batch by batch to an `np.memmap` file in
  `cache_dir` (or a temporary folder removed with the cache) and read back
  one batch at a time.
- invalidation: a `FeatureCache` fingerprints the frozen part (which layers
  are in it, every leaf's `trainable` flag, the trainable variable set and
  a hash of the body's weights) and the data, and recomputes the features
  when any of them changed since the previous call.

The backend-specific step is Keras's own: `top.fit` runs the ordinary
train function of the backend.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import tempfile
import warnings
from typing import Any

import keras
import numpy as np

from kerasft._src import keras_internals
from kerasft._src import walk
from kerasft._src.freezing import _effective_state
from kerasft._src.stages import stages as model_stages

DEFAULT_MEMORY_BUDGET = 2**30  # 1 GiB

_RANDOM_CLASSES = (
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
)


# ---------------------------------------------------------------------------
# The graph walk.


def _is_random(layer) -> bool:
    if isinstance(layer, _RANDOM_CLASSES):
        return True
    if type(layer).__name__.startswith("Random"):
        return True
    return any(
        isinstance(value, keras.random.SeedGenerator)
        for value in keras_internals.layer_attributes(layer)
    )


def _training_time_issue(layer, effective) -> str | None:
    """Why `layer` behaves differently in training, or None."""
    if isinstance(layer, keras.layers.BatchNormalization):
        if effective.get(id(layer), layer.trainable):
            return (
                "BatchNormalization in training mode (it is trainable, so "
                "fit uses batch statistics and updates its moving averages)"
            )
        return None
    if _is_random(layer):
        return f"{type(layer).__name__} (random at training time)"
    return None


class _Split:
    """The body and top models of a model cut, and what the cut holds."""

    def __init__(self, body, top, body_leaves):
        self.body = body
        self.top = top
        self.body_leaves = body_leaves


def _prefix_leaves(model):
    """Leaves of the stages before the first stage that trains."""
    stage_list = model_stages(model)
    first = next((s.index for s in stage_list if s.trainable_variables), None)
    if first is None:
        raise ValueError(
            f"Nothing in model '{model.name}' is trainable, so there is "
            "nothing to train on cached features. Unfreeze the stages to "
            "train first, e.g. `kerasft.freeze_until(model, 'block4')`. "
            f"Received: model with 0 trainable variables"
        )
    leaves = [x for s in stage_list[:first] for x in s.layers]
    return leaves, stage_list[first].name


def _plan(graph_model, trainable_ids, prefix_ids, effective, first_stage):
    """Walks one functional graph; returns (available, mixed, cut, leaves)."""
    available = {id(t) for t in graph_model.inputs}
    body_leaves = []
    mixed = None
    top_nodes = []
    for op, ins, outs in keras_internals.graph_nodes(graph_model):
        leaves = walk.leaf_layers(op) if isinstance(op, keras.Layer) else []
        weights = op.weights if isinstance(op, keras.Layer) else []
        from_body = all(id(t) in available for t in ins)
        trains = any(id(v) in trainable_ids for v in weights)
        issues = [
            (leaf, _training_time_issue(leaf, effective)) for leaf in leaves
        ]
        issues = [(leaf, why) for leaf, why in issues if why]
        for leaf, why in issues:
            if id(leaf) in prefix_ids:
                raise ValueError(
                    f"cached_fit cannot cache features computed by layer "
                    f"'{leaf.name}': {why} runs below the first trainable "
                    f"stage '{first_stage}', so its output changes from one "
                    "epoch to the next. Move augmentation into the data "
                    "pipeline you pass to `model.fit`, remove the layer, "
                    "freeze it in inference mode (BatchNormalization: "
                    "`bn='frozen'`), or train with `model.fit`. Received: "
                    f"layer {leaf.name!r} of type {type(leaf).__name__}"
                )
        if from_body and not trains and not issues and mixed is None:
            available.update(id(t) for t in outs)
            body_leaves.extend(leaves)
        elif (
            from_body
            and mixed is None
            and isinstance(op, keras.Model)
            and len(ins) == 1
            and len(outs) == 1
            and any(id(x) in prefix_ids for x in leaves)
        ):
            mixed = (op, ins[0], outs[0])
        else:
            top_nodes.append((op, ins, outs))
    cut = []
    seen = set()
    for _, ins, _ in top_nodes:
        for t in ins:
            if id(t) in available and id(t) not in seen:
                seen.add(id(t))
                cut.append(t)
    return available, mixed, cut, body_leaves


def _split(graph_model, trainable_ids, prefix_ids, effective, first_stage):
    """Cuts a functional model; returns a `_Split` or None (nothing to cut)."""
    available, mixed, cut, body_leaves = _plan(
        graph_model, trainable_ids, prefix_ids, effective, first_stage
    )
    inputs = _one(graph_model.inputs)
    outputs = graph_model.outputs
    for t in outputs:
        if id(t) in available:
            raise ValueError(
                f"Output '{t.name}' of model '{graph_model.name}' is computed "
                "by frozen layers only, so cached_fit cannot train it. "
                f"Received: a model with {len(outputs)} outputs"
            )
    if mixed is not None:
        op, t_in, t_out = mixed
        if any(id(t) != id(t_in) for t in cut):
            # The top also reads frozen tensors other than the nested
            # model's input: cut in front of the nested model instead.
            if not any(t is t_in for t in cut):
                cut.append(t_in)
            mixed = None
        else:
            inner = _split(
                op, trainable_ids, prefix_ids, effective, first_stage
            )
            if inner is None:
                cut, mixed = [t_in], None
    if mixed is None:
        if all(any(t is i for i in graph_model.inputs) for t in cut):
            return None  # nothing frozen runs before the trainable part
        outputs = _one(outputs)
        body = keras.Model(inputs, _one(cut), name=f"{graph_model.name}_body")
        top = keras.Model(_one(cut), outputs, name=f"{graph_model.name}_top")
        return _Split(body, top, body_leaves)
    # The cut is inside the nested model `op`: body = (outer prefix, then
    # the nested body); top = (the nested top, then the outer rest).
    features = inner.body(t_in)
    body = keras.Model(inputs, features, name=f"{graph_model.name}_body")
    new_inputs = [
        keras.Input(batch_shape=t.shape, dtype=t.dtype)
        for t in keras.tree.flatten(inner.top.inputs)
    ]
    outer_rest = keras.Model(t_out, _one(outputs))
    top_inputs = new_inputs if len(new_inputs) > 1 else new_inputs[0]
    top = keras.Model(
        top_inputs,
        outer_rest(inner.top(top_inputs)),
        name=f"{graph_model.name}_top",
    )
    return _Split(body, top, body_leaves + inner.body_leaves)


def _one(tensors):
    tensors = list(tensors)
    return tensors[0] if len(tensors) == 1 else tensors


def split_model(model: keras.Model) -> tuple[keras.Model, keras.Model] | None:
    """Splits a model at the end of its frozen, deterministic prefix.

    Example:

    ```python
    kerasft.freeze_until(model, "block4")
    body, top = split_model(model)
    features = body.predict(images)
    # top(features) == model(images); top shares model's layers
    ```

    Args:
        model: keras.Model. A built functional model.

    Returns:
        `(body, top)`: `body` maps the model's inputs to the cut tensors,
        `top` maps the cut tensors to the outputs with the same layer
        objects as `model`. `None` if nothing frozen runs before the
        trainable layers.

    Raises:
        TypeError: if `model` is not a functional `keras.Model`.
        ValueError: if nothing trains, or if a random layer or a
            BatchNormalization layer in training mode runs below the first
            trainable stage.
    """
    split = _make_split(model)
    return None if split is None else (split.body, split.top)


def _check_functional(model):
    if isinstance(model, keras.Model) and hasattr(model, "operations"):
        return
    raise TypeError(
        "cached_fit needs a functional keras.Model (built from "
        "`keras.Input`), whose graph can be cut; wrap a Sequential model "
        "with `keras.Model(seq.inputs, seq.outputs)` after building it. "
        f"Received: model={model!r} of type {type(model).__name__}"
    )


def _make_split(model):
    _check_functional(model)
    prefix, first_stage = _prefix_leaves(model)
    trainable_ids = {id(v) for v in model.trainable_variables}
    effective = _effective_state(model)
    return _split(
        model,
        trainable_ids,
        {id(x) for x in prefix},
        effective,
        first_stage,
    )


# ---------------------------------------------------------------------------
# Data: reading inputs once and storing features.


def _is_tf_dataset(x) -> bool:
    return type(x).__module__.startswith("tensorflow") and hasattr(
        x, "element_spec"
    )


def _unpack(batch):
    if isinstance(batch, (tuple, list)) and not isinstance(batch, np.ndarray):
        batch = tuple(batch)
        if len(batch) == 1:
            return batch[0], None, None
        if len(batch) == 2:
            return batch[0], batch[1], None
        if len(batch) == 3:
            return batch
    return batch, None, None


def _to_numpy(value):
    if value is None:
        return None
    return keras.tree.map_structure(
        lambda t: np.asarray(keras.ops.convert_to_numpy(t)), value
    )


def _array_digest(a) -> str:
    flat = np.ascontiguousarray(a).reshape(-1)
    step = max(1, flat.size // 4096)
    h = hashlib.blake2b(digest_size=16)
    h.update(str((a.shape, a.dtype)).encode())
    h.update(np.ascontiguousarray(flat[::step]).tobytes())
    return h.hexdigest()


def _data_key(x):
    """Identifies a data source: arrays by id, shape and a sampled hash."""
    if isinstance(x, keras.utils.PyDataset) or _is_tf_dataset(x):
        return ("source", id(x))
    leaves = keras.tree.flatten(x)
    return tuple(("array", id(a), _array_digest(np.asarray(a))) for a in leaves)


class _Store:
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


class _Features:
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


def _batches(x, y, sample_weight, batch_size):
    """Yields (x, y, sw, batch_size) batches of a data source, as numpy."""
    if isinstance(x, keras.utils.PyDataset):
        for i in range(len(x)):
            bx, by, bw = _unpack(x[i])
            yield bx, by, bw
        return
    if _is_tf_dataset(x):
        for batch in x:
            bx, by, bw = _unpack(batch)
            yield bx, by, bw
        return
    n = len(keras.tree.flatten(x)[0])
    for start in range(0, n, batch_size):
        sl = slice(start, start + batch_size)
        yield (
            _take(x, sl),
            None if y is None else _take(y, sl),
            None if sample_weight is None else sample_weight[sl],
        )


def _take(structure, index):
    return keras.tree.map_structure(lambda a: a[index], structure)


def _concat(parts):
    if not parts or parts[0] is None:
        return None
    return keras.tree.map_structure(
        lambda *xs: np.concatenate([np.asarray(v) for v in xs]), *parts
    )


class _FeatureSequence(keras.utils.PyDataset):
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
        by = _take(f.y, idx)
        if f.sample_weight is not None:
            return bx, by, f.sample_weight[idx]
        return bx, by

    def on_epoch_end(self):
        if self.shuffle:
            np.random.shuffle(self.order)


class _StopTraining(keras.callbacks.Callback):
    """Passes `model.stop_training` (set by callbacks) on to the top."""

    def __init__(self, whole, top):
        super().__init__()
        self._whole = whole
        self._top = top

    def _sync(self):
        if self._whole.stop_training:
            self._top.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        self._sync()

    def on_epoch_end(self, epoch, logs=None):
        self._sync()


# ---------------------------------------------------------------------------
# The public API.


def _check_budget(memory_budget):
    if (
        isinstance(memory_budget, bool)
        or not isinstance(memory_budget, (int, np.integer))
        or memory_budget < 0
    ):
        raise ValueError(
            "`memory_budget` must be an int >= 0 (bytes of features kept in "
            "memory; beyond it they go to a memmap file). "
            f"Received: memory_budget={memory_budget!r}"
        )


def _check_schedule_callbacks(callbacks):
    from kerasft._src.callbacks.trainable_schedule import TrainableSchedule

    for cb in callbacks:
        if isinstance(cb, TrainableSchedule):
            raise ValueError(
                f"cached_fit cannot run {type(cb).__name__}: it changes the "
                "frozen part inside the fit, which moves the cut and "
                "invalidates the cached features. Run one `cached_fit` per "
                "phase instead, e.g. `kerasft.freeze_until(model, stage)` "
                "then `cached_fit(model, x, y, initial_epoch=start, "
                "epochs=end, cache=cache)` with one shared "
                "`kerasft.FeatureCache` (it recomputes features when the "
                "frozen part changes), or train with `model.fit`. "
                f"Received: callbacks containing {cb!r}"
            )


class FeatureCache:
    """Caches the features of a model's frozen prefix across epochs and calls.

    `cached_fit` builds one per call; build one yourself to keep the
    features across several calls (for example one call per unfreezing
    phase, or repeated head training on the same data). Before each use the
    cache checks the frozen part (which layers are in it, every layer's
    `trainable` flag, the trainable variable set and a hash of the body's
    weights) and the data (for arrays: identity, shape and a sampled hash;
    for datasets: identity), and recomputes what changed.

    Example:

    ```python
    kerasft.freeze_until(model, "head", inclusive=False)
    model.compile("adam", "sparse_categorical_crossentropy")
    cache = kerasft.FeatureCache(model, memory_budget=2**30)
    cache.fit(images, labels, epochs=5)  # head only, on cached features
    kerasft.freeze_until(model, "conv4")  # the cut moves: recomputed
    model.compile(
        keras.optimizers.Adam(1e-5), "sparse_categorical_crossentropy"
    )
    cache.fit(images, labels, epochs=3)
    ```

    Args:
        model: keras.Model. A built, functional model.
        memory_budget: int. Bytes of features (all cut tensors of one data
            source) kept as numpy arrays in memory; above it, features are
            written to `np.memmap` files. Defaults to 1 GiB.
        cache_dir: str or None. Folder for the memmap files. Defaults to
            `None` (a temporary folder, removed by `clear()` or when the
            cache is garbage collected).

    Attributes:
        computations: int. How many times features were computed.
        on_disk: bool. Whether the last training features are memmapped.
        nbytes: int. Size of the last training features in bytes.

    Raises:
        TypeError: for a model that is not functional, or a `cache_dir`
            that is not a path.
        ValueError: for a `memory_budget` that is not an int >= 0.
    """

    def __init__(
        self,
        model: keras.Model,
        *,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
        cache_dir: str | os.PathLike | None = None,
    ):
        _check_functional(model)
        _check_budget(memory_budget)
        if cache_dir is not None and not isinstance(
            cache_dir, (str, os.PathLike)
        ):
            raise TypeError(
                "`cache_dir` must be a path or None. "
                f"Received: cache_dir={cache_dir!r}"
            )
        self.model = model
        self.memory_budget = int(memory_budget)
        self.cache_dir = None if cache_dir is None else os.fspath(cache_dir)
        self.computations = 0
        self.on_disk = False
        self.nbytes = 0
        self._split = None
        self._structure = None
        self._weights = None
        self._entries = {}
        self._tmp = None
        self._folders = 0

    # Fingerprints.

    def _structure_key(self):
        model = self.model
        return (
            tuple(id(v) for v in model.trainable_variables),
            tuple((id(x), x.trainable) for x in walk.leaf_layers(model)),
        )

    def _weights_key(self):
        h = hashlib.blake2b(digest_size=16)
        for leaf in self._split.body_leaves:
            for v in leaf.weights:
                h.update(np.asarray(keras.ops.convert_to_numpy(v)).tobytes())
        return h.hexdigest()

    def _refresh(self):
        """Re-cuts and drops features when the frozen part changed."""
        structure = self._structure_key()
        if structure != self._structure:
            self._drop_features()
            self._split = _make_split(self.model)
            self._structure = structure
            self._weights = None
        if self._split is None:
            return
        weights = self._weights_key()
        if weights != self._weights:
            self._drop_features()
            self._weights = weights

    def _folder(self):
        self._folders += 1
        if self.cache_dir is not None:
            root = self.cache_dir
            os.makedirs(root, exist_ok=True)
        else:
            if self._tmp is None:
                self._tmp = tempfile.mkdtemp(prefix="kerasft_features_")
            root = self._tmp
        path = tempfile.mkdtemp(prefix=f"source{self._folders}_", dir=root)
        return path

    def _drop_features(self):
        folders = {
            os.path.dirname(record[0])
            for entry in self._entries.values()
            for record in (entry[1] or [])
        }
        self._entries = {}
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)

    def clear(self) -> None:
        """Drops all cached features and deletes their memmap files."""
        self._drop_features()
        self._structure = None
        self._split = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __del__(self):
        try:
            self.clear()
        except Exception:  # interpreter shutdown
            pass

    @property
    def body(self) -> keras.Model | None:
        """The frozen part: inputs to cut tensors (None if nothing to cut)."""
        self._refresh()
        return None if self._split is None else self._split.body

    @property
    def top(self) -> keras.Model | None:
        """The trained part: cut tensors to outputs, on `model`'s layers."""
        self._refresh()
        return None if self._split is None else self._split.top

    # Features.

    def features(self, x, y=None, sample_weight=None, *, batch_size=None):
        """Returns the cached features of a data source, computing them once.

        Args:
            x: numpy array(s), `tf.data.Dataset` or `keras.utils.PyDataset`.
                Datasets yield `x`, `(x, y)` or `(x, y, sample_weight)`.
            y: labels for array inputs. Defaults to `None`.
            sample_weight: per-sample weights for array inputs. Defaults to
                `None`.
            batch_size: int or None. Batch size of the body's forward pass
                for arrays. Defaults to 32.

        Returns:
            An object with `x` (array or list of arrays, possibly
            memmapped), `y`, `sample_weight`, `on_disk`, `nbytes` and the
            data source's `batch_size`.
        """
        self._refresh()
        if self._split is None:
            raise ValueError(
                "Nothing frozen runs before the trainable layers of model "
                f"'{self.model.name}', so there are no features to cache. "
                "Received: a model whose first stage trains"
            )
        key = (_data_key(x), _data_key(y) if y is not None else None)
        entry = self._entries.get(key)
        if entry is not None:
            return entry[0]
        features = self._compute(x, y, sample_weight, batch_size or 32)
        files = None
        if features.on_disk:
            files = [(a.filename,) for a in features.arrays]
        self._entries[key] = (features, files)
        self.computations += 1
        return features

    def _compute(self, x, y, sample_weight, batch_size):
        body = self._split.body
        store = _Store(self.memory_budget, self._folder)
        ys, ws = [], []
        source_batch = None
        for bx, by, bw in _batches(x, y, sample_weight, batch_size):
            bx = _to_numpy(bx)
            if source_batch is None:
                source_batch = len(keras.tree.flatten(bx)[0])
            out = body.predict_on_batch(bx)
            store.add([np.asarray(o) for o in keras.tree.flatten(out)])
            ys.append(_to_numpy(by))
            ws.append(_to_numpy(bw))
        if source_batch is None:
            raise ValueError(f"The data source is empty. Received: x={x!r}")
        arrays = store.finish()
        return _Features(
            arrays,
            _concat(ys),
            _concat(ws),
            store.on_disk,
            source_batch,
            store.nbytes,
        )

    # Training.

    def fit(
        self,
        x=None,
        y=None,
        *,
        batch_size: int | None = None,
        epochs: int = 1,
        validation_data=None,
        callbacks: list | None = None,
        shuffle: bool = True,
        **fit_kwargs: Any,
    ) -> keras.callbacks.History:
        """Trains `model` on cached features; see `kerasft.cached_fit`."""
        model = self.model
        callbacks = list(callbacks or [])
        _check_schedule_callbacks(callbacks)
        if not getattr(model, "compiled", False) or model.optimizer is None:
            raise ValueError(
                "cached_fit trains with the model's compile settings. Call "
                "`model.compile(optimizer=..., loss=...)` first. "
                f"Received: model={model.name!r} (compiled=False)"
            )
        if x is None:
            raise ValueError("cached_fit needs training data. Received: x=None")
        is_source = isinstance(x, keras.utils.PyDataset) or _is_tf_dataset(x)
        if is_source and (y is not None or "sample_weight" in fit_kwargs):
            raise ValueError(
                "With a dataset as `x`, the labels and sample weights come "
                "from the dataset; do not pass `y` or `sample_weight`. "
                f"Received: y={type(y).__name__}"
            )
        self._refresh()
        if self._split is None:
            warnings.warn(
                f"cached_fit: nothing frozen runs before the trainable "
                f"layers of model '{model.name}', so there is nothing to "
                "cache; training with plain `model.fit`.",
                stacklevel=2,
            )
            if batch_size is not None and not is_source:
                fit_kwargs["batch_size"] = batch_size
            return model.fit(
                x,
                y,
                epochs=epochs,
                validation_data=validation_data,
                callbacks=callbacks,
                shuffle=shuffle,
                **fit_kwargs,
            )
        sample_weight = fit_kwargs.pop("sample_weight", None)
        train = self.features(x, y, sample_weight, batch_size=batch_size)
        self.on_disk = train.on_disk
        self.nbytes = train.nbytes
        if batch_size is None:
            batch_size = train.batch_size if is_source else 32
        val = None
        if validation_data is not None:
            if isinstance(
                validation_data, keras.utils.PyDataset
            ) or _is_tf_dataset(validation_data):
                val_f = self.features(validation_data)
            else:
                vx, vy, vw = _unpack(validation_data)
                val_f = self.features(vx, vy, vw, batch_size=batch_size)
            val = self._as_input(val_f, batch_size, False)
            if not isinstance(val, keras.utils.PyDataset):
                val = val[:2] if val[2] is None else val
        top = self._split.top
        self._compile_top(top)
        data = self._as_input(train, batch_size, shuffle)
        verbose = fit_kwargs.pop("verbose", "auto")
        verbose = 1 if verbose == "auto" else verbose
        steps = fit_kwargs.get("steps_per_epoch") or math.ceil(
            len(train) / batch_size
        )
        history = keras.callbacks.History()
        model.stop_training = False
        # Keras's fit returns `self.history`, which the History callback
        # sets on the model it was given (the whole model).
        top.history = history
        callback_list = keras.callbacks.CallbackList(
            [*callbacks, history, _StopTraining(model, top)],
            add_history=False,
            add_progbar=verbose != 0,
            model=model,
            verbose=verbose,
            epochs=epochs,
            steps=steps,
        )
        if isinstance(data, keras.utils.PyDataset):
            top.fit(
                data,
                epochs=epochs,
                shuffle=False,  # the sequence shuffles samples itself
                validation_data=val,
                callbacks=callback_list,
                verbose=verbose,
                **fit_kwargs,
            )
        else:
            fx, fy, fw = data
            top.fit(
                fx,
                fy,
                batch_size=batch_size,
                epochs=epochs,
                validation_data=val,
                callbacks=callback_list,
                shuffle=shuffle,
                sample_weight=fw,
                verbose=verbose,
                **fit_kwargs,
            )
        return history

    def _as_input(self, features, batch_size, shuffle):
        if features.on_disk:
            return _FeatureSequence(features, batch_size, shuffle)
        return features.x, features.y, features.sample_weight

    def _compile_top(self, top):
        """Compiles `top` like `model`, with the model's optimizer object."""
        model = self.model
        config = model.get_compile_config() or {}
        extra = {}
        for name in ("metrics", "weighted_metrics"):
            value = config.get(name)
            if value is not None:
                extra[name] = keras.saving.deserialize_keras_object(value)
        if config.get("loss_weights") is not None:  # numbers: no objects
            extra["loss_weights"] = config["loss_weights"]
        top.compile(
            optimizer=model.optimizer,
            loss=model.loss,
            run_eagerly=model.run_eagerly,
            jit_compile=model.jit_compile,
            steps_per_execution=model.steps_per_execution,
            **extra,
        )


def cached_fit(
    model: keras.Model,
    x=None,
    y=None,
    *,
    batch_size: int | None = None,
    epochs: int = 1,
    validation_data=None,
    callbacks: list | None = None,
    shuffle: bool = True,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    cache_dir: str | os.PathLike | None = None,
    cache: FeatureCache | None = None,
    **fit_kwargs: Any,
) -> keras.callbacks.History:
    """Trains a model whose lower stages are frozen on cached features.

    The frozen, deterministic part of the model below its first trainable
    stage (the *body*) runs once per sample; the rest (the *top*, the same
    layer objects as `model`) trains for `epochs` epochs on those features.
    With the same seed and batch order the result matches `model.fit` (up to
    float rounding of the body's forward pass). The model stays whole:
    predict and export it as usual.

    Callbacks see the whole `model` (`ModelCheckpoint` saves it,
    `EarlyStopping` stops the cached fit). `UnfreezeSchedule` and
    `FreezeUntil` are refused: run one `cached_fit` per phase with a shared
    `FeatureCache`, which recomputes the features when the frozen part
    changes. A `tf.data.Dataset` or `keras.utils.PyDataset` is read once:
    augmentation or per-epoch shuffling inside it is not repeated
    (`shuffle` reshuffles the cached samples each epoch instead).

    Memory: the features take `samples x prod(cut shape) x itemsize` bytes;
    up to `memory_budget` they are numpy arrays, beyond it `np.memmap` files
    in `cache_dir` (read one batch at a time). The body's forward pass holds
    one batch at a time (datasets: the in-memory features are concatenated
    once at the end, so briefly twice their size).

    Example:

    ```python
    backbone = kerasft.backbones.MobileNet(
        weights=None, input_shape=(96, 96, 3)
    )
    model = kerasft.build_classifier(backbone, num_classes=10)
    kerasft.freeze_until(model, "head", inclusive=False)  # head only
    model.compile("adam", "sparse_categorical_crossentropy")
    history = kerasft.cached_fit(model, images, labels, epochs=10)
    model.predict(images)  # raw pixels, as before
    ```

    Args:
        model: keras.Model. A compiled functional model.
        x: numpy array(s), `tf.data.Dataset` or `keras.utils.PyDataset`.
        y: labels for array inputs. Defaults to `None`.
        batch_size: int or None. Training batch size; for datasets the
            dataset's own batch size. Defaults to `None` (32 for arrays).
        epochs: int. As in `fit`. Defaults to `1`.
        validation_data: as in `fit` (arrays tuple or dataset); its
            features are cached too. Defaults to `None`.
        callbacks: list of `keras.callbacks.Callback`. Defaults to `None`.
        shuffle: bool. Shuffle the cached samples each epoch. Defaults to
            `True`.
        memory_budget: int. Bytes of features kept in memory per data
            source. Defaults to 1 GiB.
        cache_dir: str or None. Folder for memmap files. Defaults to `None`
            (a temporary folder).
        cache: FeatureCache or None. A cache to reuse across calls (its
            `memory_budget` and `cache_dir` apply). Defaults to `None`.
        **fit_kwargs: passed to `fit` (`initial_epoch`, `sample_weight`,
            `class_weight`, `validation_split`, `verbose`, ...).

    Returns:
        A `keras.callbacks.History`.

    Raises:
        TypeError: for a model that is not functional.
        ValueError: for an uncompiled model, a model where nothing trains,
            training-time randomness or a BatchNormalization layer in
            training mode below the first trainable stage, an
            `UnfreezeSchedule`/`FreezeUntil` callback, or a bad
            `memory_budget`.
    """
    if cache is None:
        cache = FeatureCache(
            model, memory_budget=memory_budget, cache_dir=cache_dir
        )
    elif not isinstance(cache, FeatureCache):
        raise TypeError(
            "`cache` must be a kerasft.FeatureCache or None. "
            f"Received: cache={cache!r} of type {type(cache).__name__}"
        )
    elif cache.model is not model:
        raise ValueError(
            f"`cache` belongs to model '{cache.model.name}', not to "
            f"'{model.name}'. Received: cache={cache!r}"
        )
    return cache.fit(
        x,
        y,
        batch_size=batch_size,
        epochs=epochs,
        validation_data=validation_data,
        callbacks=callbacks,
        shuffle=shuffle,
        **fit_kwargs,
    )
