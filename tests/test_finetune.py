"""kerasft.finetune: data loading, the strategies and the run folder.

The strategy tests swap the keras.applications backbone for a tiny
VGG-shaped one (same stage names, a few hundred weights) so that each runs
in seconds on every backend; tests/test_cli.py runs a real MobileNet.
"""

import csv
import json
import math
import os

import keras
import numpy as np
import pytest
from PIL import Image

import kerasft
from kerasft import finetune
from kerasft._src import assets
from kerasft._src.run import data as run_data
from kerasft._src.run import model as run_model
from kerasft._src.run import switches


def _write_folder(root, classes=("cats", "dogs"), per_class=4, bad=True):
    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        folder = os.path.join(root, name)
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            base = np.full((40, 48, 3), 40 + 160 * c, dtype="float32")
            pixels = (base + rng.normal(0, 20, base.shape)).clip(0, 255)
            Image.fromarray(pixels.astype("uint8")).save(
                os.path.join(folder, f"{i}.png")
            )
    if bad:
        with open(os.path.join(root, classes[0], "broken.jpg"), "wb") as f:
            f.write(b"not an image")
    return root


def _tiny_backbone(backbone, weights, image_size):
    del backbone, weights
    inputs = keras.Input((image_size, image_size, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", name="block1_conv1")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", name="block1_conv2")(x)
    x = keras.layers.MaxPooling2D(4, name="block1_pool")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", name="block2_conv1")(x)
    x = keras.layers.MaxPooling2D(2, name="block2_pool")(x)
    return keras.Model(inputs, x, name="tiny_vgg")


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(run_model, "build_backbone", _tiny_backbone)


def _run(data, out, **kwargs):
    options = dict(
        weights=None,
        image_size=32,
        epochs=2,
        head_epochs=1,
        batch_size=4,
        learning_rate=1e-2,
        export=False,
        verbose=0,
        log=lambda line: None,
        # No graph tracing: a few seconds less per phase on a few steps.
        run_eagerly=True,
    )
    options.update(kwargs)
    return finetune.finetune(data, out=out, **options)


def _backbone_weights(path):
    model = keras.saving.load_model(path, compile=False)
    backbone = model.get_layer("tiny_vgg")
    return {w.path: keras.ops.convert_to_numpy(w) for w in backbone.weights}


def test_load_image_folder(tmp_path):
    root = _write_folder(os.fspath(tmp_path / "data"), per_class=3)
    os.makedirs(tmp_path / "data" / "dogs" / "nested")
    Image.new("RGB", (10, 20), (1, 2, 3)).save(
        tmp_path / "data" / "dogs" / "nested" / "deep.jpg"
    )
    (tmp_path / "data" / "dogs" / ".hidden.png").write_bytes(b"x")
    (tmp_path / "data" / ".cache").mkdir()
    x, y, names, skipped = finetune.load_image_folder(root, 33)
    assert names == ["cats", "dogs"]
    assert x.shape == (7, 33, 33, 3) and x.dtype == np.float32
    assert 0 <= x.min() and x.max() <= 255
    assert y.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert [os.path.basename(p) for p in skipped] == ["broken.jpg"]
    x, y, _, _ = finetune.load_image_folder(root, 32, max_per_class=2)
    assert y.tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize(
    "layout, match",
    [
        (None, "does not exist"),
        ({}, "is empty"),
        ({"cats": 2}, "has 1 class"),
        ({"cats": 2, "dogs": 0}, "is empty|no readable"),
    ],
)
def test_load_image_folder_errors(tmp_path, layout, match):
    root = tmp_path / "data"
    if layout is not None:
        root.mkdir()
        for name, count in layout.items():
            (root / name).mkdir()
            for i in range(count):
                Image.new("RGB", (8, 8)).save(root / name / f"{i}.png")
        if layout.get("dogs") == 0:
            (root / "dogs" / "bad.png").write_bytes(b"broken")
    with pytest.raises(finetune.FinetuneError, match=match):
        finetune.load_image_folder(os.fspath(root), 32)


def test_gradual_unfreezes_one_stage_per_epoch(tmp_path, tiny):
    data = _write_folder(os.fspath(tmp_path / "data"))
    out = os.fspath(tmp_path / "run")
    # Compiled train functions, rebuilt at each unfreeze.
    summary = _run(data, out, strategy="gradual", run_eagerly=False)
    events = summary["phases"]["finetune"]["unfreeze_events"]
    assert [e["epoch"] for e in events] == [1, 2]
    assert [e["stages"] for e in events] == [
        ["block2", "head"],
        ["block1", "block2", "head"],
    ]
    assert events[0]["trainable_params"] < events[1]["trainable_params"]
    assert (
        summary["phases"]["head"]["trainable_params"]
        < (events[0]["trainable_params"])
    )
    assert summary["stages"] == ["block1", "block2", "head"]
    assert summary["data"]["skipped_files"] == 1
    assert summary["data"]["num_train"] + summary["data"]["num_heldout"] == 8
    with open(os.path.join(out, "history.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [r["phase"] for r in rows] == ["head", "finetune", "finetune"]
    # Frozen stages have no rate (empty cells); trained ones have theirs.
    assert rows[0]["lr/block2"] == "" and float(rows[0]["lr/head"]) > 0
    assert rows[1]["lr/block1"] == "" and rows[1]["lr/block2"] != ""
    assert rows[2]["lr/block1"] != ""


def test_probe_keeps_the_backbone(tmp_path, tiny):
    data = _write_folder(os.fspath(tmp_path / "data"), bad=False)
    out = os.fspath(tmp_path / "run")
    keras.utils.set_random_seed(0)
    initial = _tiny_backbone(None, None, 32).get_weights()
    summary = _run(data, out, strategy="probe", seed=0)
    trained = _backbone_weights(os.path.join(out, "model.keras"))
    for before, after in zip(initial, trained.values()):
        np.testing.assert_array_equal(before, after)
    phase = summary["phases"]["finetune"]
    assert (
        phase["trainable_params"]
        == summary["phases"]["head"]["trainable_params"]
    )
    assert phase["trainable_params_end"] == phase["trainable_params"]


@pytest.mark.parametrize("strategy", ["full", "lp-ft", "discriminative"])
def test_whole_model_strategies_train_the_backbone(tmp_path, tiny, strategy):
    data = _write_folder(os.fspath(tmp_path / "data"), bad=False)
    out = os.fspath(tmp_path / "run")
    keras.utils.set_random_seed(0)
    initial = _tiny_backbone(None, None, 32).get_weights()
    summary = _run(data, out, strategy=strategy, epochs=1, seed=0)
    trained = _backbone_weights(os.path.join(out, "model.keras"))
    kernel = trained[next(p for p in trained if "block1_conv1" in p)]
    assert not np.allclose(initial[0], kernel)
    phase = summary["phases"]["finetune"]
    assert phase["trainable_params"] == summary["total_params"]
    with open(os.path.join(out, "history.csv")) as f:
        last = list(csv.DictReader(f))[-1]
    rates = {s: float(last[f"lr/{s}"]) for s in summary["stages"]}
    if strategy == "discriminative":
        # lr_range: learning_rate / 100 at the bottom, learning_rate on top.
        assert math.isclose(rates["block1"], 1e-4, rel_tol=1e-5)
        assert math.isclose(rates["head"], 1e-2, rel_tol=1e-5)
        assert rates["block1"] < rates["block2"] < rates["head"]
        assert phase["stage_learning_rates"]["block1"] == pytest.approx(1e-4)
    else:
        assert len(set(rates.values())) == 1


def test_bundled_fashion_mnist(tmp_path, tiny):
    out = os.fspath(tmp_path / "run")
    summary = _run(None, out, strategy="lp-ft", max_per_class=2, epochs=1)
    assert summary["data"]["source"] == run_data.BUNDLED
    assert summary["data"]["class_names"] == list(
        assets.FASHION_MNIST_CLASS_NAMES
    )
    assert summary["data"]["num_train"] == 20
    assert summary["data"]["num_heldout"] == 20
    assert 0.0 <= summary["accuracy_after"] <= 1.0
    with open(os.path.join(out, "summary.json")) as f:
        assert json.load(f)["args"]["data"] is None


def test_refuses_a_folder_that_holds_a_run(tmp_path, tiny):
    data = _write_folder(os.fspath(tmp_path / "data"), bad=False)
    out = tmp_path / "run"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(finetune.FinetuneError, match="already holds a run"):
        _run(data, os.fspath(out))
    lines = []
    _run(data, os.fspath(out), overwrite=True, epochs=1, log=lines.append)
    assert (out / "notes.txt").read_text() == "mine"
    # The run's summary replaced the old one ("{}").
    summary = json.loads((out / "summary.json").read_text())
    assert 0.0 <= summary["accuracy_after"] <= 1.0
    # The default strategy, auto, records and logs what it chose.
    assert summary["strategy"] == "auto"
    choice = summary["auto"]
    assert choice == summary["phases"]["finetune"]["auto"]
    # The tiny backbone has no BatchNorm and no attention: "other".
    assert choice["strategy"] == "auto" and choice["family"] == "other"
    assert choice["total_steps"] == 2  # 1 epoch x 2 steps (6 images)
    assert choice["chose"].startswith("every stage from the start")
    assert [line for line in lines if line.startswith("auto (other): ")] == [
        f"auto (other): {choice['chose']}, because {choice['because']}"
    ]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"backbone": "alexnet"},
            "`backbone` must be one of .*Received: backbone='alexnet'",
        ),
        ({"strategy": "magic"}, "unknown `strategy`; choose one of .*'probe'"),
        (
            {"strategy": "feature-extraction"},
            "named 'probe': use `strategy='probe'`",
        ),
        ({"image_size": 31}, "`image_size` must be an int >= 32"),
        ({"epochs": 0}, "`epochs` must be an int >= 1. Received: epochs=0"),
        ({"validation_split": 1.0}, "`validation_split` .* > 0 and < 1"),
        ({"learning_rate": -1.0}, "`learning_rate` must be"),
        ({"weights": "missing.h5"}, "no file exists at 'missing.h5'"),
        ({"name": "bad name"}, "`name` must be letters"),
        (
            {"learning_rate": "fast"},
            "`learning_rate` must be a number > 0 or 'auto'. "
            "Received: learning_rate='fast'",
        ),
        ({"head_learning_rate": 0}, "`head_learning_rate` must be"),
        ({"patience": 0}, "`patience` must be an int >= 1 or None"),
        (
            {"mixed_precision": "float16"},
            "`mixed_precision` must be one of .*'mixed_float16'",
        ),
        ({"label_smoothing": 1.0}, "`label_smoothing` must be .* < 1"),
        ({"label_smoothing": -0.1}, "`label_smoothing` must be .* >= 0"),
        (
            {"class_weight": "balanced"},
            "`class_weight` must be one of \\['none', 'auto'\\]",
        ),
        ({"ema": 1.0}, "`ema` must be .* < 1 or None. Received: ema=1.0"),
        ({"ema": 0}, "`ema` must be .* > 0"),
        (
            {"ema": 0.9, "patience": 2},
            "`ema` and `patience` cannot be combined.*ema=0.9, patience=2",
        ),
        ({"mix_off_epochs": -1}, "`mix_off_epochs` must be an int >= 0"),
        (
            {"distribute": "mpi"},
            "`distribute` must be one of \\['none', 'jax'\\]",
        ),
        (
            {"num_processes": 2},
            "`num_processes` sets up a distributed run; add "
            "`distribute=jax`. Received: num_processes=2",
        ),
        ({"distribute": "jax", "num_processes": 0}, "`num_processes` must be"),
        ({"distribute": "jax", "process_id": -1}, "`process_id` must be"),
        (
            {"distribute": "jax", "coordinator": "node0"},
            "`coordinator` must be HOST:PORT.*Received: coordinator='node0'",
        ),
    ],
)
def test_bad_options(tmp_path, kwargs, match):
    data = _write_folder(os.fspath(tmp_path / "data"), bad=False)
    with pytest.raises(finetune.FinetuneError, match=match):
        _run(data, os.fspath(tmp_path / "run"), **kwargs)
    assert not os.path.exists(tmp_path / "run")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": 1.5}, "`epochs` must be an int >= 1. Received: epochs=1.5"),
        ({"learning_rate": [1e-3]}, "must be a number > 0 or 'auto'"),
        ({"patience": 1.5}, "Received: patience=1.5"),
        ({"label_smoothing": "0.1"}, "Received: label_smoothing='0.1'"),
        ({"tensorboard": 1}, "`tensorboard` must be True or False"),
        ({"mixup": "yes"}, "`mixup` must be True or False"),
        ({"ema": "0.9"}, "Received: ema='0.9'"),
        ({"export": "yes"}, "`export` must be True or False"),
        ({"name": 5}, "`name` must be a str or None"),
        ({"max_per_class": 2.0}, "Received: max_per_class=2.0"),
        ({"num_processes": 2.0}, "Received: num_processes=2.0"),
        ({"coordinator": 1234}, "`coordinator` must be a str or None"),
    ],
)
def test_options_of_the_wrong_type(tmp_path, kwargs, match):
    data = _write_folder(os.fspath(tmp_path / "data"), bad=False)
    with pytest.raises(TypeError, match=match):
        _run(data, os.fspath(tmp_path / "run"), **kwargs)
    assert not os.path.exists(tmp_path / "run")


