"""The frozen binary: built once per source hash (cached under .cache/), versioned, shipped for real."""

from __future__ import annotations

import fcntl
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import tea
from remote.bundle import (
    build_bundle,
    default_basefile,
    pyinstaller_invocation,
    source_hash,
    version_line,
)

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "tea-bundle"

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="session")
def frozen_tea() -> Path:
    """The PyInstaller binary of this checkout (built on first use, ~1 min; reused after)."""
    pytest.importorskip("PyInstaller")
    target = CACHE / source_hash() / "tea"
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test workers build it once
        if not target.exists():
            build_bundle(target)
        for stale in CACHE.iterdir():  # binaries of older sources
            if stale.is_dir() and stale != target.parent:
                shutil.rmtree(stale, ignore_errors=True)
    return target


def test_version_prints_version_and_build_hash(frozen_tea):
    done = subprocess.run([str(frozen_tea), "--version"], capture_output=True, text=True,
                          timeout=60, check=True)
    # The cache directory is named after the source hash the binary was built from.
    assert done.stdout.strip() == tea.version_text(frozen_tea.parent.name)
    assert re.fullmatch(r"tea \S+ \(build [0-9a-f]{12}, The Edge Agent dialect \S+\)", version_line())


def test_the_build_never_touches_the_shared_pyinstaller_cache(tmp_path):
    argv, env = pyinstaller_invocation(tmp_path, "tea", tmp_path / "_build_info.json")
    assert "--clean" not in argv  # it would empty ~/.cache/pyinstaller under a concurrent build
    assert Path(env["PYINSTALLER_CONFIG_DIR"]).parent == tmp_path  # removed with the build
    assert argv[argv.index("--name") + 1] == "tea" and "--onefile" in argv


def test_not_frozen_means_no_default_basefile():
    assert default_basefile() is None


def test_frozen_binary_runs_a_remote_fan_out_with_lua(frozen_tea, remote_settings, tmp_path):
    doc = yaml.safe_load((ROOT / "examples" / "remote_fanout.yaml").read_text())
    doc["settings"]["parallel"]["remote"] = remote_settings(basefile=str(frozen_tea))
    flow = tmp_path / "frozen.yaml"
    flow.write_text(yaml.safe_dump(doc, sort_keys=False))
    final = tea.load(flow).invoke({"numbers": [3, 1, 4, 1, 5, 9, 2, 6]})
    assert final["sum"] == 31 and final["mean"] == 3.875
    assert (final["min"], final["max"]) == (1, 9)  # the Lua branch: lupa.lua54 is in the binary
    assert final["sum_of_squares"] == 173


def test_frozen_binary_runs_the_process_strategy(frozen_tea, tmp_path):
    """Process workers of the frozen binary are the binary itself (freeze_support)."""
    flow = tmp_path / "procs.yaml"
    flow.write_text(
        "settings: {parallel: {strategy: process}}\n"
        "nodes:\n  - name: start\n  - name: a\n    run: 'x = 1'\n  - name: b\n    run: 'y = 2'\n"
        "  - name: m\n    run: |\n      import os\n"
        "      return {'n': len(parallel_results), 'elsewhere': all(r.pid != os.getpid() for r in parallel_results)}\n"
        "edges:\n  - {from: start, to: [a, b], parallel: true, fan_in: m}\n"
    )
    done = subprocess.run([str(frozen_tea), "run", str(flow)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    final = yaml.safe_load(done.stdout)
    assert final["n"] == 2 and final["elsewhere"] is True
