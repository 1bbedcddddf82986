"""Bad input gets a clear error and changes nothing (issue #16).

One table of cases covers the public API: wrong types, out-of-range numbers
(0, negative, NaN, infinity, huge), empty and unknown names, wrong shapes,
and missing, empty, truncated and corrupt files. Every case asserts that

- the call raises the expected `TypeError`, `ValueError` or
  `FileNotFoundError`, whose message names the argument (or the file) and
  shows what was received;
- nothing changed: the weights, `trainable` flags and optimizer variables
  of the shared model, the registered stage maps, and the files on disk
  are as before the call.

The cases live in `tests/_bad_input_cases.py` (see its docstring, and
docs/contributing.md for how to add one); each runs against the module's
`World` (one tiny compiled model and a folder of good and broken files) and
must fail before doing any work. `test_every_public_callable_has_a_case`
fails when a public name has neither a case nor an entry, with its reason,
in `SKIPPED` there.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import math
import os
import shutil
import types

import _bad_input_cases as cases
import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import kerasft
from kerasft import peft
from kerasft import regularizers
from kerasft import schedules
from kerasft._src import walk
from kerasft._src.stages import registry

# ---------------------------------------------------------------------------
# The world every case runs against.


class World:
    """A tiny compiled classifier, frozen up to `block4`, and a folder of
    good and broken files."""

    def __init__(self, root):
        self.root = str(root)
        backbone = _tiny_vgg()
        self.backbone = backbone
        model = kerasft.build_classifier(backbone, 3, name="world")
        kerasft.freeze_until(model, "block4")
        model.compile(
            keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy"
        )
        model.optimizer.build(model.trainable_variables)
        self.model = model
        self.x = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3))
        self.x = self.x.astype("float32")
        self.y = np.array([0, 1, 2, 0])
        self.aug_model = _augmented_model()
        self.files = cases.write_files(self.root, model)

    def path(self, name):
        return os.path.join(self.root, name)


def _tiny_vgg():
    """A VGG-shaped backbone (stages `block1`..`block5`) of 2,000 weights.

    Its layer names follow keras.applications' VGG, so `kerasft.stages`
    names its stages as VGG16's; building it takes a fraction of the time
    of even the smallest keras.applications model.
    """
    inputs = keras.Input((16, 16, 3), name="pixels")
    x = inputs
    for block in range(1, 6):
        x = keras.layers.Conv2D(
            4, 3, padding="same", activation="relu", name=f"block{block}_conv1"
        )(x)
        if block == 1:
            x = keras.layers.Conv2D(4, 3, padding="same", name="block1_conv2")(
                x
            )
        x = keras.layers.BatchNormalization(name=f"block{block}_bn")(x)
        if block < 5:
            x = keras.layers.MaxPooling2D(name=f"block{block}_pool")(x)
    return keras.Model(inputs, x, name="tiny_vgg")


def _augmented_model():
    """A model whose augmentation block sits below its first trainable
    stage (the case `cached_fit` must refuse)."""
    inputs = keras.Input((8, 8, 3))
    x = kerasft.augment.augmentation("light", seed=1)(inputs)
    x = keras.layers.Conv2D(2, 3, name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(2, name="dense")(x)
    model = keras.Model(inputs, outputs, name="augmented")
    model.get_layer("conv").trainable = False
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model


def _digest(array) -> str:
    array = np.asarray(keras.ops.convert_to_numpy(array))
    return hashlib.blake2b(array.tobytes(), digest_size=12).hexdigest()


def _snapshot(world):
    model = world.model
    files = {}
    for folder, _, names in os.walk(world.root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                files[path] = hashlib.blake2b(f.read()).hexdigest()
    models = (model, world.aug_model)
    return {
        "weights": [_digest(v) for m in models for v in m.weights],
        "trainable": [
            (x.name, x.trainable)
            for m in models
            for x in walk.sublayers(m)
            if isinstance(x, keras.Layer)
        ],
        "variables_trainable": [v.trainable for v in model.weights],
        "optimizer": [_digest(v) for v in model.optimizer.variables],
        "optimizer_count": len(model.optimizer.variables),
        "stage_maps": list(registry._REGISTRY),
        "files": files,
        "folders": sorted(
            os.path.join(a, d) for a, ds, _ in os.walk(world.root) for d in ds
        ),
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    keras.backend.clear_session()
    keras.utils.set_random_seed(1337)
    return World(tmp_path_factory.mktemp("bad_inputs"))


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Overrides conftest's: the cases share one model and build nothing."""
    yield