@pytest.mark.parametrize(
    "kwargs, on_jax",
    [
        ({}, None),
        ({"mixup": True}, "`mixup` does not run with `distribute=jax`"),
        (
            {"learning_rate": "auto"},
            "`learning_rate=auto` does not run with `distribute=jax`",
        ),
    ],
)
def test_distribute_jax_refusals(tmp_path, kwargs, on_jax):
    """Off JAX, any `distribute=jax` run; on JAX, what it cannot run."""
    if keras.backend.backend() == "jax" and on_jax is None:
        pytest.skip("distribute=jax runs on JAX: tests/distribution")
    match = on_jax
    if keras.backend.backend() != "jax":
        match = "`distribute=jax` .* needs the JAX backend.*Received: backend="
    data = _write_folder(os.fspath(tmp_path / "data"), bad=False)
    with pytest.raises(finetune.FinetuneError, match=match):
        _run(data, os.fspath(tmp_path / "run"), distribute="jax", **kwargs)
    assert not os.path.exists(tmp_path / "run")


def test_distribute_jax_refuses_text(tmp_path):
    data = tmp_path / "reviews.csv"
    data.write_text("text,label\ngood,pos\nbad,neg\n")
    config = finetune.FinetuneConfig(
        data=os.fspath(data), out=os.fspath(tmp_path / "run"), distribute="jax"
    )
    match = "`distribute=jax` runs image data only.*Received: modality='text'"
    if keras.backend.backend() != "jax":
        match = "`distribute=jax` .* needs the JAX backend"
    with pytest.raises(finetune.FinetuneError, match=match):
        config.validated()


