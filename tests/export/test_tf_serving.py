"""Tests for kerasft.export.tf_serving, run under every training backend.

The test process's backend builds and trains the model; the export itself
always goes through the TensorFlow worker process. One export is shared by
the read-only checks (module-scoped fixture) to keep the TensorFlow process
count, and so the wall time, low.
"""

import importlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from kerasft._src.export.cli import add_export_subparser
from kerasft._src.export.cli import main as export_main
from kerasft.export import tf_serving

tf_serving_module = importlib.import_module("kerasft._src.export.tf_serving")

# An entry with the fields kerasft does not set, which an update keeps.
OTHER_ENTRY = """\
config {
    name: "other"  # a comment
    base_path: "/srv/other"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 3 versions: 4 } }
    version_labels { key: "stable" value: 3 }
    version_labels { key: "canary" value: 4 }
    logging_config {
      sampling_config { sampling_rate: 0.25 }
      log_collector_config { type: "file" filename_prefix: "/logs/other" }
    }
  }"""


@keras.saving.register_keras_serializable(package="kerasft_tests")
class Scale(keras.layers.Layer):
    """Custom layer that the TensorFlow worker must import from this file."""

    def __init__(self, factor=1.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs):
        return inputs * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class Opaque:
    pass


class NeedsConfig(keras.layers.Layer):
    """Takes an argument that Keras cannot serialize automatically."""

    def __init__(self, thing, **kwargs):
        super().__init__(**kwargs)
        self.thing = thing

    def call(self, inputs):
        return inputs


def tiny_model(name="tiny_classifier"):
    inputs = keras.Input((16, 16, 3), name="pixels")
    x = Scale(1.0 / 255.0, name="rescale")(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name=name)


def trained_tiny_model():
    keras.utils.set_random_seed(7)
    model = tiny_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, (8, 16, 16, 3)).astype("float32")
    y = rng.integers(0, 3, (8,))
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    return model


