"""Awkward inputs and situations end in a clear result: the right exit code, a message, no traceback."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tea
from tea.checkpoint import load_checkpoint
from tea.errors import LoadError, NodeError

TEA_BIN = Path(sys.executable).with_name("tea")
WriteYaml = Callable[..., Path]
LoadYaml = Callable[..., Any]
RunTea = Callable[..., subprocess.CompletedProcess[str]]


def _no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "internal error" not in proc.stderr


def test_sigterm_while_a_node_waits_to_retry_saves_and_exits_143(write_yaml: WriteYaml, tmp_path: Path) -> None:
    """The wait between retries is a safe point: SIGTERM stops there, with a checkpoint."""
    flow = write_yaml(
        """
        settings:
          error_policy: {max_retries: 100000, backoff_base_ms: 50, backoff_max_ms: 50, jitter: false}
        nodes:
          - name: flaky
            run: |
              open(state["marker"], "w").close()
              raise RuntimeError("still down")
        """
    )
    marker = tmp_path / "started"
    proc = subprocess.Popen(
        [TEA_BIN, "run", flow, "-i", json.dumps({"marker": str(marker)}), "-c", tmp_path / "ck"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline, "the node never ran"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    saved = [p for p in (tmp_path / "ck").glob("*.json") if load_checkpoint(p).reason == "signal"]
    assert len(saved) == 1
    assert (load_checkpoint(saved[0]).node, load_checkpoint(saved[0]).position) == ("flaky", "before")


def test_on_error_retry_records_the_error_and_goes_on(load_yaml: LoadYaml) -> None:
    """Reference dialect: once `mode: retry` runs out, __error__ is set and the next node runs."""
    workflow = load_yaml(
        """
        nodes:
          - name: r
            on_error: {mode: retry, max_retries: 2, retry_delay: 0.001}
            run: |
              raise ValueError("bad input")
          - name: next
            run: |
              return {"next_ran": True}
        """
    )
    final = workflow.invoke({})
    assert final["next_ran"] is True
    assert final["__error__"]["type"] == "ValueError"
    assert final["__error__"]["message"] == "bad input"
    assert final["__error__"]["attempts"] == 3


def test_an_action_module_sees_the_builtins_and_an_engine(write_yaml: WriteYaml, tmp_path: Path) -> None:
    """register_actions(registry, engine) can read built-ins and the workflow's variables."""
    (tmp_path / "mine.py").write_text(
        "def register_actions(registry, engine):\n"
        "    parse = registry['json.parse']\n"
        "    greeting = engine.variables['greeting']\n"
        "    def hello(state, **kwargs):\n"
        "        return {'said': greeting, 'has_llm': 'llm.call' in registry, 'parse': callable(parse)}\n"
        "    registry['hello'] = hello\n"
    )
    flow = write_yaml(
        """
        variables: {greeting: hi}
        imports:
          - {path: mine.py, namespace: my}
        nodes:
          - name: a
            uses: my.hello
        """
    )
    assert tea.load(flow).invoke({}) == {"said": "hi", "has_llm": True, "parse": True}


def test_resuming_an_interrupt_keeps_its_checkpoint(run_tea: RunTea, write_yaml: WriteYaml, tmp_path: Path) -> None:
    """A person may resume the same interrupt checkpoint twice, with different updates."""
    flow = write_yaml(
        """
        nodes:
          - name: ask
            interrupt: before
            run: |
              return {"answer": state.get("reply", "none")}
        """
    )
    first = run_tea("run", flow, "-c", tmp_path / "ck")
    assert first.returncode == 3, first.stderr
    (checkpoint,) = (tmp_path / "ck").glob("*.json")
    for reply in ("yes", "no"):
        again = run_tea("resume", checkpoint, "-i", json.dumps({"reply": reply}))
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["answer"] == reply
    assert checkpoint.exists()


def test_unknown_interrupt_node_is_invalid_input(run_tea: RunTea, write_yaml: WriteYaml) -> None:
    """--interrupt-before naming no node is exit 2 with the known nodes listed."""
    flow = write_yaml("nodes:\n  - name: a\n")
    done = run_tea("run", flow, "--interrupt-before", "nosuch")
    assert done.returncode == 2
    assert "unknown node 'nosuch'" in done.stderr and "known nodes: a" in done.stderr
    _no_traceback(done)


def test_self_referencing_alias_is_a_load_error(write_yaml: WriteYaml) -> None:
    """An anchor used inside its own value is a located YAML error, not a crash."""
    flow = write_yaml("a: &a [*a]\nnodes:\n  - name: x\n")
    with pytest.raises(LoadError, match="alias contains itself"):
        tea.load(flow)


def test_output_is_strict_json(run_tea: RunTea, write_yaml: WriteYaml) -> None:
    """NaN and infinity become null, non-string keys become text: stdout is valid JSON."""
    flow = write_yaml(
        """
        nodes:
          - name: a
            run: |
              return {"v": float("nan"), "i": float("inf"), "d": {(1, 2): "t", 3: "n"}}
        """
    )
    done = run_tea("run", flow)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"v": None, "i": None, "d": {"(1, 2)": "t", "3": "n"}}


