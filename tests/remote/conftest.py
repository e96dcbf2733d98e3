"""Fixtures for the remote backend's tests.

The sshd hosts and what goes with them (``ssh_cluster``, ``fresh_cluster``,
``launcher``, ``remote_dirs``, ``remote_settings``) come from ``tests/sshd_plugin.py``,
shared with the executor contract suite; here only what every remote test needs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The checkout first: pytest puts tests/ on sys.path, where tests/executors and
# tests/remote would otherwise pass for the real packages as namespace packages.
sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).parent)]


@pytest.fixture(autouse=True)
def _no_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ssh-agent for any remote test: keys come from the settings only."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
