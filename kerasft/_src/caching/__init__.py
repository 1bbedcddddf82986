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
  `cache_dir` (or a temporary folder) and read back one batch at a time.
  `FeatureCache.close()` (or leaving its `with` block) deletes the files;
  a `weakref.finalize` deletes them if the cache is collected unclosed.
- invalidation: a `FeatureCache` fingerprints the frozen part (which layers
  are in it, every leaf's `trainable` flag, the trainable variable set and
  a hash of the body's weights) and the data, and recomputes the features
  when any of them changed since the previous call.

The backend-specific step is Keras's own: `top.fit` runs the ordinary
train function of the backend.

One job per module: `split` (the cut), `ingest` (reading a data source
once), `store` (in-memory arrays or memmap files) and `cache`
(`FeatureCache`, `cached_fit`).
"""

from kerasft._src.caching.cache import DEFAULT_MEMORY_BUDGET
from kerasft._src.caching.cache import FeatureCache
from kerasft._src.caching.cache import cached_fit
from kerasft._src.caching.split import split_model
