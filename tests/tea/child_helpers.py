"""Helpers for tests that run a writer in a child process and kill it at a random moment."""

from __future__ import annotations

import os
import select
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def child_env() -> dict[str, str]:
    """The environment of a child that imports tea from this checkout."""
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def read_line(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> bytes:
    """The child's next line on stdout, failing the test if none comes in ``timeout`` s."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "child did not answer in time"
    return proc.stdout.readline()