def test_output_into_a_missing_directory_is_refused_before_running(
    run_tea: RunTea, write_yaml: WriteYaml, tmp_path: Path
) -> None:
    """-o into a directory that does not exist is exit 2, and nothing runs."""
    flow = write_yaml("nodes:\n  - name: a\n    run: |\n      open(state['m'], 'w').close()\n")
    marker = tmp_path / "ran"
    done = run_tea("run", flow, "-i", json.dumps({"m": str(marker)}), "-o", tmp_path / "no" / "out.json")
    assert done.returncode == 2
    assert "does not exist" in done.stderr
    assert not marker.exists()


def test_a_secret_in_an_error_message_is_redacted(run_tea: RunTea, write_yaml: WriteYaml) -> None:
    """The final error line and the -v traceback never show a secret's value."""
    flow = write_yaml(
        """
        nodes:
          - name: c
            run: |
              raise RuntimeError("bad " + secrets["tok"])
        """
    )
    for extra in ((), ("-v",)):
        done = run_tea("run", flow, "--secrets", '{"tok": "hunter22-value"}', *extra)
        assert done.returncode == 1
        assert "hunter22-value" not in done.stderr + done.stdout
        assert "***" in done.stderr


def test_lua_settings_are_checked_at_load(write_yaml: WriteYaml) -> None:
    """A bad settings.lua fails `tea validate`, at the settings line."""
    flow = write_yaml("settings:\n  lua: {timeout_seconds: 0}\nnodes:\n  - name: a\n")
    with pytest.raises(LoadError) as info:
        tea.load(flow)
    assert info.value.location.line == 2
    assert "timeout_seconds" in info.value.message


def test_remote_fan_out_without_hosts_is_a_load_error(write_yaml: WriteYaml) -> None:
    """parallel_strategy: remote with no hosts configured fails at load, at the edge."""
    flow = write_yaml(
        """
        nodes:
          - name: a
          - name: b
          - name: c
          - name: m
        edges:
          - {from: a, to: [b, c], parallel: true, fan_in: m, parallel_strategy: remote}
        """
    )
    with pytest.raises(LoadError, match=r"needs settings\.parallel\.remote\.hosts") as info:
        tea.load(flow)
    assert info.value.location.line == 7


def test_dynamic_items_error_names_the_node_line(load_yaml: LoadYaml) -> None:
    """items that are not a list: a node error with the dynamic node's YAML line."""
    workflow = load_yaml(
        """
        nodes:
          - name: fan
            type: dynamic_parallel
            items: "{{ state.missing }}"
            fan_in: done
            steps:
              - run: "x = 1"
          - name: done
        """
    )
    with pytest.raises(NodeError, match="items must be a list") as info:
        workflow.invoke({})
    assert info.value.location is not None and info.value.location.line == 2


def test_a_thread_fan_out_tolerates_state_that_is_not_json(run_tea: RunTea, write_yaml: WriteYaml) -> None:
    """A lock in the state costs checkpoints (a warning), not the run, on the thread strategy."""
    flow = write_yaml(
        """
        nodes:
          - name: start
            run: |
              import threading
              return {"db": {"conn": threading.Lock()}}
          - name: a
            run: "x = 1"
          - name: b
            run: "y = 2"
          - name: m
            run: |
              return {"got": [r.get("x") or r.get("y") for r in parallel_results]}
        edges:
          - {from: start, to: [a, b], parallel: true, fan_in: m}
        """
    )
    done = run_tea("run", flow)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["got"] == [1, 2]
    assert "cannot checkpoint this run" in done.stderr
    _no_traceback(done)


def test_sigterm_mid_fan_out_keeps_finished_branches(write_yaml: WriteYaml, tmp_path: Path) -> None:
    """SIGTERM during a fan-out stops it at a safe point; resume runs only unfinished branches."""
    flow = write_yaml(
        """
        nodes:
          - name: start
          - name: fast
            run: |
              import os, time
              open(os.path.join(state["dir"], f"fast-{time.time_ns()}"), "w").close()
              return {"fast": True}
          - name: slow_a
            run: |
              import os, time
              open(os.path.join(state["dir"], f"slow_a-{time.time_ns()}"), "w").close()
              time.sleep(0.3)
          - name: slow_b
            run: |
              import time
              time.sleep(0.3)
              return {"slow": True}
          - name: merge
            run: |
              return {"both": [r.get("fast") or r.get("slow") for r in parallel_results]}
        edges:
          - {from: start, to: [fast, slow_a], parallel: true, fan_in: merge}
        """
    )
    runs = tmp_path / "runs"
    runs.mkdir()
    given = json.dumps({"dir": str(runs)})
    proc = subprocess.Popen([TEA_BIN, "run", flow, "-i", given, "-c", tmp_path / "ck"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (list(runs.glob("fast-*")) and list(runs.glob("slow_a-*"))):
        assert time.monotonic() < deadline, "the branches never started"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    (checkpoint,) = [p for p in (tmp_path / "ck").glob("*.json") if load_checkpoint(p).reason == "signal"]
    assert load_checkpoint(checkpoint).pending_fanout is not None
    resumed = subprocess.run([TEA_BIN, "resume", checkpoint], capture_output=True, text=True, timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["both"] == [True, True]
    assert len(list(runs.glob("fast-*"))) == 1  # finished before the signal: journaled, not run again
    assert len(list(runs.glob("slow_a-*"))) == 2  # stopped by the signal: run again
