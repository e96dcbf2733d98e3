"""Branch events as they happen: a branch starts when a worker takes it (saying where), and
the retries and fallbacks of nodes inside it reach the stream and stderr on every strategy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import tea

RECOVERIES = """\
name: branch_recoveries
settings:
  parallel: {{strategy: {strategy}, max_workers: {workers}}}
nodes:
  - name: split
  - name: flaky
    error_policy: {{max_attempts: 3, backoff_base_ms: 1, jitter: false}}
    run: |
      import os
      n = int(open("attempts").read()) if os.path.exists("attempts") else 0
      open("attempts", "w").write(str(n + 1))
      if n < 2:
          raise ConnectionError("service down")
      return {{"a": n}}
  - name: doomed
    error_policy: {{max_attempts: 2, backoff_base_ms: 1, jitter: false, on_failure: continue}}
    run: |
      raise TimeoutError("too slow")
  - name: merge
    run: |
      return {{"ok": sum(1 for r in parallel_results if r["success"])}}
edges:
  - {{from: split, to: [flaky, doomed], parallel: true, fan_in: merge}}
"""


def run(tmp_path: Path, strategy: str, workers: int = 2) -> tuple[list[dict[str, Any]], str]:
    path = tmp_path / "flow.yaml"
    path.write_text(RECOVERIES.format(strategy=strategy, workers=workers), encoding="utf-8")
    proc = tea("run", path, "--stream", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()], proc.stderr


@pytest.mark.parametrize("strategy", ["thread", "process"])
def test_retries_and_fallbacks_inside_branches_reach_the_stream(tmp_path: Path, strategy: str) -> None:
    stream, stderr = run(tmp_path, strategy)
    retries = [(e["node"], e["attempt"]) for e in stream if e["type"] == "retry"]
    assert sorted(retries) == [("doomed", 1), ("flaky", 1), ("flaky", 2)]
    (fallback,) = [e for e in stream if e["type"] == "fallback"]
    assert fallback["node"] == "doomed" and fallback["attempts"] == 2
    assert all(e["run_id"] == stream[0]["run_id"] and e["ts"] for e in stream)
    assert "node 'flaky': attempt 2/3 failed: ConnectionError: service down; retrying in" in stderr
    assert "warning: node 'doomed': failed after 2 attempts: TimeoutError: too slow; continuing" in stderr
    # Each node's reports come before its branch's end.
    kinds = [(e["type"], e.get("node") or e.get("branch")) for e in stream]
    assert kinds.index(("fallback", "doomed")) < kinds.index(("branch_end", "split[doomed]"))
    assert kinds.index(("retry", "flaky")) < kinds.index(("branch_end", "split[flaky]"))


@pytest.mark.parametrize(("strategy", "where"), [("thread", {"thread", "pid"}), ("process", {"pid"})])
def test_a_branch_starts_when_a_worker_takes_it(tmp_path: Path, strategy: str, where: set[str]) -> None:
    """One worker: the second branch starts once the first is over (after its retries), not
    with the fan-out; each start says where the branch runs and how many branches there are."""
    stream, _ = run(tmp_path, strategy, workers=1)
    kinds = [(e["type"], e.get("branch") or e.get("node")) for e in stream]
    last_flaky_retry = max(i for i, kind in enumerate(kinds) if kind == ("retry", "flaky"))
    assert kinds.index(("branch_start", "split[flaky]")) < last_flaky_retry
    assert kinds.index(("branch_start", "split[doomed]")) > last_flaky_retry
    starts = {e["branch"]: e for e in stream if e["type"] == "branch_start"}
    ends = {e["branch"]: e for e in stream if e["type"] == "branch_end"}
    assert set(starts) == set(ends) == {"split[flaky]", "split[doomed]"}
    for branch, start in starts.items():
        assert where <= set(start) and start["total"] == 2 and start["strategy"] == strategy
        assert all(start[key] == ends[branch][key] for key in where)
