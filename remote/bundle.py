"""``tea bundle``: the frozen, one-file tea binary that the remote strategy ships.

``build_bundle(output)`` runs PyInstaller on ``remote/_entry.py`` (``tea worker``,
``tea --version``, and every other command through ``tea.cli``). lupa loads its Lua
runtime by module name at run time, which PyInstaller cannot see, so
``lupa.lua54`` is named as a hidden import. The build writes ``_build_info.json``
(version and a hash of the sources) into the binary; ``--version`` prints it.

``default_basefile()`` is the running binary when tea itself runs frozen.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import tea
from tea.errors import TeaError

__all__ = [
    "BundleError",
    "build_bundle",
    "build_info",
    "default_basefile",
    "pyinstaller_invocation",
    "source_hash",
    "version_line",
]

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("tea", "executors", "remote")
BUILD_INFO = "_build_info.json"
HIDDEN_IMPORTS = ("lupa.lua54", "remote.worker", "remote._entry", "executors.thread")
# Never imported at run time; pygments and markdown_it come with rich but the
# progress table needs neither. dask and distributed belong to the optional dask
# strategy (tea[dask], installed where the driver runs): a host runs its branches on
# threads and never needs them. Leaving all these out keeps the binary under 20 MB.
_EXCLUDES = (
    "tkinter", "pytest", "_pytest", "mypy", "ruff", "PyInstaller", "setuptools", "pip",
    "pkg_resources", "pygments", "markdown_it", "pydoc", "pydoc_data", "unittest", "doctest",
    "lib2to3", "xmlrpc", "sqlite3", "test", "dask", "distributed",
)


class BundleError(TeaError):
    """PyInstaller is missing or the build failed."""


def source_hash(root: Path = ROOT) -> str:
    """SHA-256 (first 12 hex digits) over the package sources: the build hash."""
    digest = hashlib.sha256()
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _version() -> str:
    from tea import __version__

    return __version__


@cache
def build_info() -> dict[str, Any]:
    """``{"version", "build", "frozen"}``: from the bundled file when frozen, else live."""
    bundled = Path(getattr(sys, "_MEIPASS", "")) / BUILD_INFO
    if getattr(sys, "frozen", False) and bundled.exists():
        info: dict[str, Any] = json.loads(bundled.read_text(encoding="utf-8"))
        return {**info, "frozen": True}
    return {"version": _version(), "build": source_hash(), "frozen": False}


def version_line() -> str:
    """What ``tea --version`` prints: ``tea 0.1.0 (build 1a2b3c4d5e6f, The Edge Agent dialect ...)``."""
    return str(tea.version_text(build_info()["build"]))


def default_basefile() -> Path | None:
    """The binary to ship when ``basefile`` is not set: the running one, if frozen."""
    if getattr(sys, "frozen", False):
        return Path(sys.executable)
    return None


def build_bundle(output: Path, *, workdir: Path | None = None, quiet: bool = True) -> Path:
    """Build the one-file binary at ``output`` (e.g. ``dist/tea``) and return its path."""
    if shutil.which("pyinstaller") is None and not _has_pyinstaller():
        raise BundleError(
            "PyInstaller is not installed", hint="pip install 'tea-engine[bundle]' (or pyinstaller)"
        )
    output = output.resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tea-bundle-", dir=workdir) as tmp:
        build = Path(tmp)
        info = build / BUILD_INFO
        info.write_text(json.dumps({"version": _version(), "build": source_hash()}))
        argv, env = pyinstaller_invocation(build, output.name, info, quiet=quiet)
        done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=build, env=env)
        built = build / "dist" / output.name
        if done.returncode != 0 or not built.exists():
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
            raise BundleError(f"PyInstaller failed (exit {done.returncode}):\n{tail}")
        partial = output.with_name(output.name + ".part")
        shutil.move(str(built), partial)
        partial.replace(output)
    return output


def pyinstaller_invocation(
    build: Path, name: str, info: Path, *, quiet: bool = True
) -> tuple[list[str], dict[str, str]]:
    """The PyInstaller argv and environment for a build in the scratch directory ``build``.

    No ``--clean``: that empties the per-user cache (~/.cache/pyinstaller), which a
    concurrent build may be using. PYINSTALLER_CONFIG_DIR gives this build a cache of
    its own instead, inside ``build``, so it starts clean and is removed with it.
    """
    argv = [
        sys.executable, "-m", "PyInstaller", "--onefile", "--noconfirm", "--strip",
        "--name", name,
        "--distpath", str(build / "dist"),
        "--workpath", str(build / "work"),
        "--specpath", str(build),
        "--paths", str(ROOT),
        "--add-data", f"{info}{os.pathsep}.",
        "--log-level", "WARN" if quiet else "INFO",
    ]
    for module in HIDDEN_IMPORTS:
        argv += ["--hidden-import", module]
    for package in PACKAGES:
        argv += ["--collect-submodules", package]
    for module in _EXCLUDES:
        argv += ["--exclude-module", module]
    argv.append(str(ROOT / "remote" / "_entry.py"))
    env = {**os.environ, "PYINSTALLER_CONFIG_DIR": str(build / "pyinstaller-cache")}
    return argv, env


def _has_pyinstaller() -> bool:
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        return False
    return True
