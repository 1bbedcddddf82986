"""`FinetuneConfig`: the options of a fine-tuning run, validated in one place.

Each field carries its help text in `metadata["help"]`; the `kerasft
finetune` flags are made from the fields (`image_size` -> `--image-size`),
so a default lives here and nowhere else. Errors name the parameters in
backticks (`` `image_size` ``, `` `export=False` ``) so that the command
can show them as its flags.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
import re

from kerasft._src.validation import check_bool
from kerasft._src.validation import check_choice
from kerasft._src.validation import check_int
from kerasft._src.validation import check_number
from kerasft._src.validation import check_path
from kerasft._src.validation import check_type

BACKBONES = {
    "vgg16": "VGG16",
    "resnet50": "ResNet50",
    "mobilenet": "MobileNet",
    "mobilenetv2": "MobileNetV2",
    "efficientnetb0": "EfficientNetB0",
}
# Text backbones by name; a keras-hub preset folder works too.
TEXT_BACKBONES = {"minilm": "all-MiniLM-L6-v2"}
# What DATA holds: `auto` detects it (`kerasft._src.run.text_data`).
MODALITIES = ("auto", "image", "text")
# Default token sequence length for text (cut to the backbone's maximum).
DEFAULT_SEQUENCE_LENGTH = 128
# keras.applications refuses inputs smaller than 32 pixels for all of them.
MIN_IMAGE_SIZE = 32
BUNDLED_NAME = "fashion_mnist"
# Default image size: the bundled images are 28 pixels, folders hold photos.
_DEFAULT_SIZE_BUNDLED = 64
# Keras's MobileNet input size for photos; `python -m kerasft.assets`
# provisions the weights file of each size Keras looks for (128, 160, 192,
# 224).
_DEFAULT_SIZE_FOLDER = 224
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
# `--mixed-precision`: Keras dtype policies (`none` keeps the current one).
MIXED_PRECISION = ("none", "mixed_float16", "mixed_bfloat16")
CLASS_WEIGHTS = ("none", "auto")
_FLAGS = (
    "export",
    "overwrite",
    "run_eagerly",
    "tensorboard",
    "mixup",
    "cutmix",
)
# `learning_rate="auto"`: the rate `kerasft.lr_find` suggests (valley).
AUTO = "auto"
# `--distribute`: one process, or a JAX multi-controller job.
DISTRIBUTE = ("none", "jax")
_CLUSTER_FIELDS = ("num_processes", "process_id", "coordinator")
_COORDINATOR = re.compile(r"[^\s:]+:\d+|\[[0-9A-Fa-f:.]+\]:\d+")
# Switches that a distributed run does not support, and why.
_NOT_DISTRIBUTED = {
    "mixup": "its batches come from a tf.data pipeline that is not sharded",
    "cutmix": "its batches come from a tf.data pipeline that is not sharded",
}


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
    values and fills in the defaults that depend on the data. A run's
    `summary.json` records every field under `args` (the command adds
    `backend`), so the same fields describe the same run again.

    Example:

    ```python
    config = kerasft.finetune.FinetuneConfig(out="runs/a", epochs=4)
    config.validated().image_size  # 64: the bundled data's default
    ```

    Attributes:
        out: str or path. The run folder; created if missing.
        data: str, path or None. An image folder with one subfolder per
            class, or `None` for the Fashion-MNIST subset bundled with
            kerasft; or text: a CSV or JSONL file with a text and a label
            column, or a folder with one subfolder of `.txt` files per
            class. Defaults to `None`.
        modality: str. What `data` holds: `"image"`, `"text"`, or
            `"auto"`: text for a `.csv` or `.jsonl` file or a folder whose
            class subfolders hold only `.txt` files, images otherwise.
            `validated()` sets the one found. Defaults to `"auto"`.
        backbone: str, path or None. For images one of `BACKBONES`; for
            text `"minilm"` (all-MiniLM-L6-v2, provisioned offline by
            `python -m kerasft.assets`) or a local keras-hub preset (or
            Hugging Face BERT checkpoint) folder. Defaults to `None`:
            `"mobilenet"` for images, `"minilm"` for text.
        weights: str or None. `"imagenet"` (Keras's own loading: its cache,
            else its download; `python -m kerasft.assets` provisions
            MobileNet's offline), `None` or `"none"` (random), or a weights
            file path. For text, `"imagenet"` stands for the backbone's own
            pretrained weights and `"none"` for random ones. Defaults to
            `"imagenet"`.
        strategy: str. A name in `STRATEGIES`, used in phase 2. Defaults
            to `"auto"`: the recipe chosen from the model family and the
            step budget, recorded in `summary.json` under `"auto"`.
        epochs: int >= 1. Epochs of phase 2. Defaults to `3`.
        head_epochs: int >= 1. Epochs of phase 1 (head only). Defaults
            to `2`.
        batch_size: int >= 1. Defaults to `64`.
        image_size: int >= 32 or None. Square input size (images only).
            Defaults to `None`: 64 for the bundled data, 224 for a folder.
        sequence_length: int >= 2 or None. Tokens per text (text only);
            longer texts are cut. Defaults to `None`: 128, or the
            backbone's maximum if lower.
        text_column: str or None. The column (CSV) or key (JSONL) with
            the texts (text files only). Defaults to `None`: `"text"`.
        label_column: str or None. The column (CSV) or key (JSONL) with
            the labels (text files only). Defaults to `None`: `"label"`.
        learning_rate: float > 0 or `"auto"`. Adam's rate in phase 2.
            `"auto"` runs `kerasft.lr_find` on the phase's compiled model
            (what trains when the phase starts) and uses its `valley`
            suggestion. Defaults to `1e-4`.
        head_learning_rate: float > 0 or `"auto"`. Adam's rate in phase
            1, as `learning_rate`. Defaults to `3e-3`.
        validation_split: float in (0, 1). Fraction of each class of a
            folder held out. Defaults to `0.2`.
        max_per_class: int >= 1 or None. At most this many images per
            class. Defaults to `None` (all).
        seed: int >= 0. Seeds the split, and Keras
            (`keras.utils.set_random_seed`: weights, dropout, shuffling)
            before the model is built, so the same options give the same
            run on the same machine and backend. Defaults to `0`.
        patience: int >= 1 or None. Early stopping, in each phase: stop
            when the held-out loss (`val_loss`) has not improved for this
            many epochs, and keep the weights of its best epoch
            (`keras.callbacks.EarlyStopping` with
            `restore_best_weights=True`). Defaults to `None` (off).
        mixed_precision: str. `"mixed_float16"` (with the dynamic loss
            scaling of `keras.optimizers.LossScaleOptimizer`, which
            `compile` adds), `"mixed_bfloat16"` or `"none"`: the Keras
            dtype policy the model is built and trained with; the output
            layer computes in float32 either way, and the global policy is
            put back after the run. Defaults to `"none"` (the current
            policy).
        label_smoothing: float in [0, 1). Smooths the one-hot targets of
            the loss (`keras.losses.CategoricalCrossentropy`). Defaults to
            `0.0`.
        class_weight: str. `"auto"` weighs each class by
            `n_samples / (n_classes * count)` over the training images
            (scikit-learn's "balanced"), passed to `fit`; `"none"` weighs
            all alike. Defaults to `"none"`.
        tensorboard: bool. Whether to write TensorBoard logs (one folder
            per phase) into `out/tensorboard/`; needs TensorFlow. Defaults
            to `False`.
        mixup: bool. MixUp the training batches (`kerasft.augment.mix`,
            `Beta(0.2, 0.2)` weights): the targets become soft one-hot
            rows and the loss `keras.losses.CategoricalCrossentropy`.
            Images only; needs TensorFlow (`tf.data`). Defaults to
            `False`.
        cutmix: bool. CutMix the training batches (`Beta(1, 1)` areas), as
            `mixup`; with both, each batch gets one of the two, with equal
            chance. Defaults to `False`.
        mix_off_epochs: int >= 0. With `mixup` or `cutmix`, the last this
            many epochs of each phase train on unmixed images
            (`kerasft.augment.MixOff`). Defaults to `0`.
        ema: float in (0, 1) or None. Keeps an exponential moving average
            of the weights with this decay in each phase
            (`kerasft.callbacks.EMA` with `warmup=True`): the held-out
            evaluation uses the average, and each phase ends with it.
            Cannot be combined with `patience`. Defaults to `None` (off).
        name: str or None. The model name of the TF Serving export.
            Defaults to `None`: the data folder's name (a data file's name
            without its suffix), or `"fashion_mnist"`.
        export: bool. Whether to write the TF Serving export. Defaults to
            `True`.
        overwrite: bool. Whether to replace a run already in `out`.
            Defaults to `False`.
        run_eagerly: bool. Passed to `model.compile`. Defaults to `False`.
        distribute: str. `"jax"` runs the job as one process of a JAX
            multi-controller job (`kerasft.distributed.initialize`, then
            `keras.distribution.DataParallel` over every process's
            devices); each process trains on its part of every global
            batch of `batch_size`, reshuffled each epoch from `seed`
            alike in every process, and only process 0 writes `out`.
            Needs the JAX backend. Defaults to `"none"` (one process).
        num_processes: int >= 1 or None. With `distribute="jax"`, the
            number of processes. Defaults to `None` (from the
            environment: JAX's, SLURM's or an indexed Kubernetes Job's
            variables; 1 if none is set).
        process_id: int >= 0 or None. With `distribute="jax"`, this
            process's index. Defaults to `None` (from the environment).
        coordinator: str or None. With `distribute="jax"`, `host:port` of
            process 0. Defaults to `None` (from the environment).
    """

    out: str | os.PathLike = _option(
        dataclasses.MISSING, "Run folder.", metavar="OUT"
    )
    data: str | os.PathLike | None = _option(
        None,
        "Image folder with one subfolder per class; or text: a CSV or "
        "JSONL file with text and label columns, or a folder with one "
        "subfolder of .txt files per class.",
        default_help="the bundled Fashion-MNIST subset (3,000 training / "
        "1,000 held-out)",
        positional="DATA",
    )
    modality: str = _option(
        "auto",
        "What DATA holds: auto detects it (a .csv or .jsonl file, or a "
        "folder of .txt files, is text).",
        choices=MODALITIES,
    )
    backbone: str | None = _option(
        None,
        "Backbone: for images "
        + ", ".join(BACKBONES)
        + "; for text minilm (all-MiniLM-L6-v2, offline once `python -m "
        "kerasft.assets` has provisioned it) or a keras-hub preset folder.",
        default_help="mobilenet for images, minilm for text",
        metavar="{" + ",".join([*BACKBONES, *TEXT_BACKBONES]) + ",PATH}",
    )
    weights: str | None = _option(
        "imagenet",
        "imagenet (from Keras's cache, else its download; `python -m "
        "kerasft.assets` provisions MobileNet's offline), none (random), or "
        "a weights file. For text, imagenet stands for the backbone's own "
        "pretrained weights, and none for random ones.",
        metavar="{imagenet,none,PATH}",
    )
    strategy: str = _option(
        "auto",
        "Fine-tuning strategy of phase 2; auto picks the recipe from the "
        "model family and the step budget.",
    )
    epochs: int = _option(3, "Epochs of phase 2 (fine-tuning).")
    head_epochs: int = _option(2, "Epochs of phase 1 (head only).")
    batch_size: int = _option(64, "Batch size.")
    image_size: int | None = _option(
        None,
        f"Square input size in pixels, at least {MIN_IMAGE_SIZE}.",
        default_help=f"{_DEFAULT_SIZE_BUNDLED} for the bundled data, "
        f"{_DEFAULT_SIZE_FOLDER} for a folder",
    )
    sequence_length: int | None = _option(
        None,
        "Text: tokens per example (longer texts are cut).",
        default_help=f"{DEFAULT_SEQUENCE_LENGTH}, or the backbone's "
        "maximum if lower",
        metavar="N",
    )
    text_column: str | None = _option(
        None,
        "Text in a CSV or JSONL file: the column (key) with the texts.",
        default_help="text",
        metavar="NAME",
    )
    label_column: str | None = _option(
        None,
        "Text in a CSV or JSONL file: the column (key) with the labels.",
        default_help="label",
        metavar="NAME",
    )
    learning_rate: float | str = _option(
        1e-4,
        "Adam's rate in phase 2 (the head's with discriminative), or auto: "
        "the valley suggestion of kerasft.lr_find, run when the phase starts.",
        metavar="{RATE,auto}",
        aliases=("--lr",),
    )
    head_learning_rate: float | str = _option(
        3e-3,
        "Adam's rate in phase 1, or auto (as --learning-rate).",
        metavar="{RATE,auto}",
        aliases=("--head-lr",),
    )
    validation_split: float = _option(
        0.2, "Fraction of each class of DATA held out."
    )
    max_per_class: int | None = _option(
        None,
        "Use at most N images per class (per split for the bundled data).",
        default_help="all",
        metavar="N",
    )
    seed: int = _option(
        0,
        "Seeds the split and Keras (weights, dropout, shuffling): the same "
        "options repeat a run on the same machine and backend.",
    )
    patience: int | None = _option(
        None,
        "Early stopping in each phase: stop after N epochs without a lower "
        "held-out loss, keeping the best epoch's weights.",
        default_help="off",
        metavar="N",
    )
    mixed_precision: str = _option(
        "none",
        "Keras dtype policy of the run (mixed_float16 adds loss scaling); "
        "the output layer computes in float32.",
        choices=MIXED_PRECISION,
    )
    label_smoothing: float = _option(
        0.0, "Label smoothing of the loss, in [0, 1).", metavar="X"
    )
    class_weight: str = _option(
        "none",
        "auto: weigh each class by n_samples / (n_classes * count) over "
        "the training images.",
        choices=CLASS_WEIGHTS,
    )
    tensorboard: bool = _option(
        False,
        "Write TensorBoard logs into OUT/tensorboard/ (needs TensorFlow).",
    )
    mixup: bool = _option(
        False,
        "MixUp the training batches (Beta(0.2, 0.2) weights, soft labels).",
    )
    cutmix: bool = _option(
        False,
        "CutMix the training batches (Beta(1, 1) areas, soft labels); with "
        "--mixup, each batch gets one of the two.",
    )
    mix_off_epochs: int = _option(
        0,
        "With --mixup/--cutmix: train the last N epochs of each phase on "
        "unmixed images.",
        metavar="N",
    )
    ema: float | None = _option(
        None,
        "Keep an exponential moving average of the weights with this decay "
        "(e.g. 0.99) in each phase; validation and the saved model use it.",
        default_help="off",
        metavar="DECAY",
    )
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

    distribute: str = _option(
        "none",
        "jax: run as one process of a JAX multi-controller job (data "
        "parallel over every process's devices; process 0 writes OUT).",
        choices=DISTRIBUTE,
    )
    num_processes: int | None = _option(
        None,
        "With --distribute jax: the number of processes.",
        default_help="from the environment (JAX_NUM_PROCESSES, "
        "SLURM_NTASKS), else 1",
        metavar="N",
    )
    process_id: int | None = _option(
        None,
        "With --distribute jax: this process's index, from 0.",
        default_help="from the environment (JAX_PROCESS_ID, SLURM_PROCID, "
        "JOB_COMPLETION_INDEX)",
        metavar="I",
    )
    coordinator: str | None = _option(
        None,
        "With --distribute jax: HOST:PORT of process 0.",
        default_help="from the environment (JAX_COORDINATOR_ADDRESS, the "
        "first host of SLURM_JOB_NODELIST on port 12321)",
        metavar="HOST:PORT",
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
            TypeError: naming the first option of the wrong type.
            FinetuneError: (a ValueError) naming the first bad value.
        """
        try:
            return self._validated()
        except FinetuneError:
            raise
        except ValueError as error:
            raise FinetuneError(str(error)) from None

    def _validated(self) -> FinetuneConfig:
        from kerasft._src.run.strategies import get_strategy

        check_choice("modality", self.modality, MODALITIES)
        data = check_path("data", self.data, allow_none=True)
        get_strategy(self.strategy)
        if self._modality(data) == "text":
            resolved = self._text_options(data)
        else:
            resolved = self._image_options(data)
        for field in ("epochs", "head_epochs", "batch_size"):
            check_int(field, getattr(self, field), minimum=1)
        check_int("seed", self.seed, minimum=0)
        check_int(
            "max_per_class", self.max_per_class, minimum=1, allow_none=True
        )
        check_number(
            "validation_split",
            self.validation_split,
            minimum=0,
            maximum=1,
            min_inclusive=False,
            max_inclusive=False,
        )
        for field in ("learning_rate", "head_learning_rate"):
            _check_rate(field, getattr(self, field))
        check_int("patience", self.patience, minimum=1, allow_none=True)
        check_choice("mixed_precision", self.mixed_precision, MIXED_PRECISION)
        check_number(
            "label_smoothing",
            self.label_smoothing,
            minimum=0,
            maximum=1,
            max_inclusive=False,
        )
        check_choice("class_weight", self.class_weight, CLASS_WEIGHTS)
        for field in _FLAGS:
            check_bool(field, getattr(self, field))
        check_int("mix_off_epochs", self.mix_off_epochs, minimum=0)
        check_number(
            "ema",
            self.ema,
            minimum=0,
            maximum=1,
            min_inclusive=False,
            max_inclusive=False,
            allow_none=True,
        )
        if self.ema is not None and self.patience is not None:
            raise FinetuneError(
                "`ema` and `patience` cannot be combined: early stopping "
                "keeps the raw weights of its best epoch, while `ema` ends "
                "each phase with the average. Received: "
                f"ema={self.ema!r}, patience={self.patience!r}"
            )
        self._check_distribute(resolved["modality"])
        return dataclasses.replace(
            self,
            data=data,
            out=check_path("out", self.out),
            name=_check_name(self.name, data),
            **resolved,
        )

    def _check_distribute(self, modality):
        import keras

        check_choice("distribute", self.distribute, DISTRIBUTE)
        check_int(
            "num_processes", self.num_processes, minimum=1, allow_none=True
        )
        check_int("process_id", self.process_id, minimum=0, allow_none=True)
        check_type(
            "coordinator", self.coordinator, str, "a str", allow_none=True
        )
        if self.coordinator is not None and not _COORDINATOR.fullmatch(
            self.coordinator
        ):
            raise FinetuneError(
                "`coordinator` must be HOST:PORT, e.g. 10.0.0.1:12321. "
                f"Received: coordinator={self.coordinator!r}"
            )
        if self.distribute == "none":
            given = [f for f in _CLUSTER_FIELDS if getattr(self, f) is not None]
            if given:
                raise FinetuneError(
                    f"`{given[0]}` sets up a distributed run; add "
                    f"`distribute=jax`. Received: {given[0]}="
                    f"{getattr(self, given[0])!r}, distribute='none'"
                )
            return
        backend = keras.backend.backend()
        if backend != "jax":
            raise FinetuneError(
                "`distribute=jax` runs a JAX multi-controller job and needs "
                "the JAX backend (KERAS_BACKEND=jax, or the command's "
                f"--backend jax). Received: backend={backend!r}"
            )
        if modality == "text":
            raise FinetuneError(
                "`distribute=jax` runs image data only: text batches come "
                "from a tf.data pipeline that is not sharded. Received: "
                "modality='text', distribute='jax'"
            )
        for name, why in _NOT_DISTRIBUTED.items():
            if getattr(self, name):
                raise FinetuneError(
                    f"`{name}` does not run with `distribute=jax`: {why}. "
                    f"Received: {name}=True, distribute='jax'"
                )
        for name in ("learning_rate", "head_learning_rate"):
            if getattr(self, name) == AUTO:
                raise FinetuneError(
                    f"`{name}=auto` does not run with `distribute=jax`: "
                    "kerasft.lr_find does not split its data across processes; "
                    "pass a rate. "
                    f"Received: {name}='auto', distribute='jax'"
                )

    def _modality(self, data) -> str:
        if self.modality != "auto":
            return self.modality
        from kerasft._src.run.text_data import detect_modality

        return detect_modality(data)

    def _image_options(self, data) -> dict:
        """The image defaults; text-only options are refused."""
        _refuse(
            self,
            ("sequence_length", "text_column", "label_column"),
            "text data",
            "images",
        )
        backbone = "mobilenet" if self.backbone is None else self.backbone
        check_choice("backbone", backbone, BACKBONES)
        image_size = self.image_size
        if image_size is None:
            image_size = (
                _DEFAULT_SIZE_BUNDLED if data is None else _DEFAULT_SIZE_FOLDER
            )
        # MIN_IMAGE_SIZE: keras.applications refuses smaller inputs.
        image_size = check_int("image_size", image_size, minimum=MIN_IMAGE_SIZE)
        return {
            "modality": "image",
            "backbone": backbone,
            "image_size": image_size,
        }

    def _text_options(self, data) -> dict:
        """The text defaults; image-only options are refused."""
        if data is None:
            raise FinetuneError(
                "`modality='text'` needs DATA: a CSV or JSONL file with text "
                "and label columns, or a folder with one subfolder of .txt "
                "files per class. Received: modality='text', data=None"
            )
        _refuse(self, ("image_size", "mixup", "cutmix"), "images", "text")
        backbone = "minilm" if self.backbone is None else self.backbone
        check_type("backbone", backbone, (str, os.PathLike), "a str")
        backbone = os.fspath(backbone)
        if backbone not in TEXT_BACKBONES and not os.path.isdir(backbone):
            raise FinetuneError(
                "`backbone` must be "
                + " or ".join(repr(n) for n in TEXT_BACKBONES)
                + " or the path of a keras-hub preset folder (or of a "
                "Hugging Face BERT checkpoint) for text data. "
                f"Received: backbone={backbone!r}"
            )
        check_int(
            "sequence_length", self.sequence_length, minimum=2, allow_none=True
        )
        columns = {
            "text_column": self.text_column,
            "label_column": self.label_column,
        }
        if os.path.isdir(data):
            _refuse(self, tuple(columns), "a CSV or JSONL file", "a folder")
        else:
            for field, default in zip(columns, ("text", "label")):
                value = columns[field]
                columns[field] = default if value is None else value
                check_type(field, columns[field], str, "a str")
        return {"modality": "text", "backbone": backbone, **columns}


def _refuse(config, fields, applies_to, data_is):
    """Options that apply only to other data must keep their defaults."""
    for field in fields:
        value = getattr(config, field)
        default = next(
            f.default for f in dataclasses.fields(config) if f.name == field
        )
        if value != default:
            raise FinetuneError(
                f"`{field}` applies only to {applies_to}, and DATA is "
                f"{data_is}. Received: {field}={value!r}"
            )


def _check_rate(name, value):
    """A learning rate: a number > 0, or `"auto"` (`kerasft.lr_find`)."""
    check_type(name, value, (numbers.Real, str), "a number > 0 or 'auto'")
    if isinstance(value, str):
        if value != AUTO:
            raise FinetuneError(
                f"`{name}` must be a number > 0 or 'auto'. "
                f"Received: {name}={value!r}"
            )
        return value
    return check_number(name, value, minimum=0, min_inclusive=False)


def _check_name(name, data):
    if name is None:
        return default_name(data)
    check_type("name", name, str, "a str or None")
    if not _NAME_PATTERN.fullmatch(name):
        raise FinetuneError(
            "`name` must be letters, digits, '_', '.' or '-', starting with "
            f"a letter or digit. Received: name={name!r}"
        )
    return name


def default_name(data):
    """The export's model name: the data's folder or file name, made safe."""
    if data is None:
        return BUNDLED_NAME
    base = os.path.basename(os.path.normpath(os.fspath(data)))
    if os.path.isfile(data):
        base = os.path.splitext(base)[0]  # reviews.csv -> reviews
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", base).lstrip("_.-")
    return name if _NAME_PATTERN.fullmatch(name or "") else "classifier"
