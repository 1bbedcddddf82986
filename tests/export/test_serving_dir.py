"""Concurrent and killed exports: the lock, models.config, stale leftovers.

The fast tests race `serving_dir` from bare subprocesses (the module imports
nothing from kerasft, so each starts in a fraction of a second) and replace
the TensorFlow worker with a fake one. The slow ones run real
`kerasft export` processes side by side, or kill one with SIGKILL.
"""

import importlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import keras
import pytest

from kerasft.export import tf_serving

serving_dir = importlib.import_module("kerasft._src.export.serving_dir")
tf_serving_module = importlib.import_module("kerasft._src.export.tf_serving")

# The fields kerasft does not set, which every update must keep.
OTHER = """\
model_config_list {
  config {
    name: "other"
    base_path: "/srv/other"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 3 versions: 4 } }
    version_labels { key: "stable" value: 3 }
    logging_config {
      sampling_config { sampling_rate: 0.25 }
      log_collector_config { type: "file" filename_prefix: "/logs/other" }
    }
  }
}
"""

UPDATER = """\
import importlib.util
import sys
from pathlib import Path

spec = importlib.util.spec_from_file_location("serving_dir", sys.argv[1])
serving_dir = importlib.util.module_from_spec(spec)
spec.loader.exec_module(serving_dir)
base, worker, count = Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
for i in range(count):
    with serving_dir.locked(base, 60):
        serving_dir.update_models_config(
            base / "models.config", f"m{worker}_{i}", f"/models/m{worker}_{i}"
        )
"""

HOLDER = """\
import importlib.util
import sys
import time
from pathlib import Path

spec = importlib.util.spec_from_file_location("serving_dir", sys.argv[1])
serving_dir = importlib.util.module_from_spec(spec)
spec.loader.exec_module(serving_dir)
with serving_dir.locked(Path(sys.argv[2]), 60):
    Path(sys.argv[3]).write_text("held")
    time.sleep(120)
"""


def entries(path):
    config = serving_dir.read_models_config(Path(path))
    return {entry.name: entry for entry in config.model_config_list.config}


def other_entry(tmp_path):
    path = tmp_path / "reference.config"
    path.write_text(OTHER)
    return entries(path)["other"]


def bare_python(script, *args):
    """Runs `script` in a fresh interpreter that does not import kerasft."""
    return subprocess.Popen(
        [sys.executable, "-c", script, serving_dir.__file__, *map(str, args)]
    )


