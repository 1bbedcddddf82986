"""`kerasft finetune` on text: CSV/JSONL files and folders of .txt files.

The input checks are pure Python: each bad input stops the command with
one line before any model is built. The end-to-end run fine-tunes a tiny
keras-hub BERT (one Transformer layer, hidden size 4) saved as a local
preset, so nothing is downloaded; only the TensorFlow backend exports it
(the export runs in TensorFlow processes whatever trained the model, and
takes seconds). The real all-MiniLM-L6-v2 is loaded only by the test
marked `pretrained`.
"""

import contextlib
import csv
import importlib
import io
import json
import os

import keras
import numpy as np
import pytest
from _cli_helpers import assert_one_line_error as _assert_one_line_error
from _cli_helpers import finetune as _finetune

import kerasft.finetune
from kerasft import cli
from kerasft._src.backbones import hub
from kerasft._src.run import text_data
from kerasft._src.run.config import FinetuneConfig
from kerasft._src.run.config import FinetuneError

_VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (
    "a fine warm film dull long bad".split()
)
_POSITIVE = ["a fine film", "a warm film", "fine", "warm, fine"]
_NEGATIVE = ["a dull film", "a long bad film", "dull", "long, bad"]


def _write_csv(path, rows, header=("text", "label")):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return os.fspath(path)


def _write_txt_folder(root, classes):
    for name, texts in classes.items():
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i, text in enumerate(texts):
            with open(os.path.join(root, name, f"{i}.txt"), "w") as f:
                f.write(text)
    return os.fspath(root)


def _rows():
    return [(t, "pos") for t in _POSITIVE] + [(t, "neg") for t in _NEGATIVE]


# --------------------------------------------------------------------------
# Bad text input: one line, nothing written, before any model is built.


def _bad_data(tmp_path, layout):
    """Writes the bad input `layout`; returns DATA and extra flags."""
    csv_path = tmp_path / "reviews.csv"
    jsonl_path = tmp_path / "reviews.jsonl"
    if layout == "empty_csv":
        csv_path.write_bytes(b"")
        return os.fspath(csv_path), []
    if layout == "header_only":
        return _write_csv(csv_path, []), []
    if layout == "columns":
        return _write_csv(csv_path, _rows(), ("review", "sentiment")), []
    if layout == "one_class":
        return _write_csv(csv_path, [(t, "pos") for t in _POSITIVE]), []
    if layout == "latin1":
        csv_path.write_bytes(b"text,label\na fine film,pos\nun caf\xe9,neg\n")
        return os.fspath(csv_path), []
    if layout == "empty_jsonl":
        jsonl_path.write_text("\n\n")
        return os.fspath(jsonl_path), []
    if layout == "jsonl_key":
        jsonl_path.write_text(json.dumps({"text": "a fine film"}) + "\n")
        return os.fspath(jsonl_path), []
    if layout == "jsonl_syntax":
        jsonl_path.write_text('{"text": "fine", "label": 1}\n{"text": \n')
        return os.fspath(jsonl_path), []
    folder = tmp_path / "texts"
    if layout == "empty_folder":
        folder.mkdir()
        return os.fspath(folder), []
    if layout == "empty_text_folder":
        (folder / "pos").mkdir(parents=True)
        return os.fspath(folder), ["--modality", "text"]
    if layout == "folder_one_class":
        return _write_txt_folder(folder, {"pos": _POSITIVE}), []
    if layout == "folder_latin1":
        _write_txt_folder(folder, {"pos": _POSITIVE, "neg": _NEGATIVE})
        (folder / "neg" / "9.txt").write_bytes(b"dull\nand \xff long\n")
        return os.fspath(folder), []
    if layout == "tsv":
        path = tmp_path / "reviews.tsv"
        path.write_text("text\tlabel\n")
        return os.fspath(path), []
    raise AssertionError(layout)