def test_folder_default_image_size_is_the_provisioned_one():
    config = finetune.FinetuneConfig(out="run", data="folder").validated()
    assert config.image_size == 224
    # `python -m kerasft.assets` provisions the MobileNet weights file Keras
    # loads at that size.
    path = assets.mobilenet_v1_imagenet_path(image_size=config.image_size)
    assert path in assets.asset_paths("mobilenet_v1")


_MOBILENET_OFFLINE = pytest.mark.skipif(
    not assets.is_provisioned("mobilenet_v1"),
    reason="asset 'mobilenet_v1' is not provisioned: run "
    "`python -m kerasft.assets --only mobilenet_v1`",
)


@pytest.fixture
def no_downloads(monkeypatch):
    """Keras fails where it would download a weights file."""
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise AssertionError("Keras tried to download a weights file")

    monkeypatch.setattr(file_utils, "urlretrieve", offline)


def _stem_kernel(weights):
    (kernel,) = [w for w in weights if w.path.endswith("conv1/kernel")]
    return keras.ops.convert_to_numpy(kernel)


@pytest.mark.pretrained
@pytest.mark.slow
@_MOBILENET_OFFLINE
def test_folder_run_loads_imagenet_mobilenet_offline_at_the_default_size(
    tmp_path, no_downloads
):
    import h5py

    data = _write_folder(os.fspath(tmp_path / "data"), per_class=2, bad=False)
    out = os.fspath(tmp_path / "run")
    summary = _run(
        data,
        out,
        weights="imagenet",
        image_size=None,
        strategy="probe",
        epochs=1,
    )
    default = finetune.FinetuneConfig(out=out, data=data).validated()
    assert summary["data"]["image_size"] == default.image_size
    # The probe leaves the backbone as loaded: the ImageNet stem.
    model = keras.saving.load_model(os.path.join(out, "model.keras"))
    path = assets.mobilenet_v1_imagenet_path(image_size=default.image_size)
    with h5py.File(path, "r") as f:
        expected = np.asarray(f["conv1"]["conv1/kernel:0"])
    np.testing.assert_array_equal(_stem_kernel(model.weights), expected)


