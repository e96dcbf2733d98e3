"""Checkpoints and resume: only the steps that did not succeed run again; outputs are kept."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mission_helpers import WriteMission

from tea.checkpoint import Checkpoint, save_checkpoint
from tea.errors import CheckpointError
from tea.mission import is_mission_checkpoint, load_mission, resume_mission, run_mission
from tea.mission.resume import read_checkpoint

MISSION = """
settings: {shell: {enabled: true}}
steps:
  - id: setup
    step_type: command
    parameters: {command: [sh, -c, "echo run >> setup.log; echo ready"]}
  - id: gate
    step_type: command
    depends_on: [setup]
    parameters: {command: [test, -f, open.flag]}
  - id: report
    step_type: create_file
    depends_on: [gate]
    parameters: {path: report.txt, content: "setup said {{ setup.output.stdout }} for {{ context.who }}"}
  - id: side
    step_type: noop
"""


def test_resume_runs_only_what_did_not_succeed(write_mission: WriteMission, tmp_path: Path) -> None:
    path = write_mission(MISSION)
    first = run_mission(load_mission(path), {"who": "ana"}, secrets={"pw": "hunter22"}, progress=False)
    assert first.status == "failed" and first.step_results["report"].status == "skipped"
    ckpt = first.checkpoint_path
    assert ckpt is not None and ckpt.parent == tmp_path / ".tea-checkpoints"
    saved = read_checkpoint(ckpt)
    assert sorted(saved.succeeded) == ["setup", "side"] and saved.context == {"who": "ana"}
    (tmp_path / "open.flag").write_text("")
    second = resume_mission(ckpt, progress=False)
    assert second.status == "completed", second.to_json()
    assert (tmp_path / "setup.log").read_text() == "run\n"  # setup did not run again
    assert second.step_results["setup"] == first.step_results["setup"]
    assert (tmp_path / "report.txt").read_text() == "setup said ready\n for ana"
    assert not ckpt.exists()  # a completed mission leaves nothing to resume


def test_the_checkpoint_holds_no_secret(write_mission: WriteMission) -> None:
    path = write_mission("""
        steps:
          - {id: a, step_type: create_file, parameters: {path: s.txt, content: "{{ secrets.pw }}"}}
          - {id: b, step_type: read_file, depends_on: [a], parameters: {path: s.txt}}
          - {id: c, step_type: read_file, depends_on: [b], parameters: {path: missing.txt}}
    """)
    result = run_mission(load_mission(path), {"note": "hunter22"}, secrets={"pw": "hunter22"}, progress=False)
    assert result.checkpoint_path is not None
    text = result.checkpoint_path.read_text()
    assert "hunter22" not in text and json.loads(text)["state"]["steps"]["b"]["output"]["content"] == "***"


def test_a_changed_mission_is_refused_unless_forced(write_mission: WriteMission, tmp_path: Path) -> None:
    path = write_mission(MISSION)
    first = run_mission(load_mission(path), progress=False)
    assert first.checkpoint_path is not None
    path.write_text(MISSION.replace("side", "other"))
    with pytest.raises(CheckpointError, match="different version of this mission"):
        resume_mission(first.checkpoint_path, progress=False)
    (tmp_path / "open.flag").write_text("")
    forced = resume_mission(first.checkpoint_path, force=True, progress=False)
    assert forced.status == "completed" and "other" in forced.step_results


def test_a_workflow_checkpoint_is_not_a_missions(tmp_path: Path) -> None:
    ckpt = Checkpoint(workflow_hash="x", workflow_path=None, node="n", position="before", reason="error",
                      state={}, step=1)
    path = save_checkpoint(tmp_path, ckpt)
    from tea.checkpoint import load_checkpoint

    assert not is_mission_checkpoint(load_checkpoint(path))
    with pytest.raises(CheckpointError, match="not a mission's"):
        resume_mission(path)


RUNNER = """
import sys
from tea.mission import load_mission, run_mission
result = run_mission(load_mission(sys.argv[1]), progress=False)
print(result.status)
"""


def test_a_killed_run_resumes_from_its_progress_checkpoint(write_mission: WriteMission, tmp_path: Path) -> None:
    """SIGKILL leaves the progress checkpoint (saved as steps succeed), which resume takes up."""
    path = write_mission("""
        settings: {shell: {enabled: true}}
        steps:
          - {id: first, step_type: command, parameters: {command: [sh, -c, "echo x >> first.log"]}}
          - id: hang
            step_type: command
            depends_on: [first]
            parameters: {command: [sh, -c, "if [ -f go ]; then exit 0; fi; echo $$ > hang.pid; exec sleep 60"]}
    """)
    proc = subprocess.Popen([sys.executable, "-c", RUNNER, str(path)], cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    ckpt_dir = tmp_path / ".tea-checkpoints"
    deadline = time.monotonic() + 60
    while not ((tmp_path / "hang.pid").exists() and list(ckpt_dir.glob("*.json"))):
        assert time.monotonic() < deadline and proc.poll() is None, "the mission did not get to its second step"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    os.kill(int((tmp_path / "hang.pid").read_text()), signal.SIGKILL)  # orphaned by the SIGKILL
    (ckpt,) = ckpt_dir.glob("*.json")
    assert sorted(read_checkpoint(ckpt).succeeded) == ["first"]
    (tmp_path / "go").write_text("")
    result = resume_mission(ckpt, progress=False)
    assert result.status == "completed" and (tmp_path / "first.log").read_text() == "x\n"