@pytest.mark.parametrize(
    "layout, match",
    [
        (
            "empty_csv",
            r"data file '.*reviews\.csv' is empty: it needs a header",
        ),
        ("header_only", r"reviews\.csv' has no example with both a text"),
        (
            "columns",
            r"has no column 'text' or 'label' \(columns found: 'review', "
            r"'sentiment'\); name them with --text-column and --label-column",
        ),
        ("one_class", r"has 1 class \('pos'\) in column 'label'; a class"),
        (
            "latin1",
            r"'.*reviews\.csv', line 3, column 7: byte 0xe9 is not UTF-8",
        ),
        ("empty_jsonl", r"data file '.*reviews\.jsonl' is empty"),
        (
            "jsonl_key",
            r"reviews\.jsonl', line 1, has no column 'label' \(columns "
            r"found: 'text'\)",
        ),
        ("jsonl_syntax", r"reviews\.jsonl', line 2: not JSON"),
        (
            "empty_folder",
            r"data folder '.*texts' is empty: it needs one subfolder per "
            r"class, of images .* or of \.txt files",
        ),
        (
            "empty_text_folder",
            r"data folder '.*texts' is empty: it needs one subfolder of "
            r"\.txt files per class",
        ),
        ("folder_one_class", r"data '.*texts' has 1 class \('pos'\); a"),
        (
            "folder_latin1",
            r"'.*texts/neg/9\.txt', line 2, column 5: byte 0xff is not UTF-8",
        ),
        ("tsv", r"reviews\.tsv' is a file but not a CSV or JSONL file"),
    ],
)
def test_bad_text_data_takes_one_line(tmp_path, capsys, layout, match):
    data, extra = _bad_data(tmp_path, layout)
    out = os.fspath(tmp_path / "run")
    code, stdout, err = _finetune(capsys, data, "--out", out, *extra)
    _assert_one_line_error(code, err, match)
    assert stdout == ""
    assert not os.path.exists(out)


@pytest.mark.parametrize(
    "data, extra, match",
    [
        (
            "csv",
            ["--image-size", "64"],
            r"--image-size applies only to images, and DATA is text. "
            r"Received: --image-size 64",
        ),
        ("csv", ["--mixup"], r"--mixup applies only to images"),
        (
            "images",
            ["--text-column", "review"],
            r"--text-column applies only to text data, and DATA is images",
        ),
        (
            "txt",
            ["--label-column", "y"],
            r"--label-column applies only to a CSV or JSONL file, and DATA "
            r"is a folder",
        ),
        (
            "csv",
            ["--backbone", "vgg16"],
            r"--backbone must be 'minilm' or the path of a keras-hub preset",
        ),
        ("csv", ["--weights", "w.h5"], r"--weights must be 'imagenet' .*"),
        ("csv", ["--sequence-length", "1"], r"--sequence-length must be an"),
        ("none", ["--modality", "text"], r"--modality 'text' needs DATA"),
    ],
)
def test_options_of_the_other_modality_are_refused(
    tmp_path, capsys, data, extra, match
):
    from PIL import Image

    paths = {"none": []}
    paths["csv"] = [_write_csv(tmp_path / "reviews.csv", _rows())]
    folder = tmp_path / "texts"
    paths["txt"] = [_write_txt_folder(folder, {"a": ["x"], "b": ["y"]})]
    for name in ("cats", "dogs"):
        (tmp_path / "images" / name).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "images" / name / "0.png")
    paths["images"] = [os.fspath(tmp_path / "images")]
    out = os.fspath(tmp_path / "run")
    code, stdout, err = _finetune(capsys, *paths[data], "--out", out, *extra)
    _assert_one_line_error(code, err, match)
    assert stdout == "" and not os.path.exists(out)


def test_missing_text_packages_fail_before_training(tmp_path, monkeypatch):
    from kerasft._src.run import model as run_model

    real = run_model.importlib.util.find_spec

    def find_spec(name, *args):
        return None if name in ("keras_hub", "tensorflow_text") else real(name)

    monkeypatch.setattr(run_model.importlib.util, "find_spec", find_spec)
    data = _write_csv(tmp_path / "reviews.csv", _rows())
    out = os.fspath(tmp_path / "run")
    with pytest.raises(
        FinetuneError,
        match=r"missing package\(s\) keras-hub, tensorflow-text: pip install "
        r"keras-hub tensorflow-text$",
    ):
        kerasft.finetune.finetune(data, out=out, log=print)
    assert not os.path.exists(out)


def test_modality_detection_and_defaults(tmp_path):
    csv_path = _write_csv(tmp_path / "my reviews.csv", _rows())
    config = FinetuneConfig(out="o", data=csv_path).validated()
    assert config.modality == "text" and config.backbone == "minilm"
    assert (config.text_column, config.label_column) == ("text", "label")
    assert config.name == "my_reviews" and config.image_size is None
    folder = _write_txt_folder(tmp_path / "t", {"a": ["x"], "b": ["y"]})
    config = FinetuneConfig(out="o", data=folder).validated()
    assert config.modality == "text" and config.text_column is None
    assert FinetuneConfig(out="o").validated().modality == "image"
    with pytest.raises(FinetuneError, match="`modality` must be one of"):
        FinetuneConfig(out="o", modality="audio").validated()


