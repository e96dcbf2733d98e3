"""Remote branches in the stream: a start naming the host that took the branch, and the
retries and fallbacks of the nodes it ran there."""

from __future__ import annotations

import json
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
    "name": "remote_recoveries",
    "nodes": [
        {"name": "split"},
        {"name": "flaky", "error_policy": {"max_attempts": 2, "backoff_base_ms": 1, "jitter": False},
         "run": "raise ConnectionError('service down')"},
        {"name": "steady", "run": "return {'b': 1}"},
        {"name": "merge", "run": "return {'ok': sum(1 for r in parallel_results if r['success'])}"},
    ],
    "edges": [{"from": "split", "to": ["flaky", "steady"], "parallel": True, "fan_in": "merge"}],
}


def test_remote_branch_events_name_the_host_and_carry_node_retries(
    remote_settings: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    settings = {"strategy": "remote", "on_branch_failure": "continue", "remote": remote_settings()}
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump({**FLOW, "settings": {"parallel": settings}}, sort_keys=False), encoding="utf-8")
    done = subprocess.run([str(TEA), "run", str(path), "--stream", "-c", str(tmp_path / "ckpt")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    stream = [json.loads(line) for line in done.stdout.splitlines()]
    starts = {e["branch"]: e for e in stream if e["type"] == "branch_start"}
    ends = {e["branch"]: e for e in stream if e["type"] == "branch_end"}
    assert set(starts) == set(ends) == {"split[flaky]", "split[steady]"}
    assert all(starts[b]["host"] == ends[b]["host"] and starts[b]["total"] == 2 for b in starts)
    (retry,) = [e for e in stream if e["type"] == "retry"]
    assert retry["node"] == "flaky" and retry["attempt"] == 1 and retry["error"]["type"] == "ConnectionError"
    kinds = [(e["type"], e.get("branch") or e.get("node")) for e in stream]
    assert kinds.index(("retry", "flaky")) < kinds.index(("branch_end", "split[flaky]"))
    assert "node 'flaky': attempt 1/2 failed: ConnectionError: service down; retrying in" in done.stderr