@pytest.mark.pretrained
@_MOBILENET_OFFLINE
@pytest.mark.parametrize("size", [128, 160, 192])
def test_imagenet_mobilenet_builds_offline_at_each_keras_size(
    size, no_downloads
):
    backbone = run_model.build_backbone("mobilenet", "imagenet", size)
    assert backbone.input_shape == (None, size, size, 3)
    reference = run_model.build_backbone("mobilenet", "imagenet", 224)
    np.testing.assert_array_equal(
        _stem_kernel(backbone.weights), _stem_kernel(reference.weights)
    )


@pytest.mark.parametrize("image_size, file_size", [(32, 224), (128, 128)])
def test_missing_imagenet_weights_name_the_command_and_fetch_nothing(
    tmp_path, monkeypatch, image_size, file_size
):
    from keras.src.utils import file_utils

    from kerasft._src.assets import fetch
    from kerasft._src.assets import registry

    def never(*args, **kwargs):
        raise AssertionError("finetune() must not fetch assets")

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://x: None -- unreachable")

    for name in ("fetch_package", "pip_download", "apt_download"):
        monkeypatch.setattr(fetch, name, never)
    monkeypatch.setattr(registry, "provision", never)
    monkeypatch.setattr(assets, "provision", never)
    monkeypatch.setattr(assets, "is_provisioned", lambda *a, **k: False)
    # What Keras's loader does when the file is not cached and the
    # network is unreachable.
    monkeypatch.setattr(file_utils, "get_file", offline)
    data = _write_folder(os.fspath(tmp_path / "data"), bad=False)
    missing = assets.mobilenet_v1_imagenet_path(image_size=image_size)
    assert os.path.basename(missing) == (
        f"mobilenet_1_0_{file_size}_tf_no_top.h5"
    )
    with pytest.raises(finetune.FinetuneError) as info:
        _run(
            data,
            os.fspath(tmp_path / "run"),
            weights="imagenet",
            image_size=image_size,
        )
    message = str(info.value)
    assert f"the weights file {missing} is missing" in message
    assert "run `python -m kerasft.assets --only mobilenet_v1`" in message
    assert "only for mobilenet" not in message
    assert not os.path.exists(tmp_path / "run")