def test_text_folder_and_jsonl_loading(tmp_path):
    folder = _write_txt_folder(
        tmp_path / "t",
        {"pos": [*_POSITIVE, " "], "neg": _NEGATIVE},
    )
    (tmp_path / "t" / "neg" / "notes.md").write_text("not an example")
    config = FinetuneConfig(
        out="o", data=folder, modality="text", validation_split=0.25
    ).validated()
    dataset = text_data.load(config)
    assert dataset.class_names == ["neg", "pos"]
    assert len(dataset.train[0]) == 6 and len(dataset.heldout[0]) == 2
    assert sorted(dataset.skipped) == [
        os.path.join("neg", "notes.md"),
        os.path.join("pos", "4.txt"),
    ]
    assert dataset.record()["layout"] == "folder of .txt files"

    path = tmp_path / "r.jsonl"
    lines = [{"body": t, "stars": 5} for t in _POSITIVE]
    lines += [{"body": t, "stars": 10} for t in _NEGATIVE]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    config = FinetuneConfig(
        out="o", data=os.fspath(path), text_column="body", label_column="stars"
    ).validated()
    dataset = text_data.load(config)
    # Numeric labels in numeric order (not "10" < "5").
    assert dataset.class_names == ["5", "10"]
    assert "columns 'body' and 'stars'" in dataset.describe()


# --------------------------------------------------------------------------
# The export of a keras-hub model.


def _tiny_backbone():
    keras_hub = pytest.importorskip("keras_hub")
    return keras_hub.models.BertBackbone(
        vocabulary_size=len(_VOCABULARY),
        num_layers=1,
        num_heads=1,
        hidden_dim=4,
        intermediate_dim=8,
        max_sequence_length=8,
    )


def test_exact_gelu_backbone_class_imports_by_name():
    from kerasft._src.export.tf_serving import _custom_classes

    keras_hub = pytest.importorskip("keras_hub")
    model = keras_hub.models.BertTextClassifier(
        hub.exact_gelu_backbone(_tiny_backbone()), 2, preprocessor=None
    )
    (entry,) = _custom_classes(model)
    module = importlib.import_module(entry["module"])
    assert getattr(module, entry["qualname"]) is type(model.backbone)


def test_text_sample_inputs_must_be_strings():
    from kerasft._src.export.tf_serving import TEXT_INPUT
    from kerasft._src.export.tf_serving import _sample_inputs

    samples = _sample_inputs([TEXT_INPUT], ["a film", "another"])
    assert samples["text"].tolist() == ["a film", "another"]
    with pytest.raises(ValueError, match="must be a list of str. Received"):
        _sample_inputs([TEXT_INPUT], np.zeros((2, 3)))


# --------------------------------------------------------------------------
# One run end to end, on a tiny local keras-hub preset.


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    keras_hub = pytest.importorskip("keras_hub")
    folder = os.fspath(tmp_path_factory.mktemp("tiny_bert"))
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=_VOCABULARY)
    keras.utils.set_random_seed(0)
    _tiny_backbone().save_to_preset(folder)
    tokenizer.save_to_preset(folder)
    return folder


@pytest.fixture(scope="module")
def text_run(tmp_path_factory, tiny_preset):
    """`kerasft finetune reviews.csv`; the export on TensorFlow only."""
    root = tmp_path_factory.mktemp("text_run")
    # 8 training and 2 held-out texts: 2 full batches of 4, one shape.
    rows = _rows() + [("fine film", "pos"), ("bad film", "neg")]
    data = _write_csv(root / "reviews.csv", rows, ("review", "sentiment"))
    out = os.fspath(root / "run")
    args = [data, "--backbone", tiny_preset, "--out", out]
    args += ["--text-column", "review", "--label-column", "sentiment"]
    args += ["--epochs", "1", "--head-epochs", "1", "--batch-size", "4"]
    exports = keras.backend.backend() == "tensorflow"
    if not exports:
        args.append("--no-export")
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.main(["finetune", *args])
    assert code == 0, stderr.getvalue()
    return out, stdout.getvalue(), exports