def parse_config(text):
    """The entries of a models.config text, by name."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(text, config)
    return {entry.name: entry for entry in config.model_config_list.config}


def read_config(path):
    return parse_config(Path(path).read_text())


def other_entry():
    return parse_config(f"model_config_list {{ {OTHER_ENTRY} }}")["other"]


def read_signature(version_dir):
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    data = (Path(version_dir) / "saved_model.pb").read_bytes()
    saved_model.ParseFromString(data)
    (meta_graph,) = saved_model.meta_graphs
    return meta_graph.signature_def["serving_default"]


def dims(tensor_info):
    return [d.size for d in tensor_info.tensor_shape.dim]


def shape_matches(signature_dims, shape):
    return len(signature_dims) == len(shape) and all(
        d == -1 or d == s for d, s in zip(signature_dims, shape)
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.backend.clear_session()
    base_dir = tmp_path_factory.mktemp("serving")
    (base_dir / "models.config").write_text(
        f"# written by hand\nmodel_config_list {{\n  {OTHER_ENTRY}\n}}\n"
    )
    model = trained_tiny_model()
    keras_path = base_dir.parent / "tiny.keras"
    model.save(keras_path)
    path = tf_serving(model, base_dir, "tiny")
    return {
        "model": model,
        "base_dir": base_dir,
        "path": Path(path),
        "keras_path": keras_path,
    }


def test_layout_and_next_version(exported):
    path = exported["path"]
    assert path == exported["base_dir"].resolve() / "tiny" / "1"
    assert (path / "saved_model.pb").is_file()
    assert (path / "variables" / "variables.index").is_file()
    leftovers = [p.name for p in path.parent.iterdir() if p.name[0] == "."]
    assert leftovers == []
    assert tf_serving_module._next_version(path.parent) == 2


def test_variables_stored_once(exported):
    model = exported["model"]
    param_bytes = sum(
        int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
        for v in model.variables
    )
    variables_dir = exported["path"] / "variables"
    data_bytes = sum(p.stat().st_size for p in variables_dir.iterdir())
    # Checkpoint metadata adds a few hundred bytes; a second copy of the
    # variables would double param_bytes.
    assert param_bytes < data_bytes < param_bytes + 2048


def test_signature_round_trip(exported):
    import tensorflow as tf

    model = exported["model"]
    x = np.random.default_rng(3).uniform(0, 255, (4, 16, 16, 3))
    x = x.astype("float32")
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    loaded = tf.saved_model.load(os.fspath(exported["path"]))
    result = loaded.signatures["serving_default"](pixels=tf.constant(x))
    assert sorted(result) == ["probs"]
    np.testing.assert_allclose(
        result["probs"].numpy(), expected, atol=1e-5, rtol=1e-4
    )


def test_saved_model_cli_names_the_signature(exported):
    cli = Path(sys.executable).parent / "saved_model_cli"
    if not cli.exists():
        pytest.skip(f"saved_model_cli not found next to {sys.executable}")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.run(
        [os.fspath(cli), "show", "--all", "--dir", os.fspath(exported["path"])],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    )
    out = process.stdout
    assert "signature_def['serving_default']" in out
    assert "inputs['pixels'] tensor_info" in out
    assert "outputs['probs'] tensor_info" in out
    assert "shape: (-1, 16, 16, 3)" in out
    assert "Method name is: tensorflow/serving/predict" in out
    assert "XlaCallModule" not in out


def test_rest_sample_matches_signature(exported):
    signature = read_signature(exported["path"])
    body = json.loads(
        (exported["path"] / "assets.extra" / "sample_request.json").read_text()
    )
    assert body["signature_name"] == "serving_default"
    assert len(body["instances"]) >= 1
    for instance in body["instances"]:
        assert sorted(instance) == sorted(signature.inputs)
        for key, value in instance.items():
            shape = (1, *np.asarray(value).shape)
            assert shape_matches(dims(signature.inputs[key]), shape)


def test_grpc_predict_request_matches_signature(exported):
    import tensorflow as tf

    predict_pb2 = pytest.importorskip(
        "tensorflow_serving.apis.predict_pb2",
        reason="needs tensorflow-serving-api==2.21.0 (the dev extra)",
    )
    signature = read_signature(exported["path"])
    body = json.loads(
        (exported["path"] / "assets.extra" / "sample_request.json").read_text()
    )
    instance = body["instances"][0]
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tiny"
    request.model_spec.signature_name = "serving_default"
    for key, value in instance.items():
        dtype = tf.dtypes.as_dtype(signature.inputs[key].dtype)
        array = np.asarray([value], dtype=dtype.as_numpy_dtype)
        request.inputs[key].CopyFrom(tf.make_tensor_proto(array))

    request = predict_pb2.PredictRequest.FromString(request.SerializeToString())
    assert sorted(request.inputs) == sorted(signature.inputs) == ["pixels"]
    for key, tensor in request.inputs.items():
        assert tensor.dtype == signature.inputs[key].dtype
        shape = [d.size for d in tensor.tensor_shape.dim]
        assert shape_matches(dims(signature.inputs[key]), shape)

    # The request's tensors, fed to the exported signature, give the Keras
    # model's output.
    feeds = {k: tf.make_ndarray(t) for k, t in request.inputs.items()}
    loaded = tf.saved_model.load(os.fspath(exported["path"]))
    result = loaded.signatures["serving_default"](
        **{k: tf.constant(v) for k, v in feeds.items()}
    )
    expected = exported["model"](feeds["pixels"], training=False)
    np.testing.assert_allclose(
        result["probs"].numpy(),
        keras.ops.convert_to_numpy(expected),
        atol=1e-5,
        rtol=1e-4,
    )


def test_models_config_keeps_other_entries(exported):
    entries = read_config(exported["base_dir"] / "models.config")
    assert sorted(entries) == ["other", "tiny"]
    # Every field of the other entry survives, to the last label.
    assert entries["other"] == other_entry()
    assert entries["tiny"].base_path == os.fspath(
        exported["base_dir"].resolve() / "tiny"
    )
    assert entries["tiny"].model_platform == "tensorflow"


def test_refuses_existing_version(exported):
    with pytest.raises(FileExistsError, match="overwrite=True"):
        tf_serving(exported["model"], exported["base_dir"], "tiny", version=1)


def test_failed_overwrite_leaves_version_untouched(exported, monkeypatch):
    base_dir = exported["base_dir"]
    version_dir = base_dir / "tiny" / "1"
    before = {
        p.relative_to(version_dir): p.read_bytes()
        for p in version_dir.rglob("*")
        if p.is_file()
    }
    config_before = (base_dir / "models.config").read_text()

    def failing_write(command, spec, work, timeout):
        # A worker that dies half-way through writing the SavedModel.
        partial = Path(spec["export_dir"])
        partial.mkdir(parents=True, exist_ok=True)
        (partial / "saved_model.pb").write_bytes(b"partial")
        raise RuntimeError("simulated export failure")

    monkeypatch.setattr(tf_serving_module, "_run_worker", failing_write)
    with pytest.raises(RuntimeError, match="simulated"):
        tf_serving(
            tiny_model("other_weights"),
            base_dir,
            "tiny",
            version=1,
            overwrite=True,
        )
    after = {
        p.relative_to(version_dir): p.read_bytes()
        for p in version_dir.rglob("*")
        if p.is_file()
    }
    assert after == before
    assert sorted(p.name for p in (base_dir / "tiny").iterdir()) == ["1"]
    assert (base_dir / "models.config").read_text() == config_before


def test_cli_exports_keras_file(exported, capsys):
    base_dir = exported["base_dir"]
    code = export_main(
        [
            os.fspath(exported["keras_path"]),
            "--base-dir",
            os.fspath(base_dir),
            "--name",
            "tiny_cli",
            "--version",
            "7",
            "--config-base-path",
            "/models",
            "--no-verify",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    version_dir = base_dir.resolve() / "tiny_cli" / "7"
    assert out.strip() == os.fspath(version_dir)
    assert (version_dir / "saved_model.pb").is_file()
    entries = read_config(base_dir / "models.config")
    assert entries["tiny_cli"].base_path == "/models/tiny_cli"
    assert entries["other"] == other_entry() and "tiny" in entries

    code = export_main(
        [
            os.fspath(exported["keras_path"]),
            "--base-dir",
            os.fspath(base_dir),
            "--name",
            "tiny_cli",
            "--version",
            "7",
        ]
    )
    assert code == 2
    assert "already exists" in capsys.readouterr().err


def test_cli_subparser_registration():
    import argparse

    parser = argparse.ArgumentParser(prog="kerasft")
    add_export_subparser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["export", "m.keras", "--base-dir", "out", "--name", "clf"]
    )
    assert args.command == "export"
    assert (args.model, args.base_dir, args.name) == ("m.keras", "out", "clf")
    assert args.version is None and args.verify and not args.overwrite
    assert args.format == "tf-serving"
    assert callable(args.func)
    # --base-dir is required by the default format, before any work.
    args = parser.parse_args(["export", "m.keras", "--name", "clf"])
    with pytest.raises(SystemExit):
        args.func(args)


def test_model_without_input_shape(tmp_path):
    model = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no defined input shape"):
        tf_serving(model, tmp_path, "seq")

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, inputs):
            return self.dense(inputs)

    subclassed = Subclassed()
    subclassed(np.ones((1, 3), "float32"))
    with pytest.raises(ValueError, match="no defined input shape"):
        tf_serving(subclassed, tmp_path, "sub")
    assert not any(tmp_path.iterdir())


def test_undefined_dimension_needs_sample_inputs(tmp_path):
    inputs = keras.Input((None, None, 3), name="image")
    outputs = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, outputs)
    with pytest.raises(ValueError, match="Pass `sample_inputs=`"):
        tf_serving(model, tmp_path, "any_size")
    with pytest.raises(ValueError, match=r"must have shape \(None, None"):
        tf_serving(model, tmp_path, "any_size", sample_inputs=np.ones((2, 3)))


def test_unserializable_custom_layer_is_named(tmp_path):
    inputs = keras.Input((4,))
    outputs = NeedsConfig(Opaque(), name="opaque_layer")(inputs)
    model = keras.Model(inputs, outputs)
    with pytest.raises(ValueError, match="Layer 'opaque_layer'.*get_config"):
        tf_serving(model, tmp_path, "opaque")


def test_unimportable_custom_layer_is_named(tmp_path):
    class LocalScale(Scale):
        pass

    inputs = keras.Input((4,))
    outputs = LocalScale(2.0, name="local_scale")(inputs)
    model = keras.Model(inputs, outputs)
    with pytest.raises(ValueError, match="Layer 'local_scale'.*LocalScale"):
        tf_serving(model, tmp_path, "local")
    assert not any(tmp_path.iterdir())


def test_argument_validation(tmp_path):
    model = tiny_model()
    with pytest.raises(ValueError, match="Received: name='bad name'"):
        tf_serving(model, tmp_path, "bad name")
    with pytest.raises(ValueError, match="Received: version=0"):
        tf_serving(model, tmp_path, "m", version=0)
    with pytest.raises(TypeError, match="Received: version=True"):
        tf_serving(model, tmp_path, "m", version=True)
    with pytest.raises(ValueError, match="Received: atol=-1"):
        tf_serving(model, tmp_path, "m", atol=-1)
    # Refused before anything runs or is written.
    with pytest.raises(ValueError, match="Received: atol=nan"):
        tf_serving(model, tmp_path, "m", atol=float("nan"))
    with pytest.raises(ValueError, match="Received: timeout=nan"):
        tf_serving(model, tmp_path, "m", timeout=float("nan"))
    with pytest.raises(ValueError, match="non-empty path"):
        tf_serving(model, "", "m")
    with pytest.raises(TypeError, match="Received: base_dir=None"):
        tf_serving(model, None, "m")
    assert not any(tmp_path.iterdir())
    with pytest.raises(ValueError, match="existing .keras file"):
        tf_serving(os.fspath(tmp_path / "missing.keras"), tmp_path, "m")
    with pytest.raises(ValueError, match="must have exactly the keys"):
        tf_serving(model, tmp_path, "m", sample_inputs={"x": np.ones(1)})


def test_paths_checked_before_anything_is_written(tmp_path):
    model = tiny_model()
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="a_file is a file"):
        tf_serving(model, a_file, "m")
    with pytest.raises(ValueError, match="a_file is a file"):
        tf_serving(model, a_file / "serving", "m")
    with pytest.raises(ValueError, match="at most 255 .*300 characters"):
        tf_serving(model, tmp_path / "serving", "m" * 300)
    with pytest.raises(ValueError, match="folder name longer than"):
        tf_serving(model, tmp_path / ("d" * 300) / "serving", "m")
    base_dir = tmp_path / "serving"
    (base_dir / "models.config").mkdir(parents=True)
    with pytest.raises(ValueError, match="models.config must be a file"):
        tf_serving(model, base_dir, "m")
    (base_dir / "models.config").rmdir()
    (base_dir / "m").write_text("x")
    with pytest.raises(ValueError, match="m must be a folder"):
        tf_serving(model, base_dir, "m")
    assert sorted(p.name for p in tmp_path.rglob("*")) == [
        "a_file",
        "m",
        "serving",
    ]


@pytest.mark.parametrize(
    "text, problem",
    [
        ("not a config\n", r"line 1, column 1: .*no field named \"not\""),
        (
            'model_config_list {\n  config { name: "a" }\n',
            r"line 2, column 22: Expected \"}\"",
        ),
        (
            'model_config_list {\n  config {\n    name: "a"\n    '
            'model_version_policy { latest { num_versions: "x" } }\n',
            r"line 4, column 51: .*Couldn't parse integer",
        ),
        (
            'model_config_list { config { name: "a" } config { name: "a" } }',
            "model 'a' is listed more than once",
        ),
        (
            'custom_model_config { type_url: "x" }',
            "custom_model_config, not a model_config_list",
        ),
    ],
)
def test_models_config_tf_serving_would_refuse_is_left_alone(
    tmp_path, text, problem
):
    config = tmp_path / "models.config"
    config.write_text(text)
    with pytest.raises(ValueError) as info:
        tf_serving(tiny_model(), tmp_path, "m")
    assert str(info.value).startswith(
        f"{config.resolve()} is not a TF Serving model config"
    )
    assert re.search(problem, str(info.value)), str(info.value)
    assert config.read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models.config"]


@pytest.mark.parametrize(
    "module, package",
    [
        ("tensorflow", "TensorFlow"),
        ("tensorflow_serving", "tensorflow-serving-api"),
    ],
)
def test_missing_dependency_names_pip_command(
    tmp_path, monkeypatch, module, package
):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name == module:
            return None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(
        ImportError, match=rf'needs {package}, .*"kerasft\[tensorflow\]"'
    ):
        tf_serving(tiny_model(), tmp_path, "m")
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_kerasft_backbone_classifier_exports(tmp_path):
    from kerasft import build_classifier
    from kerasft.backbones import MobileNet

    backbone = MobileNet(weights=None, input_shape=(32, 32, 3))
    model = build_classifier(backbone, 3)
    path = Path(tf_serving(model, tmp_path, "mobilenet"))
    signature = read_signature(path)
    (input_name,) = signature.inputs
    assert dims(signature.inputs[input_name]) == [-1, 32, 32, 3]
    shutil.rmtree(tmp_path)


def test_verification_mismatch_fails_loudly():
    expected = {"logits": np.array([[50.0, -2.0, 0.0]], "float32")}
    close = {"logits": expected["logits"] + np.float32(4e-4)}
    tf_serving_module._compare(expected, close, atol=1e-5, rtol=1e-5)
    far = {"logits": expected["logits"] + np.float32(1e-2)}
    with pytest.raises(RuntimeError, match="differ by up to 0.01"):
        tf_serving_module._compare(expected, far, atol=1e-5, rtol=1e-5)
    with pytest.raises(RuntimeError, match="returns outputs"):
        tf_serving_module._compare(
            expected, {"x": far["logits"]}, atol=0, rtol=0
        )


def test_worker_timeout_is_a_runtime_error(tmp_path, monkeypatch):
    def run(command, **kwargs):
        raise subprocess.TimeoutExpired(command, kwargs["timeout"])

    monkeypatch.setattr(tf_serving_module.subprocess, "run", run)
    with pytest.raises(RuntimeError, match="write within timeout=2.5 s"):
        tf_serving_module._run_worker("write", {}, tmp_path, 2.5)