def test_class_with_one_image_cannot_be_split(tmp_path, tiny):
    data = _write_folder(os.fspath(tmp_path / "data"), bad=False)
    for i in range(1, 4):
        os.remove(os.path.join(data, "dogs", f"{i}.png"))
    with pytest.raises(finetune.FinetuneError, match="class 'dogs' has 1"):
        _run(data, os.fspath(tmp_path / "run"))


def test_missing_packages_fail_before_training(tmp_path, monkeypatch):
    data = _write_folder(os.fspath(tmp_path / "data"), bad=False)
    real = run_model.importlib.util.find_spec

    def find_spec(name, *args):
        return None if name in ("matplotlib", "tensorflow") else real(name)

    monkeypatch.setattr(run_model.importlib.util, "find_spec", find_spec)
    with pytest.raises(
        finetune.FinetuneError,
        match=r"missing package\(s\) matplotlib, tensorflow: pip install "
        r"matplotlib tensorflow \(or `export=False`\)",
    ):
        _run(data, os.fspath(tmp_path / "run"), export=True)
    with pytest.raises(
        finetune.FinetuneError,
        match=r"pip install matplotlib tensorflow \(or without `tensorboard`",
    ):
        _run(data, os.fspath(tmp_path / "run"), tensorboard=True)
    assert not os.path.exists(tmp_path / "run")


