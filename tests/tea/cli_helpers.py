"""Running the installed ``tea`` console script in tests: with stdin, and with stderr on a terminal."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

TEA_BIN = Path(sys.executable).with_name("tea")
TIMEOUT = 120


def tea(*args: str | Path, cwd: Path, stdin: str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``tea ARGS`` in ``cwd`` as a user runs it: stdin a pipe (empty unless given), no colours."""
    return subprocess.run(
        [str(TEA_BIN), *map(str, args)], cwd=cwd, input=stdin if stdin is not None else "",
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
    )


def tea_module(*args: str | Path, cwd: Path,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m tea ARGS`` in ``cwd`` (stdin empty, no colours): as ``tea``, with the
    current directory on ``sys.path`` (``--actions-module`` of a local module)."""
    return subprocess.run(
        [sys.executable, "-m", "tea", *map(str, args)], cwd=cwd, input="", capture_output=True, text=True,
        timeout=TIMEOUT, check=False, env={**os.environ, "NO_COLOR": "1", **(env or {})},
    )


def write(path: Path, text: str) -> Path:
    """``text`` (dedented) written to ``path``, its directory made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


@dataclass
class TtyRun:
    returncode: int
    stdout: str
    terminal: str
    """Everything written to the terminal that stood for stderr (escape codes included)."""


def tea_on_a_terminal(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> TtyRun:
    """``tea ARGS`` with stderr on a pseudo-terminal (stdout a pipe, stdin empty)."""
    master, slave = os.openpty()
    environ = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    environ.update({"TERM": "xterm-256color", "COLUMNS": "160", **(env or {})})
    proc = subprocess.Popen(
        [str(TEA_BIN), *map(str, args)], cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=slave, env=environ,
    )
    os.close(slave)
    chunks: list[bytes] = []
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer of the terminal is gone
                break
            if not data:
                break
            chunks.append(data)
        stdout = proc.stdout.read().decode() if proc.stdout else ""
        returncode = proc.wait(TIMEOUT)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
        if proc.stdout:
            proc.stdout.close()
    return TtyRun(returncode, stdout, b"".join(chunks).decode("utf-8", "replace"))
