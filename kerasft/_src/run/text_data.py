"""The texts of a fine-tuning run: a CSV or JSONL file, or a folder.

A file holds one example per row (CSV, with a header) or per line (JSONL,
one JSON object each), with a text column and a label column. A folder
holds one subfolder per class of `.txt` files, one example each. Labels
become class indices in the sorted order of their names (numbers in
numeric order). The texts stay Python strings: the keras-hub model's
preprocessor tokenizes them, and `kerasft.text_data.text_dataset` feeds
them to `fit` in a new order each epoch.

Every file is read as UTF-8; bad bytes, an empty file, a missing column
or a single class stop the run with one line that names the file (and
the line).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from typing import ClassVar

import numpy as np

from kerasft._src.logs import get_logger
from kerasft._src.run.config import FinetuneConfig
from kerasft._src.run.config import FinetuneError
from kerasft._src.run.data import _files
from kerasft._src.run.data import _split

# Files of text examples, by suffix; a folder holds `.txt` files.
TEXT_FILES = {".csv": "CSV", ".jsonl": "JSONL"}
TEXT_SUFFIX = ".txt"
_LOGGER = get_logger("finetune")
_FOLDER_HINT = (
    "one subfolder per class, of images (e.g. DATA/cats/*.jpg) or of "
    ".txt files (e.g. DATA/positive/*.txt)"
)


@dataclasses.dataclass(frozen=True)
class TextDataset:
    """Training and held-out texts: `(list of str, int64 labels)` each."""

    modality: ClassVar[str] = "text"
    train: tuple
    heldout: tuple
    class_names: list
    source: str
    layout: str  # "CSV file", "JSONL file" or "folder of .txt files"
    columns: tuple | None  # (text, label) of a file
    skipped: list

    def describe(self) -> str:
        columns = ""
        if self.columns:
            columns = ", columns {!r} and {!r}".format(*self.columns)
        return (
            f"Data: {self.source} (text: a {self.layout}{columns}): "
            f"{len(self.train[0])} training / {len(self.heldout[0])} "
            f"held-out texts, {len(self.class_names)} classes"
        )

    def record(self) -> dict:
        """The `data` entry of `summary.json`."""
        record = {
            "modality": "text",
            "source": self.source,
            "layout": self.layout,
            "class_names": list(self.class_names),
            "num_train": int(len(self.train[0])),
            "num_heldout": int(len(self.heldout[0])),
            "skipped_files": len(self.skipped),
        }
        if self.columns:
            record["text_column"], record["label_column"] = self.columns
        return record


def detect_modality(data) -> str:
    """`"text"` for a CSV or JSONL file or a folder of `.txt` files.

    Anything else is `"image"`, for the image loader to read or refuse
    (a missing folder, say). A folder with no file at all is refused
    here, naming both layouts.
    """
    if data is None or not os.path.exists(data):
        return "image"
    if os.path.isfile(data):
        if _suffix(data) in TEXT_FILES:
            return "text"
        raise FinetuneError(
            f"data {data!r} is a file but not a CSV or JSONL file (.csv, "
            ".jsonl, with text and label columns); for images or .txt "
            f"files pass a folder with {_FOLDER_HINT}"
        )
    files = _class_files(data)
    if not any(files.values()):
        raise FinetuneError(
            f"data folder {data!r} is empty: it needs {_FOLDER_HINT}"
        )
    names = [path for paths in files.values() for path in paths]
    return "text" if all(_suffix(p) == TEXT_SUFFIX for p in names) else "image"


def _suffix(path) -> str:
    return os.path.splitext(os.fspath(path))[1].lower()


def _class_files(directory) -> dict:
    return {
        name: _files(os.path.join(directory, name))
        for name in sorted(os.listdir(directory))
        if not name.startswith(".")
        and os.path.isdir(os.path.join(directory, name))
    }


def load(config: FinetuneConfig) -> TextDataset:
    """Loads and splits the texts of a validated config."""
    data = config.data
    if not os.path.exists(data):
        raise FinetuneError(f"data {data!r} does not exist")
    if os.path.isdir(data):
        texts, labels, skipped = _read_folder(data)
        layout, columns = "folder of .txt files", None
    else:
        columns = (config.text_column, config.label_column)
        kind = TEXT_FILES.get(_suffix(data))
        if kind is None:
            raise FinetuneError(
                f"data file {data!r} is not a CSV or JSONL file (.csv, .jsonl)"
            )
        read = _read_csv if kind == "CSV" else _read_jsonl
        texts, labels, skipped = read(data, *columns)
        layout = f"{kind} file"
    y, class_names = _class_indices(data, labels, columns)
    keep = _cap(y, config.max_per_class)
    texts, y = [texts[i] for i in keep], y[keep]
    train, held = _split(
        y, config.validation_split, config.seed, class_names, "text(s)"
    )
    if skipped:
        shown = ", ".join(skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        _LOGGER.warning(
            f"skipped {len(skipped)} example(s) without text or label: {shown}"
        )
    return TextDataset(
        ([texts[i] for i in train], y[train]),
        ([texts[i] for i in held], y[held]),
        class_names,
        os.path.abspath(data),
        layout,
        columns,
        skipped,
    )


def _cap(y, max_per_class):
    """Indices of the first `max_per_class` examples of each class."""
    if max_per_class is None:
        return np.arange(len(y))
    keep = np.concatenate(
        [np.flatnonzero(y == c)[:max_per_class] for c in np.unique(y)]
    )
    return np.sort(keep)


def _class_indices(data, labels, columns):
    """Labels as int64 class indices, and the sorted class names.

    A file's labels sort numbers numerically; a folder's class names sort
    as text, as the image folders' do.
    """
    order = _label_order if columns else None
    names = sorted(set(labels), key=order)
    if len(names) < 2:
        where = f" in column {columns[1]!r}" if columns else ""
        raise FinetuneError(
            f"data {data!r} has 1 class ({names[0]!r}){where}; a "
            "classifier needs at least 2 classes"
        )
    index = {name: i for i, name in enumerate(names)}
    return np.asarray([index[x] for x in labels], dtype="int64"), names


def _label_order(name):
    """Numbers in numeric order, then other names in text order."""
    try:
        return (0, float(name), "")
    except ValueError:
        return (1, 0.0, name)


def read_utf8(path) -> str:
    """The text of a file; bad bytes stop the run, naming file and line."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        raise FinetuneError(
            f"data file {path!r}, line {line}, column {column}: byte "
            f"0x{raw[error.start]:02x} is not UTF-8; save the file as UTF-8"
        ) from None


