"""What ``tea run`` tells its operator: recoveries, failed branches, log levels, colours, stream events."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import tea, tea_on_a_terminal

FLAKY = """\
name: flaky
nodes:
  - name: fetch
    error_policy:
      max_attempts: 4
      backoff_base_ms: 1
      jitter: false
      fallback: use_cache
    run: |
      raise ConnectionError("service down")
  - name: live
    goto: __end__
  - name: use_cache
    run: |
      return {"source": "cache"}
"""

FANOUT = """\
name: fan
settings:
  parallel:
    on_branch_failure: continue
    fail_fast: false
    retry: {max_attempts: 2, backoff_base_ms: 1, jitter: false}
nodes:
  - name: split
  - name: good
    run: |
      return {"a": 1}
  - name: bad
    run: |
      raise ValueError("boom")
  - name: merge
    run: |
      return {"ok": sum(1 for r in parallel_results if r["success"])}
edges:
  - {from: split, to: [good, bad], parallel: true, fan_in: merge}
"""

LOGGING = """\
name: logging
nodes:
  - name: say
    uses: log
    with: {message: "plain info"}
  - name: whisper
    uses: log
    with: {message: "only with -v", level: debug}
  - name: libraries
    run: |
      import logging
      logging.getLogger("httpx").debug("library detail")
      logging.getLogger("tea.custom").debug("tea detail")
      logging.getLogger("tea.custom").warning("tea warning")
      x = 1
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "flow.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_each_retry_and_the_fallback_print_one_line(tmp_path: Path) -> None:
    """At the default verbosity: one line per retry (attempt n/N, error, wait), one for the fallback."""
    proc = tea("run", write(tmp_path, FLAKY), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    retries = [line for line in lines if "retrying in" in line]
    assert len(retries) == 3
    assert re.fullmatch(
        r"node 'fetch': attempt 1/4 failed: ConnectionError: service down; retrying in \d+ ms", retries[0]
    ), retries[0]
    assert retries[2].startswith("node 'fetch': attempt 3/4 failed")
    assert lines[-1] == ("warning: node 'fetch': failed after 4 attempts: ConnectionError: service down; "
                         "falling back to 'use_cache'")
    assert json.loads(proc.stdout)["source"] == "cache"


def test_quiet_hides_recoveries(tmp_path: Path) -> None:
    proc = tea("run", "-q", write(tmp_path, FLAKY), cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""


def test_stream_has_retry_and_fallback_events_with_ts_and_one_run_id(tmp_path: Path) -> None:
    proc = tea("run", write(tmp_path, FLAKY), "--stream", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    stream = events(proc.stdout)
    assert len({e["run_id"] for e in stream}) == 1
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["ts"]) for e in stream)
    retries = [e for e in stream if e["type"] == "retry"]
    assert [e["attempt"] for e in retries] == [1, 2, 3]
    assert retries[0]["node"] == "fetch" and retries[0]["max_attempts"] == 4
    assert retries[0]["error"] == {"type": "ConnectionError", "message": "service down"}
    assert retries[0]["wait_seconds"] >= 0
    (fallback,) = [e for e in stream if e["type"] == "fallback"]
    assert fallback["node"] == "fetch" and fallback["target"] == "use_cache" and fallback["attempts"] == 4
    kinds = [e["type"] for e in stream]
    assert kinds.index("fallback") > kinds.index("retry") and kinds[-1] == "end"


def test_a_failed_branch_prints_one_line_and_its_retries(tmp_path: Path) -> None:
    proc = tea("run", write(tmp_path, FANOUT), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "branch 'split[bad]' (node 'bad'): attempt 1/2 failed: ValueError: boom; retrying in" in proc.stderr
    failed = [line for line in proc.stderr.splitlines() if line.startswith("warning: branch")]
    assert len(failed) == 1
    assert failed[0].startswith("warning: branch 'split[bad]' failed after 2 attempts")
    assert failed[0].endswith(": ValueError: boom")


def test_stream_has_branch_events_as_they_happen(tmp_path: Path) -> None:
    """branch_start and branch_end come once each, in every mode, before the fan-in's node_end."""
    for mode in ("updates", "values", "debug"):
        proc = tea("run", write(tmp_path, FANOUT), "-s", "--stream-mode", mode, cwd=tmp_path)
        stream = events(proc.stdout)
        starts = [e for e in stream if e["type"] == "branch_start"]
        ends = [e for e in stream if e["type"] == "branch_end"]
        assert sorted(e["branch"] for e in starts) == ["split[bad]", "split[good]"]
        assert sorted(e["branch"] for e in ends) == ["split[bad]", "split[good]"]
        assert {e["strategy"] for e in starts} == {"thread"}
        assert any(e["type"] == "retry" and e["node"] == "bad" for e in stream)
        assert stream[-1]["type"] == "end"


def test_log_action_at_its_default_level_is_shown(tmp_path: Path) -> None:
    """uses: log (info) shows without -v; tea's debug and the libraries' stay hidden."""
    proc = tea("run", write(tmp_path, LOGGING), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == ["[say] plain info", "warning: tea warning"]


def test_verbose_adds_teas_debug_and_vv_the_libraries(tmp_path: Path) -> None:
    path = write(tmp_path, LOGGING)
    once = tea("run", "-v", path, cwd=tmp_path).stderr
    assert "[whisper] only with -v" in once and "tea detail" in once
    assert "library detail" not in once
    twice = tea("run", "-vv", path, cwd=tmp_path).stderr
    assert "library detail" in twice and "tea detail" in twice


def test_quiet_shows_errors_only(tmp_path: Path) -> None:
    proc = tea("run", "-q", write(tmp_path, LOGGING), cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""
    failing = write(tmp_path, "nodes:\n  - name: x\n    run: |\n      raise KeyError('k')\n")
    failed = tea("run", "-q", failing, cwd=tmp_path)
    assert failed.returncode == 1 and "KeyError" in failed.stderr


def test_colours_only_on_a_terminal_and_never_with_no_color(tmp_path: Path) -> None:
    path = write(tmp_path, LOGGING)
    piped = tea("run", path, cwd=tmp_path, env={"NO_COLOR": ""})
    assert "\x1b[" not in piped.stderr
    coloured = tea_on_a_terminal("run", path, cwd=tmp_path)
    assert coloured.returncode == 0
    assert "\x1b[33mwarning\x1b[0m: tea warning" in coloured.terminal
    plain = tea_on_a_terminal("run", path, cwd=tmp_path, env={"NO_COLOR": "1"})
    assert "warning: tea warning" in plain.terminal and "\x1b[33m" not in plain.terminal


@pytest.mark.parametrize("quiet", [False, True])
def test_an_error_is_one_line_on_stderr(tmp_path: Path, quiet: bool) -> None:
    failing = write(tmp_path, "nodes:\n  - name: x\n    run: |\n      raise KeyError('k')\n")
    proc = tea("run", *(["-q"] if quiet else []), failing, cwd=tmp_path)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 1 and lines[0].startswith("checkpoint: ")
    assert lines[1].startswith("error: node 'x': KeyError")