def test_the_docs_show_the_strategy_registry():
    from kerasft._src.run.strategies import strategy_table

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for page in ("strategies.md", "cli.md"):
        with open(os.path.join(root, "docs", page)) as f:
            assert strategy_table() in f.read(), page


def test_register_strategy(tiny, tmp_path):
    from kerasft import freeze_until
    from kerasft._src.run import strategies

    def top_two(model, *, learning_rate, epochs, probed=False, factors=None):
        freeze_until(model, -2, inclusive=False)
        return keras.optimizers.SGD(learning_rate), []

    entry = finetune.Strategy("top-two", "top two", ("top 2 stages",), top_two)
    finetune.register_strategy(entry)
    try:
        assert finetune.STRATEGIES["top-two"] is entry
        with pytest.raises(ValueError, match="registered already"):
            finetune.register_strategy(entry)
        data = _write_folder(os.fspath(tmp_path / "data"), bad=False)
        summary = _run(data, os.fspath(tmp_path / "run"), strategy="top-two")
        phase = summary["phases"]["finetune"]
        assert phase["strategy"] == "top-two"
        assert (
            phase["trainable_params"]
            > (summary["phases"]["head"]["trainable_params"])
        )
    finally:
        del strategies._REGISTRY["top-two"]
    with pytest.raises(TypeError, match="takes a `kerasft.finetune.Strategy`"):
        finetune.register_strategy("top-two")
    with pytest.raises(ValueError, match="lower case words"):
        finetune.Strategy("Top Two", "", (), top_two)


@pytest.mark.parametrize("strategy", ["partial", "chain-thaw"])
def test_partial_and_chain_thaw(tmp_path, tiny, strategy):
    data = _write_folder(os.fspath(tmp_path / "data"), bad=False)
    summary = _run(data, os.fspath(tmp_path / "run"), strategy=strategy)
    phase = summary["phases"]["finetune"]
    if strategy == "partial":
        # block2 and the head train; block1 stays frozen.
        assert phase["unfreeze_events"] == []
        assert phase["trainable_params"] == phase["trainable_params_end"]
        assert phase["trainable_params"] < summary["total_params"]
    else:
        # The head alone, then block1 alone (2 epochs).
        stages = [e["stages"] for e in phase["unfreeze_events"]]
        assert stages == [["head"], ["block1"]]


def _history(out):
    with open(os.path.join(out, "history.csv")) as f:
        return list(csv.DictReader(f))