def _read_csv(path, text_column, label_column):
    text = read_utf8(path)
    if not text.strip():
        raise FinetuneError(
            f"data file {path!r} is empty: it needs a header row naming the "
            "text and label columns, then one row per example"
        )
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as error:
        raise FinetuneError(f"data file {path!r}: {error}") from None
    header = [name.strip() for name in rows[0]]
    _check_columns(path, header, (text_column, label_column))
    i, j = header.index(text_column), header.index(label_column)
    texts, labels, skipped = [], [], []
    for number, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        cells = [row[k].strip() if k < len(row) else "" for k in (i, j)]
        _keep(path, number, *cells, texts, labels, skipped)
    _check_rows(path, texts, skipped)
    return texts, labels, skipped


def _read_jsonl(path, text_column, label_column):
    lines = read_utf8(path).splitlines()
    if not any(line.strip() for line in lines):
        raise FinetuneError(
            f"data file {path!r} is empty: it needs one JSON object per "
            f"line, e.g. {{{text_column!r}: '...', {label_column!r}: '...'}}"
        )
    texts, labels, skipped = [], [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise FinetuneError(
                f"data file {path!r}, line {number}: not JSON ({error.msg})"
            ) from None
        if not isinstance(row, dict):
            raise FinetuneError(
                f"data file {path!r}, line {number}: a JSON object is "
                f"needed, not {type(row).__name__}"
            )
        _check_columns(path, list(row), (text_column, label_column), number)
        cells = [row[text_column], row[label_column]]
        for key, value in zip((text_column, label_column), cells):
            if isinstance(value, (dict, list)) or value is None:
                raise FinetuneError(
                    f"data file {path!r}, line {number}: {key!r} must be a "
                    f"string, a number or a bool. Received: {value!r}"
                )
        cells = [str(cell).strip() for cell in cells]
        _keep(path, number, *cells, texts, labels, skipped)
    _check_rows(path, texts, skipped)
    return texts, labels, skipped


def _check_columns(path, found, wanted, line=None):
    missing = [name for name in wanted if name not in found]
    if missing:
        where = "" if line is None else f", line {line},"
        shown = ", ".join(repr(name) for name in found) or "none"
        raise FinetuneError(
            f"data file {path!r}{where} has no column "
            + " or ".join(repr(name) for name in missing)
            + f" (columns found: {shown}); name them with `text_column` "
            "and `label_column`"
        )


def _keep(path, number, text, label, texts, labels, skipped):
    """Keeps a row with a text and a label; the others are skipped."""
    if text and label:
        texts.append(text)
        labels.append(label)
    else:
        skipped.append(f"{os.path.basename(path)}:{number}")


def _check_rows(path, texts, skipped):
    if not texts:
        raise FinetuneError(
            f"data file {path!r} has no example with both a text and a "
            f"label ({len(skipped)} row(s) without one)"
        )


def _read_folder(directory):
    files = _class_files(directory)
    if not any(files.values()):
        raise FinetuneError(
            f"data folder {directory!r} is empty: it needs one subfolder of "
            ".txt files per class (e.g. DATA/positive/*.txt)"
        )
    texts, labels, skipped = [], [], []
    for name, paths in files.items():
        count = len(texts)
        for path in paths:
            text = ""
            if _suffix(path) == TEXT_SUFFIX:
                text = read_utf8(path).strip()
            if text:
                texts.append(text)
                labels.append(name)
            else:
                skipped.append(os.path.relpath(path, directory))
        if len(texts) == count and len(files) > 1:
            raise FinetuneError(
                f"class folder {os.path.join(directory, name)!r} has no .txt "
                f"file with text ({len(paths)} empty or other file(s))"
            )
    return texts, labels, skipped
