"""Fixtures shared by the engine's tests: workflow files in a temp dir, and the real ``tea`` CLI.

The sshd test hosts (``ssh_cluster``, ``remote_settings`` ...) come from the plugin
``sshd_plugin``, so any directory's tests may ask for them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

# pytest puts tests/ on sys.path, where tests/executors/ (no __init__.py) would be found
# as a namespace package named ``executors``; the project root on the path makes the
# real package win (a regular package beats a namespace portion wherever it sits).
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import tea  # noqa: E402
from tea.workflow import Workflow  # noqa: E402

pytest_plugins = ["sshd_plugin"]

DATA = Path(__file__).parent / "data"
TEA_BIN = Path(sys.executable).with_name("tea")

WriteYaml = Callable[..., Path]
LoadYaml = Callable[..., Workflow]
RunTea = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def write_yaml(tmp_path: Path) -> WriteYaml:
    """Write dedented YAML text to ``tmp_path/<name>`` and return the path."""

    def write(text: str, name: str = "flow.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


@pytest.fixture
def load_yaml(write_yaml: WriteYaml) -> LoadYaml:
    """Write YAML text to a temp file and ``tea.load`` it (so errors carry a real file and line)."""

    def load(text: str, name: str = "flow.yaml") -> Workflow:
        return tea.load(write_yaml(text, name))

    return load


@pytest.fixture
def run_tea(tmp_path: Path) -> RunTea:
    """Run the installed ``tea`` console script in ``tmp_path`` (a real subprocess, 60 s timeout)."""

    def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "NO_COLOR": "1"}
        return subprocess.run(
            [str(TEA_BIN), *map(str, args)],
            cwd=cwd or tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    return run