def test_text_run_writes_the_run_folder(text_run):
    out, log, exports = text_run
    assert "(text: a CSV file, columns 'review' and 'sentiment'): 8 " in log
    assert "8 tokens per text; stages: embeddings, transformer_layer_0" in log
    expected = ["history.csv", "history.png", "model.keras", "summary.json"]
    assert sorted(os.listdir(out)) == sorted(
        expected + (["serving"] if exports else [])
    )
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    data = summary["data"]
    assert data["modality"] == "text" and data["class_names"] == ["neg", "pos"]
    assert (data["num_train"], data["num_heldout"]) == (8, 2)
    assert data["sequence_length"] == 8 and data["label_column"] == "sentiment"
    assert summary["args"]["modality"] == "auto"
    assert summary["weights"] == "pretrained"
    assert summary["stages"][-2:] == ["pooler", "head"]
    # The default strategy, auto: a Transformer, every stage from the start.
    assert summary["strategy"] == "auto"
    assert summary["auto"]["family"] == "transformer"
    assert summary["auto"]["total_steps"] == 2  # 8 texts, batches of 4
    assert summary["auto"]["unfreeze_steps"] == {}
    # Plain full fine-tuning: no warm-up, one rate for every stage.
    assert summary["auto"]["warmup_steps"] == 0
    assert summary["auto"]["layerwise_decay"] == 1.0
    assert summary["auto"]["chose"].startswith("plain full fine-tuning")
    with open(os.path.join(out, "history.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [r["phase"] for r in rows] == ["head", "finetune"]
    model = keras.saving.load_model(
        os.path.join(out, "model.keras"), compile=False
    )
    probabilities = model.predict(np.array(["a fine film", "dull"]), verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-5)


def test_text_run_export_serves_raw_strings(text_run):
    out, log, exports = text_run
    if not exports:
        pytest.skip(
            "the run exports on the TensorFlow backend only: the export "
            "runs in TensorFlow processes whatever trained the model"
        )
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the tokenizer's ops)

    version = os.path.join(out, "serving", "reviews", "1")
    with open(
        os.path.join(version, "assets.extra", "sample_request.json")
    ) as f:
        request = json.load(f)
    assert isinstance(request["instances"][0]["text"], str)
    signature = tf.saved_model.load(version).signatures["serving_default"]
    (spec,) = signature.structured_input_signature[1].values()
    assert spec.dtype == tf.string and spec.name == "text"
    texts = ["a fine film", "a long, dull film"]
    served = signature(text=tf.constant(texts))
    (probabilities,) = served.values()
    model = keras.saving.load_model(
        os.path.join(out, "model.keras"), compile=False
    )
    expected = model.predict(np.array(texts), verbose=0)
    np.testing.assert_allclose(probabilities.numpy(), expected, atol=1e-5)


def _text_config(tmp_path, **options):
    import dataclasses

    from kerasft._src.run import model as run_model

    data = _write_csv(tmp_path / "reviews.csv", _rows())
    config = FinetuneConfig(out="o", data=data, **options).validated()
    weights = run_model.resolve_weights(config.weights, config.modality)
    return dataclasses.replace(config, weights=weights)


@pytest.mark.pretrained
@pytest.mark.skipif(
    not hub.is_minilm_provisioned(),
    reason="all-MiniLM-L6-v2 is not provisioned: run "
    "`python -m kerasft.assets --only all_minilm_l6_v2`",
)
def test_minilm_is_the_default_text_backbone(
    tmp_path, monkeypatch, tiny_preset
):
    from kerasft._src.run import model as run_model

    calls = []

    def load(preset, num_classes, **kwargs):
        # The real checkpoint is loaded by tests/backbones; a tiny model
        # keeps this test fast.
        calls.append((preset, kwargs))
        return real_load(tiny_preset, num_classes, **kwargs)

    real_load = hub.load_hub_text_classifier
    monkeypatch.setattr(hub, "load_hub_text_classifier", load)
    lines = []
    model = run_model.build(_text_config(tmp_path), 2, lines.append)
    ((preset, kwargs),) = calls
    assert preset == hub.minilm_dir()
    # A Hugging Face checkpoint: exact GELU, as it was trained.
    assert kwargs["exact_gelu"] and kwargs["load_weights"]
    assert "Model: all-MiniLM-L6-v2 (weights: pretrained)" in lines[0]
    # The tiny backbone takes 8 tokens at most: the default 128 is cut.
    assert model.preprocessor.sequence_length == 8


def test_missing_minilm_names_the_provisioning_command(tmp_path, monkeypatch):
    from kerasft._src.run import model as run_model

    monkeypatch.setattr(hub, "is_minilm_provisioned", lambda: False)
    with pytest.raises(FinetuneError, match="--only all_minilm_l6_v2` once"):
        run_model.build(_text_config(tmp_path), 2, print)


def test_sequence_length_beyond_the_backbone_is_refused(tmp_path, tiny_preset):
    from kerasft._src.run import model as run_model

    config = _text_config(tmp_path, backbone=tiny_preset, sequence_length=9)
    with pytest.raises(FinetuneError, match="must be at most 8, the backb"):
        run_model.build(config, 2, print)