def _message_names(message, needs):
    for need in needs:
        options = need if isinstance(need, tuple) else (need,)
        if not any(option in message for option in options):
            return need
    return None


@pytest.mark.parametrize("case", cases.CASES, ids=[c.id for c in cases.CASES])
def test_bad_input_is_refused_and_changes_nothing(case, world):
    before = _snapshot(world)
    with pytest.raises(case.error) as info:
        case.call(world)
    message = str(info.value)
    missing = _message_names(message, case.needs)
    assert missing is None, f"The message does not show {missing!r}: {message}"
    assert _snapshot(world) == before


def test_case_ids_are_unique():
    ids = [c.id for c in cases.CASES]
    assert len(ids) == len(set(ids))


def _public_callables():
    for namespace in cases.NAMESPACES:
        module = importlib.import_module(namespace)
        for name in module.__all__:
            value = getattr(module, name)
            if isinstance(value, types.ModuleType) or not callable(value):
                continue
            if inspect.isclass(value) and issubclass(value, Exception):
                continue  # error classes are raised, not called
            yield f"{namespace}.{name}"


def test_every_public_namespace_is_covered_or_skipped():
    from test_public_api import PUBLIC

    assert set(cases.NAMESPACES) | set(cases.SKIPPED_NAMESPACES) == set(PUBLIC)
    assert not set(cases.NAMESPACES) & set(cases.SKIPPED_NAMESPACES)


def test_every_public_callable_has_a_case():
    covered = {c.id.split("-")[0] for c in cases.CASES}
    public = list(_public_callables())
    missing = [
        full
        for full in public
        if full not in cases.SKIPPED and full.rsplit(".", 1)[1] not in covered
    ]
    assert not missing, f"Public callables without a bad-input case: {missing}"
    stale = sorted(set(cases.SKIPPED) - set(public))
    assert not stale, f"SKIPPED names that are not public callables: {stale}"


# ---------------------------------------------------------------------------
# Property-based cases: any value of the wrong kind is refused the same way.

_SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)
_NOT_INT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)


def _assert_names(error, name, value):
    message = str(error)
    assert name in message, message
    assert repr(value) in message or str(value) in message, message


@_SETTINGS
@given(value=st.one_of(_NOT_INT, st.integers(max_value=0)))
def test_cached_fit_batch_size_property(world, value):
    """Every bad `batch_size` is refused before any feature is computed."""
    before = _snapshot(world)
    with pytest.raises((TypeError, ValueError)) as info:
        kerasft.cached_fit(world.model, world.x, world.y, batch_size=value)
    _assert_names(info.value, "batch_size", value)
    assert _snapshot(world) == before


@_SETTINGS
@given(
    value=st.one_of(
        st.floats(max_value=0.0),
        st.floats(allow_nan=True).filter(math.isnan),
        st.just(cases.INF),
        st.text(max_size=3),
    )
)
def test_schedule_rates_property(value):
    for make in (
        lambda v: schedules.SlantedTriangular(v, 100),
        lambda v: schedules.OneCycle(v, 100),
        lambda v: regularizers.L2(v if v != 0 else -1.0),
    ):
        with pytest.raises((TypeError, ValueError)) as info:
            make(value)
        assert "Received" in str(info.value)


@_SETTINGS
@given(name=st.text(alphabet="qxz_", min_size=1, max_size=10))
def test_unknown_stage_names_property(world, name):
    """Any unknown stage or layer name is refused with the name shown."""
    name = f"zz{name}"
    before = _snapshot(world)
    for call in (kerasft.freeze, kerasft.unfreeze, kerasft.freeze_until):
        with pytest.raises(ValueError) as info:
            call(world.model, name)
        _assert_names(info.value, "target", name)
    assert _snapshot(world) == before


@_SETTINGS
@given(data=st.binary(max_size=256))
def test_random_bytes_adapter_files_property(world, tmp_path_factory, data):
    """Any short byte string as an adapter file: an error naming it."""
    folder = tmp_path_factory.mktemp("adapters")
    path = os.path.join(str(folder), "random.npz")
    with open(path, "wb") as f:
        f.write(data)
    before = _snapshot(world)
    with pytest.raises(ValueError, match="random.npz"):
        peft.load_adapter_weights(world.model, path)
    assert _snapshot(world) == before
    shutil.rmtree(str(folder))
