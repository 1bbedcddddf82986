"""`FeatureCache` and `cached_fit`: training the top on cached features."""

from __future__ import annotations

import hashlib
import math
import os
import warnings
import weakref
from typing import Any

import keras
import numpy as np

from kerasft._src.caching.ingest import batches
from kerasft._src.caching.ingest import concat
from kerasft._src.caching.ingest import data_key
from kerasft._src.caching.ingest import is_source
from kerasft._src.caching.ingest import to_numpy
from kerasft._src.caching.ingest import unpack
from kerasft._src.caching.split import check_functional
from kerasft._src.caching.split import make_split
from kerasft._src.caching.store import Features
from kerasft._src.caching.store import FeatureSequence
from kerasft._src.caching.store import FeatureStore
from kerasft._src.caching.store import SpillFolders
from kerasft._src.validation import check_int
from kerasft._src.validation import check_model
from kerasft._src.validation import check_type
from kerasft._src.walk import leaf_layers

DEFAULT_MEMORY_BUDGET = 2**30  # 1 GiB


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
    # Bytes of features kept in memory; beyond it they go to memmap files.
    check_int("memory_budget", memory_budget, minimum=0)


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


def _check_callbacks(callbacks):
    check_type(
        "callbacks",
        callbacks,
        (list, tuple),
        "a list of keras.callbacks.Callback",
        allow_none=True,
    )
    for callback in callbacks or []:
        check_type(
            "callbacks",
            callback,
            keras.callbacks.Callback,
            "a list of keras.callbacks.Callback",
        )
    return list(callbacks or [])


