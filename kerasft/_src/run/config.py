"""`FinetuneConfig`: the options of a fine-tuning run, validated in one place.

Each field carries its help text in `metadata["help"]`; the `kerasft
finetune` flags are made from the fields (`image_size` -> `--image-size`),
so a default lives here and nowhere else. Errors name the parameters in
backticks (`` `image_size` ``, `` `export=False` ``) so that the command
can show them as its flags.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import re

BACKBONES = {
    "vgg16": "VGG16",
    "resnet50": "ResNet50",
    "mobilenet": "MobileNet",
    "mobilenetv2": "MobileNetV2",
    "efficientnetb0": "EfficientNetB0",
}
# keras.applications refuses inputs smaller than 32 pixels for all of them.
MIN_IMAGE_SIZE = 32
BUNDLED_NAME = "fashion_mnist"
# Default image size: the bundled images are 28 pixels, folders hold photos.
_DEFAULT_SIZE_BUNDLED = 64
_DEFAULT_SIZE_FOLDER = 128
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


class FinetuneError(ValueError):
    """Bad input to a fine-tuning run: data, options or the output folder.

    The message is one line that says what is wrong and how to fix it.
    """


def _option(default, help, **cli):
    """A config field; `cli` holds how the command shows it (metavar...)."""
    return dataclasses.field(default=default, metadata={"help": help, **cli})


@dataclasses.dataclass(frozen=True, kw_only=True)
class FinetuneConfig:
    """The options of a fine-tuning run (`kerasft.finetune.finetune`).

    Every field is a keyword of `finetune` and a flag of `kerasft
    finetune` (`head_epochs` is `--head-epochs`). `validated()` checks the
    values and fills in the defaults that depend on the data.

    Example:

    ```python
    config = kerasft.finetune.FinetuneConfig(out="runs/a", epochs=4)
    config.validated().image_size  # 64: the bundled data's default
    ```

    Attributes:
        out: str or path. The run folder; created if missing.
        data: str, path or None. An image folder with one subfolder per
            class, or `None` for the Fashion-MNIST subset bundled with
            kerasft. Defaults to `None`.
        backbone: str. One of `BACKBONES`. Defaults to `"mobilenet"`.
        weights: str or None. `"imagenet"`, `None` or `"none"` (random),
            or a weights file path. Defaults to `"imagenet"`.
        strategy: str. A name in `STRATEGIES`, used in phase 2. Defaults
            to `"gradual"`.
        epochs: int >= 1. Epochs of phase 2. Defaults to `3`.
        head_epochs: int >= 1. Epochs of phase 1 (head only). Defaults
            to `2`.
        batch_size: int >= 1. Defaults to `64`.
        image_size: int >= 32 or None. Square input size. Defaults to
            `None`: 64 for the bundled data, 128 for a folder.
        learning_rate: float > 0. Adam's rate in phase 2. Defaults to
            `1e-4`.
        head_learning_rate: float > 0. Adam's rate in phase 1. Defaults
            to `3e-3`.
        validation_split: float in (0, 1). Fraction of each class of a
            folder held out. Defaults to `0.2`.
        max_per_class: int >= 1 or None. At most this many images per
            class. Defaults to `None` (all).
        seed: int >= 0. Seeds Keras and the split. Defaults to `0`.
        name: str or None. The model name of the TF Serving export.
            Defaults to `None`: the data folder's name, or
            `"fashion_mnist"`.
        export: bool. Whether to write the TF Serving export. Defaults to
            `True`.
        overwrite: bool. Whether to replace a run already in `out`.
            Defaults to `False`.
        run_eagerly: bool. Passed to `model.compile`. Defaults to `False`.
    """

    out: str | os.PathLike = _option(
        dataclasses.MISSING, "Run folder.", metavar="OUT"
    )
    data: str | os.PathLike | None = _option(
        None,
        "Image folder with one subfolder per class.",
        default_help="the bundled Fashion-MNIST subset (3,000 training / "
        "1,000 held-out)",
        positional="DATA",
    )
    backbone: str = _option("mobilenet", "Backbone.", choices=BACKBONES)
    weights: str | None = _option(
        "imagenet",
        "imagenet (MobileNet's are provisioned offline into Keras's cache; "
        "others are downloaded by Keras), none (random), or a weights file.",
        metavar="{imagenet,none,PATH}",
    )
    strategy: str = _option("gradual", "Fine-tuning strategy of phase 2.")
    epochs: int = _option(3, "Epochs of phase 2 (fine-tuning).")
    head_epochs: int = _option(2, "Epochs of phase 1 (head only).")
    batch_size: int = _option(64, "Batch size.")
    image_size: int | None = _option(
        None,
        f"Square input size in pixels, at least {MIN_IMAGE_SIZE}.",
        default_help=f"{_DEFAULT_SIZE_BUNDLED} for the bundled data, "
        f"{_DEFAULT_SIZE_FOLDER} for a folder",
    )
    learning_rate: float = _option(
        1e-4, "Adam's rate in phase 2 (the head's with discriminative)."
    )
    head_learning_rate: float = _option(3e-3, "Adam's rate in phase 1.")
    validation_split: float = _option(
        0.2, "Fraction of each class of DATA held out."
    )
    max_per_class: int | None = _option(
        None,
        "Use at most N images per class (per split for the bundled data).",
        default_help="all",
        metavar="N",
    )
    seed: int = _option(0, "Seeds Keras (weights, shuffling) and the split.")
    name: str | None = _option(
        None,
        "Model name of the TF Serving export.",
        default_help="the data folder's name, or fashion_mnist",
    )
    export: bool = _option(
        True, "Write the TF Serving export.", off_help="Skip the export."
    )
    overwrite: bool = _option(False, "Replace a run already in the folder.")
    run_eagerly: bool = _option(
        False,
        "Compile no graphs (Keras's run_eagerly): faster for smoke tests of "
        "a few steps, much slower for real runs.",
    )

    def as_args(self) -> dict:
        """The options as a JSON-ready dict (paths as strings)."""
        args = dataclasses.asdict(self)
        for key in ("data", "out"):
            if args[key] is not None:
                args[key] = os.fspath(args[key])
        return args

    def validated(self) -> FinetuneConfig:
        """Checks every option; returns a copy with the data defaults set.

        Raises:
            FinetuneError: naming the first bad option.
        """
        from kerasft._src.run.strategies import get_strategy

        if self.backbone not in BACKBONES:
            raise FinetuneError(
                f"unknown `backbone`; choose one of {list(BACKBONES)}. "
                f"Received: `backbone={self.backbone!r}`"
            )
        try:
            get_strategy(self.strategy)
        except ValueError as error:
            raise FinetuneError(str(error)) from None
        image_size = self.image_size
        if image_size is None:
            image_size = (
                _DEFAULT_SIZE_BUNDLED
                if self.data is None
                else _DEFAULT_SIZE_FOLDER
            )
        _check_int("image_size", image_size, MIN_IMAGE_SIZE, self.backbone)
        for field in ("epochs", "head_epochs", "batch_size"):
            _check_int(field, getattr(self, field), 1)
        _check_int("seed", self.seed, 0)
        if self.max_per_class is not None:
            _check_int("max_per_class", self.max_per_class, 1)
        _check_fraction("validation_split", self.validation_split)
        _check_rate("learning_rate", self.learning_rate)
        _check_rate("head_learning_rate", self.head_learning_rate)
        return dataclasses.replace(
            self,
            data=None if self.data is None else os.fspath(self.data),
            out=os.fspath(self.out),
            image_size=int(image_size),
            name=_check_name(self.name, self.data),
        )


def _check_int(name, value, minimum, backbone=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise FinetuneError(
            f"`{name}` must be an int >= {minimum}. Received: "
            f"`{name}={value!r}`"
        )
    if value < minimum:
        why = (
            f" for {backbone} (the keras.applications minimum)"
            if backbone
            else ""
        )
        raise FinetuneError(
            f"`{name}` must be >= {minimum}{why}. Received: `{name}={value!r}`"
        )


def _check_rate(name, value):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise FinetuneError(
            f"`{name}` must be a finite number > 0. Received: "
            f"`{name}={value!r}`"
        )


def _check_fraction(name, value):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not 0 < value < 1
    ):
        raise FinetuneError(
            f"`{name}` must be a number in (0, 1). Received: `{name}={value!r}`"
        )


def _check_name(name, data):
    if name is None:
        return default_name(data)
    if not _NAME_PATTERN.fullmatch(str(name)):
        raise FinetuneError(
            "`name` must be letters, digits, '_', '.' or '-', starting with "
            f"a letter or digit. Received: `name={name!r}`"
        )
    return str(name)


def default_name(data):
    """The export's model name: the data folder's name, made safe."""
    if data is None:
        return BUNDLED_NAME
    base = os.path.basename(os.path.normpath(os.fspath(data)))
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", base).lstrip("_.-")
    return name if _NAME_PATTERN.fullmatch(name or "") else "classifier"
