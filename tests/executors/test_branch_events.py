"""Retries and fallbacks reported inside a worker travel back with the branch's result and
are reported by the driver, as a thread branch's are where they happen."""

from __future__ import annotations

import json
import logging
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from executors.base import BranchResult, BranchTask, RetryPolicy
from executors.events import EVENT_KEY, capture, replay, report
from executors.results import failed, finished, succeeded
from executors.retry import Retrier

NO_WAIT = RetryPolicy(max_attempts=3, backoff_base_ms=0, backoff_max_ms=0, jitter=False)
ROOT = Path(__file__).resolve().parents[2]
TASK = BranchTask("fan[0]", "a", None, {}, overrides={"item": 0})


def flaky(n: int) -> str:
    if n < 3:
        raise ConnectionError(f"refused {n}")
    return "ok"


def test_inside_a_capture_reports_are_kept_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG), capture() as entries:
        assert Retrier(NO_WAIT, node="fetch").call(flaky) == "ok"
    assert not [r for r in caplog.records if hasattr(r, EVENT_KEY)]
    assert [e["event"]["attempt"] for e in entries] == [1, 2]
    assert entries[0]["logger"] == "tea.retry" and entries[0]["level"] == logging.INFO
    assert entries[0]["message"].startswith("node 'fetch': attempt 1/3 failed: ConnectionError: refused 1")
    assert json.loads(json.dumps(entries)) == entries and pickle.loads(pickle.dumps(entries)) == entries
    # Once the capture is over, reports are logged again.
    with caplog.at_level(logging.INFO):
        report(logging.getLogger("tea.policy"), logging.WARNING, "fell back", {"type": "fallback", "node": "n"})
    assert [getattr(r, EVENT_KEY) for r in caplog.records if hasattr(r, EVENT_KEY)] == [
        {"type": "fallback", "node": "n"}
    ]


def test_events_cross_json_and_only_when_there_are_some() -> None:
    entry = {"logger": "tea.retry", "level": 20, "message": "m", "event": {"type": "retry", "attempt": 1}}
    carried = succeeded(TASK, {"y": 1}, pid=7, events=(entry,))
    data = json.loads(json.dumps(carried.to_dict()))
    assert data["events"] == [entry]
    assert BranchResult.from_dict(data).events == (entry,)
    plain = succeeded(TASK, {"y": 1})
    assert "events" not in plain.to_dict() and BranchResult.from_dict(plain.to_dict()).events == ()
    assert failed(TASK, ValueError("x"), events=(entry,)).with_base({"a": 1}).events == (entry,)
    # A branch's own key named "events" is what fan-in code reads, not the transport field.
    assert succeeded(TASK, {"events": [1, 2]}, events=(entry,))["events"] == [1, 2]
    assert "events" in succeeded(TASK, {"events": 0}) and "events" not in succeeded(TASK, {})


def test_the_driver_reports_them_once_and_the_final_result_drops_them(caplog: pytest.LogCaptureFixture) -> None:
    entries = [
        {"logger": "tea.retry", "level": logging.INFO, "message": "node 'f': attempt 1/2 failed",
         "event": {"type": "retry", "node": "f", "attempt": 1}},
        {"logger": "tea.policy", "level": logging.WARNING, "message": "node 'f': failed; continuing",
         "event": {"type": "fallback", "node": "f"}},
        {"message": "no event: skipped"},
    ]
    result = failed(TASK, ValueError("x"), pid=9, events=tuple(entries))
    with caplog.at_level(logging.INFO):
        final = finished(result, attempts=1, duration_ms=1.0, breaker_state=None)
    carried = [r for r in caplog.records if hasattr(r, EVENT_KEY)]
    assert [(r.name, r.levelno, r.getMessage()) for r in carried] == [
        ("tea.retry", logging.INFO, "node 'f': attempt 1/2 failed"),
        ("tea.policy", logging.WARNING, "node 'f': failed; continuing"),
    ]
    assert [getattr(r, EVENT_KEY)["type"] for r in carried] == ["retry", "fallback"]
    assert final.events == () and final.pid == 9 and final.attempts == 1


def test_a_nested_worker_passes_them_up() -> None:
    """A worker that is itself a driver (a process fan-out inside a process branch) replays
    its own workers' reports into the capture around its branch."""
    inner = [{"logger": "tea.retry", "level": 20, "message": "inner", "event": {"type": "retry"}}]
    with capture() as entries:
        replay(inner)
    assert entries == inner


def test_a_worker_process_captures_what_its_branch_reports() -> None:
    """In a real child process: the reports travel back as plain data on its stdout."""
    script = (
        "import json, sys\n"
        "from executors.events import capture\n"
        "from executors.retry import Retrier\n"
        "from executors.base import RetryPolicy\n"
        "policy = RetryPolicy(max_attempts=2, backoff_base_ms=0, backoff_max_ms=0, jitter=False)\n"
        "def once(n):\n"
        "    if n == 1: raise TimeoutError('slow')\n"
        "    return n\n"
        "with capture() as entries:\n"
        "    Retrier(policy, node='llm').call(once)\n"
        "json.dump(entries, sys.stdout)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          timeout=60, cwd=ROOT)
    entries = json.loads(done.stdout)
    assert done.stderr == ""
    assert [e["event"]["node"] for e in entries] == ["llm"]