def test_switches(tmp_path, tiny):
    """patience, mixed precision, label smoothing, class weights, lr auto
    and TensorBoard in one run."""
    data = _write_folder(os.fspath(tmp_path / "data"), bad=False)
    # 4 cats, 3 dogs: 3 and 2 training images after the split.
    os.remove(os.path.join(data, "dogs", "3.png"))
    out = os.fspath(tmp_path / "run")
    policy = keras.mixed_precision.dtype_policy().name
    lines = []
    summary = _run(
        data,
        out,
        log=lines.append,
        strategy="full",
        head_epochs=3,
        epochs=2,
        # Too small to move a float32 weight: the held-out loss stays put,
        # so early stopping ends the probe after its second epoch.
        head_learning_rate=1e-12,
        learning_rate="auto",
        patience=1,
        mixed_precision="mixed_float16",
        label_smoothing=0.1,
        class_weight="auto",
        tensorboard=True,
        run_eagerly=False,
    )
    assert keras.mixed_precision.dtype_policy().name == policy
    assert "Mixed precision: mixed_float16 (float32 variables" in lines[2]
    assert lines[3] == "Class weights (balanced): cats 0.833, dogs 1.25"
    assert "Early stopping after epoch 2/3" in "\n".join(lines)
    assert any(
        "(lr_find's valley)" in line or "(the default: lr_find" in line
        for line in lines
    )
    assert lines[-1].endswith(
        "(model.keras, history.csv, history.png, summary.json, tensorboard/)"
    )
    head, tune = summary["phases"]["head"], summary["phases"]["finetune"]
    assert head["epochs_run"] == 2
    assert head["early_stopping"] == {
        "monitor": "val_loss",
        "patience": 1,
        "best_epoch": 0,
        "stopped_epoch": 1,
    }
    rows = _history(out)
    assert [r["phase"] for r in rows] == ["head"] * 2 + ["finetune"] * (
        tune["epochs_run"]
    )
    # The accuracy of the kept weights: the best epoch's.
    best = tune["early_stopping"]["best_epoch"]
    assert 2 <= best < 2 + tune["epochs_run"]
    assert tune["heldout_accuracy"] == pytest.approx(
        float(rows[best]["val_accuracy"]), abs=1e-6
    )

    found = tune["lr_find"]
    if found["chosen"] == "lr_find's valley":
        assert tune["learning_rate"] == found["valley"]
    else:
        assert tune["learning_rate"] == 1e-4  # the option's default
    assert 1e-7 <= found["valley"] <= 10.0
    assert found["steps"] >= 2
    assert head["learning_rate"] == 1e-12 and "lr_find" not in head
    assert summary["class_weights"] == pytest.approx(
        {"cats": 5 / (2 * 3), "dogs": 5 / (2 * 2)}
    )
    assert summary["dtype_policy"] == "mixed_float16"

    # `compile` added the loss scaling float16 gradients need.
    assert head["loss_scale"] > 0 and tune["loss_scale"] > 0
    # The outer model takes the global policy when it is loaded.
    with switches.dtype_policy("mixed_float16"):
        model = keras.saving.load_model(os.path.join(out, "model.keras"))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    conv = model.get_layer("tiny_vgg").get_layer("block1_conv1")
    assert conv.dtype_policy.name == "mixed_float16"
    assert model.get_layer("predictions").dtype_policy.name == "float32"
    assert isinstance(model.loss, keras.losses.CategoricalCrossentropy)
    assert model.loss.label_smoothing == pytest.approx(0.1)

    for phase in ("head", "finetune"):
        for split in ("train", "validation"):
            logs = os.path.join(out, "tensorboard", phase, split)
            assert any(n.startswith("events.") for n in os.listdir(logs))
    args = summary["args"]
    assert args["learning_rate"] == "auto" and args["patience"] == 1
    assert args["mixed_precision"] == "mixed_float16"
    assert args["tensorboard"] is True
    # The recorded options are a config: the same call repeats the run.
    assert finetune.FinetuneConfig(**args).validated().class_weight == "auto"

    # A run without TensorBoard into the same folder removes the old logs.
    _run(data, out, epochs=1, strategy="probe", overwrite=True)
    assert not os.path.exists(os.path.join(out, "tensorboard"))


def test_seed_repeats_a_run(tmp_path, tiny):
    data = _write_folder(os.fspath(tmp_path / "data"), bad=False)
    histories = []
    for name in ("a", "b"):
        out = os.fspath(tmp_path / name)
        _run(data, out, strategy="full", epochs=1, seed=3)
        histories.append(_history(out))
    assert histories[0] == histories[1]


