"""``tea run`` of a remote fan-out on a terminal: one display, the fan-out's line and the hosts' table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.timeout(180)

TEA = Path(sys.executable).with_name("tea")
FLOW: dict[str, Any] = {
    "name": "remote_progress",
    "nodes": [
        {"name": "fan", "type": "dynamic_parallel", "items": "{{ range(4) | list }}", "fan_in": "done",
         "steps": [{"run": "import time\ntime.sleep(0.3)\nreturn {'y': state['item'] * 2}"}]},
        {"name": "done", "run": "return {'ys': sorted(r['y'] for r in parallel_results)}"},
    ],
}


def write_flow(tmp_path: Path, remote: dict[str, Any]) -> Path:
    flow = {**FLOW, "settings": {"parallel": {"strategy": "remote", "remote": remote}}}
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump(flow, sort_keys=False), encoding="utf-8")
    return path


def on_a_terminal(*args: str | Path, cwd: Path) -> tuple[int, str, str]:
    """``tea ARGS`` with stderr on a pseudo-terminal: (exit status, stdout, what the terminal got)."""
    primary, secondary = os.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TEA_PROGRESS")}
    proc = subprocess.Popen([str(TEA), *map(str, args)], cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=secondary,
                            env={**env, "TERM": "xterm-256color", "COLUMNS": "160"})
    os.close(secondary)
    chunks: list[bytes] = []
    try:
        while True:
            try:
                data = os.read(primary, 65536)
            except OSError:  # EIO: every writer of the terminal is gone
                break
            if not data:
                break
            chunks.append(data)
        stdout = proc.stdout.read().decode() if proc.stdout else ""
        status = proc.wait(120)
    finally:
        os.close(primary)
        if proc.stdout:
            proc.stdout.close()
    return status, stdout, b"".join(chunks).decode("utf-8", "replace")


def test_one_display_holds_the_fan_out_and_the_host_table(
    remote_settings: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    path = write_flow(tmp_path, remote_settings())
    status, stdout, terminal = on_a_terminal("run", path, "-c", tmp_path / "ckpt", cwd=tmp_path)
    assert status == 0, terminal[-2000:]
    assert json.loads(stdout)["ys"] == [0, 2, 4, 6]
    assert "fan-out fan (remote)" in terminal and "remote branches" in terminal
    # One live display: rich hides the cursor once when it starts and shows it once at the end.
    assert terminal.count("\x1b[?25l") == 1 and terminal.count("\x1b[?25h") == 1


def test_quiet_or_piped_runs_draw_nothing(remote_settings: Callable[..., dict[str, Any]], tmp_path: Path) -> None:
    path = write_flow(tmp_path, remote_settings())
    status, stdout, terminal = on_a_terminal("run", "-q", path, "-c", tmp_path / "ckpt", cwd=tmp_path)
    assert status == 0 and json.loads(stdout)["ys"] == [0, 2, 4, 6]
    assert "remote branches" not in terminal and "fan-out" not in terminal
    piped = subprocess.run([str(TEA), "run", str(path), "-c", str(tmp_path / "ckpt")], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120, check=False)
    assert piped.returncode == 0, piped.stderr
    assert "remote branches" not in piped.stderr and "\x1b" not in piped.stderr
