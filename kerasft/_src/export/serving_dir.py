"""The TF Serving base directory on disk: its lock, models.config, leftovers.

What `tf_serving` guarantees for concurrent and killed exports rests here:

- One advisory lock per base directory (`BASE/.models.config.lock`, held
  with `flock`), taken while a staging folder is created or removed, while
  a version is renamed into place and while `models.config` is read,
  changed and replaced, so concurrent exports into one base keep every
  entry. The operating system releases it when its process dies.
- `models.config` is parsed and written with TF Serving's own schema
  (`ModelServerConfig`, protobuf text format): fields that kerasft does not
  set survive, and a file that TF Serving would reject is refused with the
  parser's line and column. It is replaced atomically (a temporary file in
  the same folder, fsync, `os.replace`).
- Staging folders (`NAME/.tmp-*`), versions moved aside by an overwrite
  (`NAME/.old-*`) and work folders (`kerasft-export-*` in the temporary
  directory) carry the host and process id of the export that made them. A
  later export removes them once they are provably stale: made on this host
  by a process that no longer runs, or older than `STALE_AFTER_SECONDS`.

- Single-file exports (ONNX, LiteRT) are written to a hidden staging file
  next to their target and moved into place in one step (`commit_file`);
  stale staging files are removed by the next export to the same path.

This module imports nothing from kerasft or Keras, so the tests can race it
from bare subprocesses.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path

MODELS_CONFIG = "models.config"
LOCK_NAME = f".{MODELS_CONFIG}.lock"
WORK_PREFIX = "kerasft-export-"
# Longer than any live export: each of its two TensorFlow processes has its
# own `timeout` (15 minutes by default).
STALE_AFTER_SECONDS = 24 * 3600

_TEMPORARY_PREFIX = f".{MODELS_CONFIG}.tmp-"
# Temporary config files: this module's, and the bare `.models.config.<hex>`
# of kerasft 0.1.0, which had no lock.
_TEMPORARY = re.compile(rf"\.{re.escape(MODELS_CONFIG)}\.(tmp-)?[0-9a-f]{{32}}")
# `.tmp-<version>-<host>-<pid>-<hex>` (the host as in `_HOST`).
_OWNED = re.compile(r"\.(tmp|old)-(\d+)-([\w.]+)-(\d+)-[0-9a-f]{32}")
# Without host and pid (kerasft 0.1.0): stale by age only.
_ANONYMOUS = re.compile(r"\.(tmp|old)-(\d+)-[0-9a-f]{32}")
_WORK = re.compile(rf"{re.escape(WORK_PREFIX)}(?:([\w.]+)-(\d+)-)?\w+")
_HOST = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:64] or "host"
# flock excludes other open file descriptions, so two threads of one process
# exclude each other too; on file systems that emulate it with POSIX locks
# (NFS) they would not, hence this lock as well.
_THREAD_LOCK = threading.Lock()
# The errors of a lock held by another process: flock's EWOULDBLOCK, and
# msvcrt's EACCES or EDEADLOCK.
_HELD = {errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES, errno.EDEADLK}

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt


@contextlib.contextmanager
def locked(base_dir: Path, timeout: float):
    """Holds the base directory's lock for the `with` block.

    Raises:
        RuntimeError: if the lock is not acquired within `timeout` seconds.
    """
    path = Path(base_dir) / LOCK_NAME
    deadline = time.monotonic() + timeout
    if not _THREAD_LOCK.acquire(timeout=min(timeout, threading.TIMEOUT_MAX)):
        raise _lock_timeout(path, timeout)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            while not _try_lock(fd):
                if time.monotonic() >= deadline:
                    raise _lock_timeout(path, timeout)
                time.sleep(0.02)
            try:
                yield
            finally:
                _unlock(fd)
        finally:
            os.close(fd)
    finally:
        _THREAD_LOCK.release()


def _lock_timeout(path: Path, timeout: float) -> RuntimeError:
    return RuntimeError(
        f"Another export held the lock {path} for more than {timeout} s. "
        "Exports hold it only for a moment; check for a process stuck on "
        "this folder."
    )


def _try_lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError as error:
        if error.errno in _HELD:
            return False
        raise  # a file system without locks: say so, do not wait
    return True


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


# --------------------------------------------------------------------------
# models.config


def read_models_config(path: Path):
    """Parses `path` as a `ModelServerConfig`; empty if it does not exist.

    Raises:
        ValueError: naming the file, if TF Serving would refuse it (with the
            parser's line and column for a syntax or schema error), or if it
            holds a `custom_model_config`, which kerasft cannot update.
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    path = Path(path)
    config = model_server_config_pb2.ModelServerConfig()
    if not path.exists():
        return config
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise _config_error(path, error) from None
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        message = re.sub(r"^\d+(:\d+)? : ", "", str(error))
        line, column = error.GetLine(), error.GetColumn()
        if line is not None:
            where = f"line {line}" + (f", column {column}" if column else "")
            message = f"{where}: {message}"
        raise _config_error(path, message) from None
    if config.WhichOneof("config") == "custom_model_config":
        raise _config_error(
            path, "it holds a custom_model_config, not a model_config_list"
        )
    names = [entry.name for entry in config.model_config_list.config]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise _config_error(
            path, f"model {repeated[0]!r} is listed more than once"
        )
    return config


def _config_error(path: Path, problem) -> ValueError:
    return ValueError(
        f"{path} is not a TF Serving model config that kerasft can update "
        f"({problem}). Fix or move it; it was left untouched."
    )


def set_model(config, name: str, base_path: str) -> bool:
    """Adds or updates the entry `name`; returns whether `config` changed.

    An existing entry keeps every field but `base_path` (its version policy,
    labels, logging); a new one serves `base_path` with the `tensorflow`
    platform.
    """
    entries = config.model_config_list.config
    for entry in entries:
        if entry.name == name:
            if entry.base_path == base_path:
                return False
            entry.base_path = base_path
            return True
    entry = entries.add()
    entry.name = name
    entry.base_path = base_path
    entry.model_platform = "tensorflow"
    return True


def write_models_config(path: Path, config) -> None:
    """Replaces `path` atomically by `config` in protobuf text format."""
    from google.protobuf import text_format

    path = Path(path)
    temporary = path.with_name(f"{_TEMPORARY_PREFIX}{uuid.uuid4().hex}")
    try:
        with open(temporary, "w", encoding="utf-8") as f:
            f.write(text_format.MessageToString(config))
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            shutil.copymode(path, temporary)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    _fsync_folder(path.parent)


def update_models_config(path: Path, name: str, base_path: str) -> None:
    """Adds or updates `name` in `path`. Call it holding `locked()`."""
    path = Path(path)
    # Only the lock holder writes temporary files: any left is a kill's.
    for entry in path.parent.iterdir():
        if _TEMPORARY.fullmatch(entry.name):
            with contextlib.suppress(OSError):
                entry.unlink()
    config = read_models_config(path)
    if set_model(config, name, base_path):
        write_models_config(path, config)


def _fsync_folder(folder: Path) -> None:
    """Makes a rename inside `folder` durable (POSIX; best effort)."""
    if os.name == "nt":  # folders cannot be opened on Windows
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --------------------------------------------------------------------------
# Staging, commit and stale leftovers


def owned_name(kind: str, version: int) -> str:
    """A hidden folder name that records this host and process."""
    return f".{kind}-{version}-{_HOST}-{os.getpid()}-{uuid.uuid4().hex}"


def _pid_running(pid: int) -> bool:
    if os.name == "nt":
        # os.kill(pid, 0) would terminate the process on Windows: rely on
        # the age alone there.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: running, as another user
        return True
    return True


def _is_stale(path: Path, host: str | None, pid: str | None) -> bool:
    try:
        age = time.time() - path.lstat().st_mtime
    except OSError:
        return False
    if age > STALE_AFTER_SECONDS:
        return True
    return host == _HOST and pid is not None and not _pid_running(int(pid))


def remove_stale(model_dir: Path) -> None:
    """Removes stale `.tmp-*` and `.old-*` folders of `model_dir`.

    A stale `.old-V-*` (a version moved aside by an overwrite killed before
    the new one was renamed in) is renamed back to `V` when `V` is missing.
    Call it holding `locked()`.
    """
    for entry in Path(model_dir).iterdir():
        match = _OWNED.fullmatch(entry.name)
        if match:
            kind, version, host, pid = match.groups()
        else:
            match = _ANONYMOUS.fullmatch(entry.name)
            if not match:
                continue
            (kind, version), host, pid = match.groups(), None, None
        if not _is_stale(entry, host, pid):
            continue
        target = entry.parent / version
        if kind == "old" and not os.path.lexists(target):
            os.rename(entry, target)
        else:
            shutil.rmtree(entry, ignore_errors=True)


def commit(staging: Path, version_dir: Path) -> None:
    """Renames `staging` to `version_dir`, replacing it if it exists.

    Call it holding `locked()`.
    """
    if not version_dir.exists():
        os.rename(staging, version_dir)
        return
    retired = version_dir.parent / owned_name("old", int(version_dir.name))
    os.rename(version_dir, retired)
    try:
        os.rename(staging, version_dir)
    except OSError:
        os.rename(retired, version_dir)
        raise
    shutil.rmtree(retired, ignore_errors=True)


@contextlib.contextmanager
def staging_folder(base_dir: Path, model_dir: Path, version: int, timeout):
    """Creates `model_dir/.tmp-VERSION-...` and removes it after the block.

    Stale leftovers of killed exports of the same model are removed first.
    If the block raises, `model_dir` is removed too when nothing else is in
    it (it was created for this export, or left empty by a killed one).
    """
    base_dir.mkdir(parents=True, exist_ok=True)
    with locked(base_dir, timeout):
        model_dir.mkdir(exist_ok=True)
        remove_stale(model_dir)
        staging = model_dir / owned_name("tmp", version)
        staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        # Under the lock, so that no export is between creating
        # `model_dir` and its staging folder.
        with contextlib.suppress(OSError, RuntimeError):
            with locked(base_dir, timeout):
                model_dir.rmdir()  # fails unless empty
        raise
    shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def work_folder():
    """A `kerasft-export-HOST-PID-*` folder in the temporary directory.

    Stale work folders of killed exports are removed first; this one is
    removed when the block ends, whatever happens in it.
    """
    root = Path(tempfile.gettempdir())
    for entry in root.glob(f"{WORK_PREFIX}*"):
        match = _WORK.fullmatch(entry.name)
        if match and _is_stale(entry, *match.groups()):
            shutil.rmtree(entry, ignore_errors=True)
    path = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{_HOST}-{os.getpid()}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------
# Single-file exports (ONNX, LiteRT)


def _staged_pattern(path: Path) -> re.Pattern:
    """`.STEM.tmp-<host>-<pid>-<hex>SUFFIX`, the staging files of `path`."""
    return re.compile(
        rf"\.{re.escape(path.stem)}\.tmp-([\w.]+)-(\d+)-[0-9a-f]{{32}}"
        rf"{re.escape(path.suffix)}"
    )


@contextlib.contextmanager
def staged_file(path: Path):
    """A hidden file name next to `path`, removed when the block ends.

    The name keeps the suffix of `path` (converters check it) and records
    this host and process; stale staging files of killed exports of the
    same `path` are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pattern = _staged_pattern(path)
    for entry in path.parent.iterdir():
        match = pattern.fullmatch(entry.name)
        if match and _is_stale(entry, *match.groups()):
            with contextlib.suppress(OSError):
                entry.unlink()
    staging = path.with_name(
        f".{path.stem}.tmp-{_HOST}-{os.getpid()}-{uuid.uuid4().hex}"
        f"{path.suffix}"
    )
    try:
        yield staging
    finally:
        with contextlib.suppress(OSError):
            staging.unlink()


def commit_file(staging: Path, path: Path, overwrite: bool) -> None:
    """Moves `staging` to `path` in one atomic step.

    With `overwrite=False`, a hard link creates `path` only if it does not
    exist, so of two exports racing for one new file, the second gets
    `FileExistsError`; where the file system has no hard links, a rename
    after a last check.

    Raises:
        FileExistsError: `path` exists and `overwrite` is `False`.
    """
    if overwrite:
        os.replace(staging, path)
    else:
        try:
            os.link(staging, path)
        except FileExistsError:
            raise
        except OSError:  # no hard links (FAT, some network file systems)
            if os.path.lexists(path):
                raise FileExistsError(
                    errno.EEXIST, "File exists", os.fspath(path)
                ) from None
            os.rename(staging, path)
        else:
            os.unlink(staging)
    _fsync_folder(path.parent)