def dead_pid():
    """The id of a process of this host that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def owned_by(pid, kind, version):
    return serving_dir.owned_name(kind, version).replace(
        f"-{os.getpid()}-", f"-{pid}-"
    )


@pytest.fixture
def temp_dir(tmp_path, monkeypatch):
    """A temporary directory of its own, for the work folders."""
    path = tmp_path / "tmp"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", os.fspath(path))
    return path


@pytest.fixture
def fake_worker(monkeypatch):
    """A TensorFlow worker that writes a stand-in SavedModel at once."""

    def run_worker(command, spec, work, timeout):
        (Path(spec["export_dir"]) / "saved_model.pb").write_bytes(b"fake")
        return {}

    monkeypatch.setattr(tf_serving_module, "_run_worker", run_worker)


@pytest.fixture(scope="module")
def small_model():
    inputs = keras.Input((3,), name="x")
    outputs = keras.layers.Dense(2, name="y")(inputs)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory, small_model):
    path = tmp_path_factory.mktemp("model") / "small.keras"
    small_model.save(path)
    return path


def test_config_updates_from_processes_keep_every_entry(tmp_path):
    (tmp_path / "models.config").write_text(OTHER)
    processes = [bare_python(UPDATER, tmp_path, w, 25) for w in range(4)]
    assert [p.wait(timeout=300) for p in processes] == [0] * 4
    found = entries(tmp_path / "models.config")
    expected = {f"m{w}_{i}" for w in range(4) for i in range(25)}
    assert set(found) == expected | {"other"}
    assert found["other"] == other_entry(tmp_path)
    assert found["m2_7"].base_path == "/models/m2_7"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".models.config.lock",
        "models.config",
        "reference.config",
    ]


def test_config_updates_from_threads_keep_every_entry(tmp_path):
    def update(worker):
        for i in range(10):
            with serving_dir.locked(tmp_path, 60):
                serving_dir.update_models_config(
                    tmp_path / "models.config", f"t{worker}_{i}", "/m"
                )

    threads = [threading.Thread(target=update, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(entries(tmp_path / "models.config")) == 40


def test_lock_excludes_other_processes_until_they_die(tmp_path):
    signal_file = tmp_path / "held"
    holder = bare_python(HOLDER, tmp_path, signal_file)
    try:
        deadline = time.monotonic() + 60
        while not signal_file.exists():
            assert holder.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        with pytest.raises(RuntimeError, match="held the lock .* 0.2 s"):
            with serving_dir.locked(tmp_path, 0.2):
                pass
    finally:
        holder.kill()
        holder.wait()
    # The operating system released the lock of the killed process.
    with serving_dir.locked(tmp_path, 10):
        pass


def test_config_written_atomically_with_its_mode(tmp_path, monkeypatch):
    path = tmp_path / "models.config"
    path.write_text(OTHER)
    path.chmod(0o640)
    serving_dir.update_models_config(path, "new", "/models/new")
    assert (path.stat().st_mode & 0o777) == 0o640
    assert set(entries(path)) == {"other", "new"}
    written = path.read_text()

    def failing_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(serving_dir.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        serving_dir.update_models_config(path, "newer", "/models/newer")
    assert path.read_text() == written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models.config"]


def test_unchanged_entry_keeps_the_file_as_is(tmp_path):
    path = tmp_path / "models.config"
    text = '# hand-written\nmodel_config_list { config { name: "m" ' + (
        'base_path: "/models/m" } }\n'
    )
    path.write_text(text)
    serving_dir.update_models_config(path, "m", "/models/m")
    assert path.read_text() == text
    serving_dir.update_models_config(path, "m", "/srv/m")
    assert entries(path)["m"].base_path == "/srv/m"
    assert entries(path)["m"].model_platform == ""


def test_non_utf8_config_is_refused(tmp_path):
    path = tmp_path / "models.config"
    path.write_bytes(b"\xff\xfe model_config_list {}")
    with pytest.raises(ValueError, match="models.config is not a TF Serving"):
        serving_dir.read_models_config(path)


# The artefacts that a SIGKILL leaves at each phase of an export of "m"
# (version 1 exists for the last two): the phase's leftovers are made by
# `leave(model_dir, work_root, pid)`.
def _killed_while_writing(model_dir, work_root, pid):
    staging = model_dir / owned_by(pid, "tmp", 1)
    (staging / "variables").mkdir(parents=True)
    (staging / "variables" / "variables.data-00000-of-00001").write_bytes(
        b"\0" * 1000
    )


def _killed_while_verifying(model_dir, work_root, pid):
    _killed_while_writing(model_dir, work_root, pid)
    staging = next(model_dir.glob(".tmp-*"))
    (staging / "saved_model.pb").write_bytes(b"complete")
    (staging / "assets.extra").mkdir()


def _killed_while_overwriting(model_dir, work_root, pid):
    # Between the two renames of `overwrite=True`: version 1 moved aside,
    # the new one not yet in place.
    os.rename(model_dir / "1", model_dir / owned_by(pid, "old", 1))
    _killed_while_verifying(model_dir, work_root, pid)


def _killed_while_writing_config(model_dir, work_root, pid):
    (model_dir.parent / f".models.config.tmp-{uuid.uuid4().hex}").write_text(
        "model_config_list { con"
    )


KILLS = {
    "write": (_killed_while_writing, False),
    "verify": (_killed_while_verifying, False),
    "overwrite": (_killed_while_overwriting, True),
    "config": (_killed_while_writing_config, True),
}


@pytest.mark.parametrize("phase", sorted(KILLS))
def test_next_export_removes_what_a_kill_left(
    tmp_path, temp_dir, fake_worker, small_model, phase
):
    leave, has_version = KILLS[phase]
    base_dir = tmp_path / "serving"
    model_dir = base_dir / "m"
    model_dir.mkdir(parents=True)
    if has_version:
        (model_dir / "1").mkdir()
        (model_dir / "1" / "saved_model.pb").write_bytes(b"version 1")
    pid = dead_pid()
    work = temp_dir / f"{serving_dir.WORK_PREFIX}{serving_dir._HOST}-{pid}-ab_1"
    work.mkdir()
    (work / "model.keras").write_bytes(b"partial")
    leave(model_dir, temp_dir, pid)

    path = tf_serving(small_model, base_dir, "m", verify=False)

    new = "2" if has_version else "1"
    assert Path(path) == model_dir.resolve() / new
    assert sorted(p.name for p in model_dir.iterdir()) == sorted({"1", new})
    if has_version:  # a version moved aside is put back
        assert (model_dir / "1" / "saved_model.pb").read_bytes() == b"version 1"
    assert list(temp_dir.iterdir()) == []
    assert sorted(p.name for p in base_dir.iterdir()) == [
        ".models.config.lock",
        "m",
        "models.config",
    ]
    assert entries(base_dir / "models.config")["m"].base_path == os.fspath(
        model_dir.resolve()
    )


def test_live_or_young_leftovers_are_kept(tmp_path, temp_dir):
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    live = model_dir / serving_dir.owned_name("tmp", 1)  # this process's
    elsewhere = model_dir / f".tmp-1-otherhost-{dead_pid()}-{uuid.uuid4().hex}"
    elsewhere_old = model_dir / f".tmp-2-otherhost-1-{uuid.uuid4().hex}"
    anonymous = model_dir / f".tmp-3-{uuid.uuid4().hex}"
    anonymous_old = model_dir / f".old-4-{uuid.uuid4().hex}"
    unrelated = model_dir / ".tmp-notes"
    for folder in (live, elsewhere, elsewhere_old, anonymous):
        folder.mkdir()
    for folder in (anonymous_old, unrelated):
        folder.mkdir()
    a_day_and_more = time.time() - serving_dir.STALE_AFTER_SECONDS - 60
    for folder in (elsewhere_old, anonymous_old):
        os.utime(folder, (a_day_and_more, a_day_and_more))
    (model_dir / "4").mkdir()  # so the old `.old-4` is deleted, not restored

    serving_dir.remove_stale(model_dir)

    assert sorted(p.name for p in model_dir.iterdir()) == sorted(
        [live.name, elsewhere.name, anonymous.name, unrelated.name, "4"]
    )
    live_work = temp_dir / f"{serving_dir.WORK_PREFIX}{serving_dir._HOST}-1-x"
    live_work.mkdir()  # pid 1 runs as long as the system does
    with serving_dir.work_folder() as work:
        assert work.name.startswith(serving_dir.WORK_PREFIX)
        assert work.parent == temp_dir
    assert list(temp_dir.iterdir()) == [live_work]


def test_failed_export_leaves_nothing(tmp_path, temp_dir, monkeypatch):
    def failing_worker(command, spec, work, timeout):
        (Path(spec["export_dir"]) / "saved_model.pb").write_bytes(b"half")
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(tf_serving_module, "_run_worker", failing_worker)
    inputs = keras.Input((3,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    base_dir = tmp_path / "serving"
    with pytest.raises(RuntimeError, match="simulated"):
        tf_serving(model, base_dir, "m")
    # The lock file stays: deleting it could let two exports hold the lock
    # at once (one on the deleted file, one on a new one).
    assert [p.name for p in base_dir.iterdir()] == [".models.config.lock"]
    assert list(temp_dir.iterdir()) == []


def test_concurrent_exports_of_one_name_get_their_own_versions(
    tmp_path, fake_worker, small_model, monkeypatch
):
    # Both exports pick version 1 before either has committed; the second
    # to commit takes the next free number.
    staging_folder = serving_dir.staging_folder
    base_dir = tmp_path / "serving"

    def first_commits_meanwhile(base, model_dir, version, timeout):
        if version == 1 and not (model_dir / "1").exists():
            monkeypatch.setattr(serving_dir, "staging_folder", staging_folder)
            tf_serving(small_model, base_dir, "m", verify=False)
        return staging_folder(base, model_dir, version, timeout)

    monkeypatch.setattr(serving_dir, "staging_folder", first_commits_meanwhile)
    path = tf_serving(small_model, base_dir, "m", verify=False)
    assert Path(path).name == "2"
    assert sorted(p.name for p in (base_dir / "m").iterdir()) == ["1", "2"]
    with pytest.raises(FileExistsError, match="Version 2 of model 'm'"):
        tf_serving(small_model, base_dir, "m", version=2, verify=False)


def _export_command(keras_file, base_dir, name, *options):
    return [
        sys.executable,
        "-m",
        "kerasft.cli",
        "export",
        os.fspath(keras_file),
        "--base-dir",
        os.fspath(base_dir),
        "--name",
        name,
        *options,
    ]


@pytest.mark.slow
def test_concurrent_cli_exports_keep_every_entry(tmp_path, keras_file):
    # Two exports of different models into one base at the same time: both
    # entries are kept, and the entry of a third model with them.
    base_dir = tmp_path / "serving"
    base_dir.mkdir()
    (base_dir / "models.config").write_text(OTHER)
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = dict(os.environ, TMPDIR=os.fspath(temp))
    processes = [
        subprocess.Popen(
            _export_command(keras_file, base_dir, name, "--no-verify"),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    outputs = [p.communicate(timeout=600) for p in processes]
    for process, (_, err) in zip(processes, outputs):
        assert process.returncode == 0, err
    resolved = base_dir.resolve()
    assert [out.strip() for out, _ in outputs] == [
        os.fspath(resolved / "a" / "1"),
        os.fspath(resolved / "b" / "1"),
    ]
    found = entries(base_dir / "models.config")
    assert sorted(found) == ["a", "b", "other"]
    assert found["other"] == other_entry(tmp_path)
    assert found["b"].base_path == os.fspath(resolved / "b")
    for name in ("a", "b"):
        assert [p.name for p in (base_dir / name).iterdir()] == ["1"]
    assert list(temp.iterdir()) == []


@pytest.mark.slow
@pytest.mark.skipif(os.name == "nt", reason="SIGKILL of a process group")
def test_sigkilled_export_is_cleaned_by_the_next(
    tmp_path, keras_file, temp_dir
):
    base_dir = tmp_path / "serving"
    process = subprocess.Popen(
        _export_command(keras_file, base_dir, "m"),
        env=dict(os.environ, TMPDIR=os.fspath(temp_dir)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    # Killed, with its TensorFlow process, while that process writes the
    # SavedModel: the staging and work folders exist.
    deadline = time.monotonic() + 300
    while not (
        list((base_dir / "m").glob(".tmp-*"))
        and list(temp_dir.glob("kerasft-export-*/write_spec.json"))
    ):
        assert process.poll() is None, "the export ended before the kill"
        assert time.monotonic() < deadline, "the export did not start"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert list((base_dir / "m").glob(".tmp-*"))
    assert list(temp_dir.glob("kerasft-export-*"))

    path = tf_serving(keras_file, base_dir, "m", verify=False)

    assert Path(path) == base_dir.resolve() / "m" / "1"
    assert (Path(path) / "saved_model.pb").is_file()
    assert sorted(p.name for p in (base_dir / "m").iterdir()) == ["1"]
    assert list(temp_dir.iterdir()) == []
    assert "m" in entries(base_dir / "models.config")
