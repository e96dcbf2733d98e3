"""`tea run` stops at interrupts, errors and signals with a checkpoint; `tea resume` goes on."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tea.checkpoint import Checkpoint, load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CLI = [sys.executable, "-c", "import sys; from tea.cli import main; sys.exit(main())"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

TRAIL = textwrap.dedent(
    """
    name: trail
    initial_state:
      trail: []
    nodes:
      - name: a
        run: |
          return {"trail": state["trail"] + ["a"]}
      - name: b
        run: |
          return {"trail": state["trail"] + ["b"], "seen_note": state.get("note")}
      - name: c
        run: |
          return {"trail": state["trail"] + ["c"], "tag": "v1"}
    """
)

SLOW = textwrap.dedent(
    """
    name: slow
    initial_state:
      trail: []
    nodes:
      - name: s1
        run: |
          import time
          time.sleep(0.3)
          return {"trail": state["trail"] + ["s1"]}
      - name: s2
        run: |
          import time
          time.sleep(0.3)
          return {"trail": state["trail"] + ["s2"]}
      - name: s3
        run: |
          return {"trail": state["trail"] + ["s3"]}
    """
)


def tea(*args: Any, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=ENV, timeout=60)


def checkpoint_of(proc: subprocess.CompletedProcess[str], cwd: Path | None = None) -> Path:
    """The path printed as ``checkpoint: <path>`` on stderr."""
    found = re.findall(r"^checkpoint: (.+)$", proc.stderr, re.MULTILINE)
    assert len(found) == 1, f"exit {proc.returncode}, stderr:\n{proc.stderr}"
    path = Path(found[0].strip())
    return path if path.is_absolute() else (cwd or Path.cwd()) / path


def stopped_at(
    proc: subprocess.CompletedProcess[str], node: str, position: str, cwd: Path | None = None
) -> tuple[Path, Checkpoint]:
    assert proc.returncode == 3, f"exit {proc.returncode}, stderr:\n{proc.stderr}"
    path = checkpoint_of(proc, cwd)
    ckpt = load_checkpoint(path)
    assert (ckpt.node, ckpt.position, ckpt.reason) == (node, position, f"interrupt_{position}")
    return path, ckpt


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def final_state(proc: subprocess.CompletedProcess[str], output: Path) -> dict[str, Any]:
    assert proc.returncode == 0, f"exit {proc.returncode}, stderr:\n{proc.stderr}"
    state: dict[str, Any] = json.loads(output.read_text(encoding="utf-8"))
    return state


# -- interrupts ----------------------------------------------------------------------


def test_interrupt_resume_example_round_trip(tmp_path: Path) -> None:
    workdir = tmp_path / "wf"
    workdir.mkdir()
    workflow = Path(shutil.copy(EXAMPLES / "interrupt_resume.yaml", workdir))
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    out = tmp_path / "final.json"

    first = tea("run", workflow, "-i", '{"product": "tea 1.0"}', cwd=elsewhere)
    path, ckpt = stopped_at(first, "review", "before", elsewhere)
    assert path.parent == workdir / "checkpoints", "config.checkpoint_dir is relative to the file"
    assert ckpt.state["draft"] == "Release notes for tea 1.0."

    update = '{"approved": false, "feedback": "mention the bug fixes"}'
    again = tea("resume", path, "-i", update, cwd=elsewhere)
    path, ckpt = stopped_at(again, "review", "before", elsewhere)
    assert ckpt.state["revisions"] == 1
    assert ckpt.state["status"] == "changes requested"

    approved = tea("resume", path, "-i", '{"approved": true}', cwd=elsewhere)
    path, ckpt = stopped_at(approved, "publish", "after", elsewhere)
    assert ckpt.state["published"] == 1

    state = final_state(tea("resume", path, "-o", out, cwd=elsewhere), out)
    assert state["published"] == 1, "an interrupt-after node does not run again"
    assert state["status"] == "published"
    assert state["draft"] == "Release notes for tea 1.0. Revised: mention the bug fixes."
    assert state["announcement"].startswith("Published after 1 revision(s): ")


def test_interrupt_after_from_the_cli(tmp_path: Path) -> None:
    workflow = write(tmp_path / "trail.yaml", TRAIL)
    ckdir, out = tmp_path / "ck", tmp_path / "out.json"
    first = tea("run", workflow, "--checkpoint-dir", ckdir, "--interrupt-after", "a")
    path, ckpt = stopped_at(first, "a", "after")
    assert path.parent == ckdir
    assert ckpt.state["trail"] == ["a"]
    state = final_state(tea("resume", path, "-i", '{"note": "hi"}', "-o", out), out)
    assert state["trail"] == ["a", "b", "c"]
    assert state["seen_note"] == "hi"


def test_interrupt_before_from_the_cli_stops_at_each_node(tmp_path: Path) -> None:
    workflow = write(tmp_path / "trail.yaml", TRAIL)
    ckdir, out = tmp_path / "ck", tmp_path / "out.json"
    first = tea("run", workflow, "--checkpoint-dir", ckdir, "--interrupt-before", "b,c")
    path, ckpt = stopped_at(first, "b", "before")
    assert ckpt.state["trail"] == ["a"]
    second = tea("resume", path, "--workflow", workflow)
    path, ckpt = stopped_at(second, "c", "before")
    assert ckpt.state["trail"] == ["a", "b"]
    state = final_state(tea("resume", path, "-o", out), out)
    assert state["trail"] == ["a", "b", "c"]


def test_stream_stops_at_an_interrupt(tmp_path: Path) -> None:
    workflow = write(tmp_path / "trail.yaml", TRAIL)
    ckdir = tmp_path / "ck"
    proc = tea("run", workflow, "--stream", "--checkpoint-dir", ckdir, "--interrupt-before", "b")
    assert proc.returncode == 3, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [e["type"] for e in events].count("interrupt") == 1
    last = events[-1]
    assert last["type"] == "interrupt"
    assert last["node"] == "b"
    assert load_checkpoint(Path(last["checkpoint"])).node == "b"
    # The reference restarts the run at every interrupt and writes checkpoints forever.
    saved = list(ckdir.glob("*.json"))
    assert Path(last["checkpoint"]) in saved
    assert len(saved) <= 3


def test_library_resume(tmp_path: Path) -> None:
    import tea as tea_api

    workflow = write(tmp_path / "trail.yaml", TRAIL)
    first = tea("run", workflow, "--checkpoint-dir", tmp_path / "ck", "--interrupt-before", "b")
    path, _ = stopped_at(first, "b", "before")
    state = tea_api.load(workflow).invoke({"note": "lib"}, checkpoint=path)
    assert state["trail"] == ["a", "b", "c"]
    assert state["seen_note"] == "lib"


# -- errors and the retry/fallback example ---------------------------------------------------


def test_retry_fallback_example(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    workflow = EXAMPLES / "retry_fallback.yaml"
    live = final_state(tea("run", workflow, "-o", out, "--checkpoint-dir", tmp_path), out)
    assert live["source"] == "live"
    assert "__error__" not in live
    assert live["report"] == "Lisbon: 21 C (live)"

    cached = tea("run", workflow, "-i", '{"outage": true}', "-o", out, "--checkpoint-dir", tmp_path)
    state = final_state(cached, out)
    assert state["source"] == "cache"
    assert state["__error__"]["type"] == "ConnectionError"
    assert state["__error__"]["node"] == "fetch_live"
    assert "connection refused" in state["fallback_because"]
    assert state["report"] == "Lisbon: 19 C (cache)"


def test_unrecoverable_error_saves_a_checkpoint_and_resume_finishes(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    workflow = EXAMPLES / "retry_fallback.yaml"
    failed = tea("run", workflow, "-i", '{"read_only": true}', "--checkpoint-dir", tmp_path)
    assert failed.returncode == 1, failed.stderr
    assert not out.exists()
    ckpt = load_checkpoint(checkpoint_of(failed))
    assert (ckpt.node, ckpt.position, ckpt.reason) == ("store", "before", "error")
    assert ckpt.error is not None
    assert ckpt.error["type"] in ("PermissionError", "NodeError")
    assert "read-only" in ckpt.error["message"]
    state = final_state(tea("resume", checkpoint_of(failed), "-i", '{"read_only": false}', "-o", out), out)
    assert state["stored"] is True
    assert state["report"] == "Lisbon: 21 C (live)"


# -- signals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_saves_a_checkpoint_at_the_next_safe_point(tmp_path: Path, signum: int, code: int) -> None:
    workflow = write(tmp_path / "slow.yaml", SLOW)
    events, out = tmp_path / "events.ndjson", tmp_path / "out.json"
    with open(events, "w", encoding="utf-8") as sink:
        proc = subprocess.Popen(
            [*CLI, "run", str(workflow), "--stream", "--checkpoint-dir", str(tmp_path / "ck")],
            stdout=sink,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        try:
            deadline = time.monotonic() + 30
            # The second event is the first node's end: the run is past s1's start.
            while len(events.read_text(encoding="utf-8").splitlines()) < 2:
                assert proc.poll() is None and time.monotonic() < deadline, "no node event"
                time.sleep(0.01)
            proc.send_signal(signum)
            _, stderr = proc.communicate(timeout=30)
        finally:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == code, stderr
    done = subprocess.CompletedProcess(proc.args, code, "", stderr)
    ckpt = load_checkpoint(checkpoint_of(done))
    assert ckpt.reason == "signal"
    assert ckpt.position == "before"
    assert ckpt.node in ("s2", "s3")
    state = final_state(tea("resume", checkpoint_of(done), "-o", out), out)
    assert state["trail"] == ["s1", "s2", "s3"]


# -- bad resume inputs ------------------------------------------------------------------------


@pytest.fixture
def interrupted(tmp_path: Path) -> tuple[Path, Path]:
    """A workflow and a checkpoint stopped before its node b."""
    workflow = write(tmp_path / "trail.yaml", TRAIL)
    proc = tea("run", workflow, "--checkpoint-dir", tmp_path / "ck", "--interrupt-before", "b")
    return workflow, stopped_at(proc, "b", "before")[0]


def assert_exit_2(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode == 2, f"exit {proc.returncode}, stderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in proc.stderr.lower(), proc.stderr


def test_resume_from_files_that_are_not_checkpoints(tmp_path: Path, interrupted: tuple[Path, Path]) -> None:
    workflow, path = interrupted
    assert_exit_2(tea("resume", workflow), "checkpoint")
    assert_exit_2(tea("resume", write(tmp_path / "x.json", '{"state": {}}')), "checkpoint")
    assert_exit_2(tea("resume", tmp_path / "missing.json"), "not found")
    truncated = tmp_path / "truncated.json"
    truncated.write_bytes(path.read_bytes()[:-20])
    assert_exit_2(tea("resume", truncated), "truncated")


def test_resume_with_another_workflow(tmp_path: Path, interrupted: tuple[Path, Path]) -> None:
    _, path = interrupted
    other = write(tmp_path / "other.yaml", TRAIL.replace("name: trail", "name: other"))
    assert_exit_2(tea("resume", path, "--workflow", other), "checkpoint", "--force")


def test_resume_after_the_workflow_changed_needs_force(tmp_path: Path, interrupted: tuple[Path, Path]) -> None:
    workflow, path = interrupted
    write(workflow, TRAIL.replace('"tag": "v1"', '"tag": "v2"'))
    assert_exit_2(tea("resume", path), "--force")
    out = tmp_path / "out.json"
    state = final_state(tea("resume", path, "--force", "-o", out), out)
    assert state["tag"] == "v2"


@pytest.mark.parametrize("update", ["[1, 2]", '"text"', "42", "not json", "{"])
def test_resume_with_an_update_that_is_not_a_json_object(interrupted: tuple[Path, Path], update: str) -> None:
    _, path = interrupted
    assert_exit_2(tea("resume", path, "-i", update))
