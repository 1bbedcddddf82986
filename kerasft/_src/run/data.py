"""The images of a fine-tuning run: an image folder or the bundled subset.

Images are read with Pillow into numpy arrays (RGB, resized to a square of
`image_size` pixels, 0-255), not with
`keras.utils.image_dataset_from_directory`: that works on every backend
too, but needs TensorFlow's `tf.data` at run time, while numpy arrays
feed `fit` the same way on TensorFlow, JAX and PyTorch. The whole data
set is held in memory, which suits the small data sets this is for.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from kerasft._src import assets
from kerasft._src.logs import get_logger
from kerasft._src.run.config import FinetuneConfig
from kerasft._src.run.config import FinetuneError

BUNDLED = "bundled Fashion-MNIST subset"
_LOGGER = get_logger("finetune")


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Training and held-out images, as `fit` takes them."""

    train: tuple
    heldout: tuple
    class_names: list
    source: str
    image_size: int
    skipped: list

    def describe(self) -> str:
        size = self.image_size
        return (
            f"Data: {self.source}: {len(self.train[0])} training / "
            f"{len(self.heldout[0])} held-out images, "
            f"{len(self.class_names)} classes, {size}x{size} RGB"
        )

    def record(self) -> dict:
        """The `data` entry of `summary.json`."""
        return {
            "modality": "image",
            "source": self.source,
            "class_names": list(self.class_names),
            "num_train": int(len(self.train[0])),
            "num_heldout": int(len(self.heldout[0])),
            "image_size": self.image_size,
            "skipped_files": len(self.skipped),
        }


def load(config: FinetuneConfig):
    """Loads and splits the data of a validated config (images or text)."""
    if config.modality == "text":
        from kerasft._src.run import text_data

        return text_data.load(config)
    size, cap = config.image_size, config.max_per_class
    if config.data is None:
        train, heldout, class_names = _bundled(size, cap)
        return Dataset(train, heldout, class_names, BUNDLED, size, [])
    x, y, class_names, skipped = load_image_folder(
        config.data, size, max_per_class=cap
    )
    train, held = _split(y, config.validation_split, config.seed, class_names)
    if skipped:
        shown = ", ".join(os.path.relpath(p, config.data) for p in skipped[:3])
        more = ", ..." if len(skipped) > 3 else ""
        _LOGGER.warning(
            f"skipped {len(skipped)} unreadable file(s): {shown}{more}"
        )
    return Dataset(
        (x[train], y[train]),
        (x[held], y[held]),
        class_names,
        os.path.abspath(config.data),
        size,
        skipped,
    )


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
        import PIL.Image  # noqa: F401
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
        read = _read_images(files[name], image_size, max_per_class, skipped)
        if not read:
            raise FinetuneError(
                f"class folder {os.path.join(directory, name)!r} has no "
                f"readable image ({len(files[name])} files could not be read)"
            )
        images.extend(read)
        labels.extend([label] * len(read))
    x = np.stack(images).astype("float32")
    return x, np.asarray(labels, dtype="int64"), class_names, skipped


def _read_images(paths, image_size, max_per_class, skipped):
    """Reads up to `max_per_class` images; unreadable paths go to `skipped`."""
    from PIL import Image

    images = []
    for path in paths:
        if max_per_class is not None and len(images) >= max_per_class:
            break
        try:
            with Image.open(path) as image:
                image = image.convert("RGB").resize(
                    (image_size, image_size), Image.BILINEAR
                )
                images.append(np.asarray(image, dtype="float32"))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            skipped.append(path)
    return images


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


def _split(y, fraction, seed, class_names, noun="readable image"):
    """Stratified split: indices of the training and held-out examples."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    for label, name in enumerate(class_names):
        index = np.flatnonzero(y == label)
        if len(index) < 2:
            raise FinetuneError(
                f"class {name!r} has {len(index)} {noun}; at least 2 "
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