def test_mixing_and_ema_switches(tmp_path, tiny):
    """--mixup --cutmix --mix-off-epochs --ema, inside a gradual schedule,
    repeatable with a seed."""
    data = _write_folder(os.fspath(tmp_path / "data"), bad=False)
    options = dict(
        strategy="gradual",
        head_epochs=1,
        epochs=2,
        mixup=True,
        cutmix=True,
        mix_off_epochs=1,
        ema=0.9,
        class_weight="auto",
        seed=5,
    )
    runs = []
    for name in ("a", "b"):
        lines = []
        out = os.fspath(tmp_path / name)
        summary = _run(data, out, log=lines.append, **options)
        runs.append((lines, summary, _history(out)))
    (lines, summary, rows), (_, _, again) = runs
    assert rows == again  # the seed repeats the mixing and the average
    text = "\n".join(lines)
    assert (
        "Mixing: MixUp or CutMix (one per batch) of the training batches, "
        "unmixed for the last 1 epoch(s) of each phase" in text
    )
    assert "Weight averaging: EMA with decay 0.9 in each phase" in text
    # MixOff: the probe's one epoch is its last, unmixed; the schedule
    # mixes its first epoch only.
    assert [float(r["mix_probability"]) for r in rows] == [0.0, 1.0, 0.0]
    assert summary["phases"]["finetune"]["unfreeze_events"]
    args = summary["args"]
    assert (args["mixup"], args["cutmix"], args["ema"]) == (True, True, 0.9)
    assert args["mix_off_epochs"] == 1

    # The saved model holds the average that the held-out evaluation used.
    model = keras.saving.load_model(
        os.path.join(out_a := tmp_path / "a", "model.keras")
    )
    assert isinstance(model.loss, keras.losses.CategoricalCrossentropy)
    config = finetune.FinetuneConfig(**args).validated()
    heldout = run_data.load(config).heldout
    accuracy = float(
        np.mean(
            np.argmax(model.predict(heldout[0], verbose=0), -1) == heldout[1]
        )
    )
    assert summary["accuracy_after"] == pytest.approx(accuracy)
    del out_a


def test_plot_events_name_what_starts_training():
    from kerasft._src.run import loop

    model = kerasft.build_classifier(_tiny_backbone(None, None, 32), 2)
    names = [s.name for s in kerasft.stages(model)]
    changes = [
        {"epoch": 3, "stages": names[-2:], "target": "from 'block2'"},
        {"epoch": 4, "stages": names, "target": "from 'block1'"},
        {"epoch": 5, "stages": ["block1"], "target": "only 'block1'"},
    ]
    labels = [e["label"] for e in loop._events(model, changes, 0)]
    assert labels == ["+block2", "all stages train", "block1 only"]


@pytest.mark.parametrize(
    "losses, expected",
    [
        # A falling curve, then divergence: the valley.
        ([2.0] * 10 + list(np.linspace(2.0, 1.0, 80)) + [3.0] * 10, "valley"),
        # A fitted model: every rate that moves it raises the loss.
        ([0.5] * 30 + list(np.linspace(0.5, 2.0, 70)), "default"),
        # The same, with a noisy dip on the way to divergence (the curve
        # of the demo's probed MobileNet): the lowest loss is early.
        (
            [1.0] * 10
            + [0.98] * 10
            + list(np.linspace(1.0, 1.3, 40))
            + list(np.linspace(1.3, 1.1, 20))
            + [3.0] * 20,
            "default",
        ),
    ],
)
def test_lr_auto_keeps_the_default_when_no_rate_lowers_the_loss(
    losses, expected
):
    from kerasft._src.lr_find import suggest
    from kerasft._src.run import loop

    rates = list(np.geomspace(1e-7, 10.0, len(losses)))
    found = kerasft.LRFindResult(
        rates, losses, diverged_at=None, **suggest(rates, losses)
    )
    phase = loop._Phase("finetune", "t", "gradual", 1, "auto", probed=True)
    lines = []
    rate, chosen = loop._chosen_rate(found, phase, lines.append)
    if expected == "valley":
        assert (rate, chosen) == (found.valley, "lr_find's valley")
        assert lines == []
    else:
        assert rate == 1e-4 and chosen.startswith("the default")
        assert lines == [
            "lr_find: no rate lowered the loss (it is lowest at the "
            "smallest rates swept); keeping the default learning rate "
            "0.0001 for this phase"
        ]