def _check_fit_args(model, x, y, callbacks, fit_kwargs):
    _check_schedule_callbacks(callbacks)
    # cached_fit trains with the model's compile settings.
    check_model(model, compiled=True, purpose="cached_fit")
    if x is None:
        raise ValueError("cached_fit needs training data. Received: x=None")
    if is_source(x) and (y is not None or "sample_weight" in fit_kwargs):
        raise ValueError(
            "With a dataset as `x`, the labels and sample weights come "
            "from the dataset; do not pass `y` or `sample_weight`. "
            f"Received: y={type(y).__name__}"
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

    Clean-up is explicit: use the cache as a context manager, or call
    `close()`, to drop the features and delete their memmap files (and the
    temporary folder, when no `cache_dir` is given) as soon as you are done.
    A closed cache raises a ValueError on any further use. A cache that is
    never closed deletes its files when it is garbage collected or at
    interpreter exit (`weakref.finalize`), which may be much later.
    `clear()` deletes the features but keeps the cache usable.

    Example:

    ```python
    kerasft.freeze_until(model, "head", inclusive=False)
    model.compile("adam", "sparse_categorical_crossentropy")
    with kerasft.FeatureCache(model, memory_budget=2**30) as cache:
        cache.fit(images, labels, epochs=5)  # head only, cached features
        kerasft.freeze_until(model, "conv4")  # the cut moves: recomputed
        model.compile(
            keras.optimizers.Adam(1e-5), "sparse_categorical_crossentropy"
        )
        cache.fit(images, labels, epochs=3)
    # the memmap files are deleted here
    ```

    Args:
        model: keras.Model. A built, functional model.
        memory_budget: int. Bytes of features (all cut tensors of one data
            source) kept as numpy arrays in memory; above it, features are
            written to `np.memmap` files. Defaults to 1 GiB.
        cache_dir: str or None. Folder for the memmap files (each data
            source gets a subfolder, deleted by `clear()` and `close()`).
            Defaults to `None` (a temporary folder, deleted by `clear()`
            and `close()`).

    Attributes:
        computations: int. How many times features were computed.
        on_disk: bool. Whether the last training features are memmapped.
        nbytes: int. Size of the last training features in bytes.

    Raises:
        TypeError: for a model that is not functional, a `cache_dir`
            that is not a path, or a `memory_budget` that is not an int.
        ValueError: for a negative `memory_budget`.
    """

    def __init__(
        self,
        model: keras.Model,
        *,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
        cache_dir: str | os.PathLike | None = None,
    ):
        check_functional(model)
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
        self._closed = False
        self._spill = SpillFolders(self.cache_dir)
        # The safety net when `close()` is never called: removes the memmap
        # files once the cache is garbage collected or at interpreter exit.
        self._finalizer = weakref.finalize(self, self._spill.remove)

    # Fingerprints.

    def _structure_key(self):
        model = self.model
        return (
            tuple(id(v) for v in model.trainable_variables),
            tuple((id(x), x.trainable) for x in leaf_layers(model)),
        )

    def _weights_key(self):
        h = hashlib.blake2b(digest_size=16)
        for leaf in self._split.body_leaves:
            for v in leaf.weights:
                h.update(np.asarray(keras.ops.convert_to_numpy(v)).tobytes())
        return h.hexdigest()

    def _refresh(self):
        """Re-cuts and drops features when the frozen part changed."""
        self._check_open()
        structure = self._structure_key()
        if structure != self._structure:
            self._drop_features()
            self._split = make_split(self.model)
            self._structure = structure
            self._weights = None
        if self._split is None:
            return
        weights = self._weights_key()
        if weights != self._weights:
            self._drop_features()
            self._weights = weights

    def _drop_features(self):
        self._entries = {}
        self._spill.remove_folders()

    def clear(self) -> None:
        """Drops all cached features and deletes their memmap files.

        The cache stays usable: the next use computes the features again.
        """
        self._drop_features()
        self._structure = None
        self._split = None
        self._spill.remove()

    def close(self) -> None:
        """Drops the features, deletes the memmap files, ends the cache.

        Arrays returned by `features()` must not be used afterwards: their
        memmap files are gone. Closing twice does nothing; any other use
        of a closed cache raises a ValueError.
        """
        self._entries = {}
        self._structure = None
        self._split = None
        self._finalizer()
        self._closed = True

    @property
    def closed(self) -> bool:
        """Whether `close()` was called."""
        return self._closed

    def __enter__(self) -> FeatureCache:
        self._check_open()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _check_open(self):
        if self._closed:
            raise ValueError(
                "This FeatureCache is closed: `close()` (or the end of its "
                "`with` block) deleted its features. Create a new "
                "`kerasft.FeatureCache(model)`. Received: a closed cache of "
                f"model '{self.model.name}'"
            )

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
        key = (data_key(x), data_key(y) if y is not None else None)
        features = self._entries.get(key)
        if features is not None:
            return features
        features = self._compute(x, y, sample_weight, batch_size or 32)
        self._entries[key] = features
        self.computations += 1
        return features

    def _compute(self, x, y, sample_weight, batch_size):
        body = self._split.body
        store = FeatureStore(self.memory_budget, self._spill.new)
        ys, ws = [], []
        source_batch = None
        for bx, by, bw in batches(x, y, sample_weight, batch_size):
            bx = to_numpy(bx)
            if source_batch is None:
                source_batch = len(keras.tree.flatten(bx)[0])
            out = body.predict_on_batch(bx)
            store.add([np.asarray(o) for o in keras.tree.flatten(out)])
            ys.append(to_numpy(by))
            ws.append(to_numpy(bw))
        if source_batch is None:
            raise ValueError(f"The data source is empty. Received: x={x!r}")
        arrays = store.finish()
        return Features(
            arrays,
            concat(ys),
            concat(ws),
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
        self._check_open()
        check_int("batch_size", batch_size, minimum=1, allow_none=True)
        check_int("epochs", epochs, minimum=0)
        callbacks = _check_callbacks(callbacks)
        _check_fit_args(self.model, x, y, callbacks, fit_kwargs)
        self._refresh()
        if self._split is None:
            warnings.warn(
                f"cached_fit: nothing frozen runs before the trainable "
                f"layers of model '{self.model.name}', so there is nothing "
                "to cache; training with plain `model.fit`.",
                stacklevel=2,
            )
            if batch_size is not None and not is_source(x):
                fit_kwargs["batch_size"] = batch_size
            return self.model.fit(
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
            batch_size = train.batch_size if is_source(x) else 32
        val = self._validation_input(validation_data, batch_size)
        return self._fit_top(
            train, val, batch_size, epochs, callbacks, shuffle, fit_kwargs
        )

    def _validation_input(self, validation_data, batch_size):
        """The cached validation features, as `top.fit` takes them."""
        if validation_data is None:
            return None
        if is_source(validation_data):
            features = self.features(validation_data)
        else:
            vx, vy, vw = unpack(validation_data)
            features = self.features(vx, vy, vw, batch_size=batch_size)
        val = self._as_input(features, batch_size, False)
        if not isinstance(val, keras.utils.PyDataset):
            val = val[:2] if val[2] is None else val
        return val

    def _fit_top(
        self, train, val, batch_size, epochs, callbacks, shuffle, fit_kwargs
    ):
        """Runs `top.fit` with callbacks that see the whole model."""
        model = self.model
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
        common = dict(
            epochs=epochs,
            validation_data=val,
            callbacks=callback_list,
            verbose=verbose,
            **fit_kwargs,
        )
        if isinstance(data, keras.utils.PyDataset):
            # The sequence shuffles the samples itself.
            top.fit(data, shuffle=False, **common)
        else:
            fx, fy, fw = data
            top.fit(
                fx,
                fy,
                batch_size=batch_size,
                shuffle=shuffle,
                sample_weight=fw,
                **common,
            )
        return history

    def _as_input(self, features, batch_size, shuffle):
        if features.on_disk:
            return FeatureSequence(features, batch_size, shuffle)
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
            `memory_budget` and `cache_dir` apply); it stays open, so
            close it when done. Defaults to `None`: a cache for this call
            only, closed (its memmap files deleted) before it returns.
        **fit_kwargs: passed to `fit` (`initial_epoch`, `sample_weight`,
            `class_weight`, `validation_split`, `verbose`, ...).

    Returns:
        A `keras.callbacks.History`.

    Raises:
        TypeError: for a model that is not functional, or a `batch_size`,
            `epochs`, `callbacks` or `memory_budget` of the wrong type.
        ValueError: for an uncompiled model, a model where nothing trains,
            training-time randomness or a BatchNormalization layer in
            training mode below the first trainable stage, an
            `UnfreezeSchedule`/`FreezeUntil` callback, or a
            `batch_size`, `epochs` or `memory_budget` out of range (checked
            before any feature is computed).
    """
    fit_args = dict(
        batch_size=batch_size,
        epochs=epochs,
        validation_data=validation_data,
        callbacks=callbacks,
        shuffle=shuffle,
        **fit_kwargs,
    )
    if cache is None:
        # A cache of this call only: its features and files go at the end.
        with FeatureCache(
            model, memory_budget=memory_budget, cache_dir=cache_dir
        ) as cache:
            return cache.fit(x, y, **fit_args)
    if not isinstance(cache, FeatureCache):
        raise TypeError(
            "`cache` must be a kerasft.FeatureCache or None. "
            f"Received: cache={cache!r} of type {type(cache).__name__}"
        )
    elif cache.model is not model:
        raise ValueError(
            f"`cache` belongs to model '{cache.model.name}', not to "
            f"'{model.name}'. Received: cache={cache!r}"
        )
    return cache.fit(x, y, **fit_args)
