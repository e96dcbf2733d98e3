"""The resident worker over plain pipes (no SSH): protocol, branch processes, stdout discipline, ending."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
from toy_program import ToyProgram

from executors.base import BranchResult, BranchTask
from remote.payload import SharedState, task_message
from remote.worker import PROTOCOL, STATES_KEPT

ROOT = Path(__file__).resolve().parents[2]


def _worker(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "remote._entry", "worker", *args],
        cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )


def _load_message() -> dict:
    data = base64.b64encode(cloudpickle.dumps(ToyProgram())).decode()
    return {"op": "load", "key": "k1", "kind": "pickle", "data": data}


def _send(proc: subprocess.Popen[str], message: dict) -> None:
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(message) + "\n")
    proc.stdin.flush()


def _state(**values) -> SharedState:
    shared = SharedState.encode(values)
    assert isinstance(shared, SharedState)
    return shared


def _run(task_id: str, entry: str, state: SharedState, **overrides) -> dict:
    task = task_message(BranchTask(f"f[{entry}]", entry, None, {}, overrides=overrides))
    return {"op": "run", "id": task_id, "key": "k1", "state": state.key, "task": task}


def _send_state(proc: subprocess.Popen[str], state: SharedState) -> None:
    assert proc.stdin is not None
    proc.stdin.write(state.message() + "\n")
    proc.stdin.flush()


def test_protocol_round_trip_with_prints_kept_off_stdout(tmp_path):
    proc = _worker(tmp_path, "--slots", "2")
    assert proc.stdout is not None
    hello = json.loads(proc.stdout.readline())
    assert hello["op"] == "hello" and hello["protocol"] == PROTOCOL
    _send(proc, _load_message())
    shared = _state(seen=["start"], big="x" * 1000)
    _send_state(proc, shared)
    _send(proc, _run("1", "a", shared, fail="a"))
    _send(proc, _run("2", "b", shared, i=2))
    lines = [json.loads(proc.stdout.readline()) for _ in "12"]
    answers = {m["id"]: BranchResult.from_dict(m["result"]) for m in lines}
    tails = {m["id"]: m["result"].get("stderr_tail") for m in lines}
    assert answers["2"].success
    # What comes back is the update: the overrides and what the branch wrote, not "big".
    assert answers["2"].update == {"i": 2, "seen": ["start", "b"], "pid": answers["2"].pid}
    assert answers["2"].pid != proc.pid  # it ran in one of the worker's branch processes
    assert not answers["1"].success and answers["1"].update == {"fail": "a"}
    assert answers["1"].error is not None and "told to fail" in (answers["1"].error.traceback or "")
    assert tails == {"1": "about to fail a", "2": None}  # a failed branch's own output, nobody else's
    out, err = proc.communicate(timeout=30)  # stdin closed: the worker ends its group
    assert proc.returncode == -signal.SIGKILL and out == ""
    assert "about to fail a" in err  # the node's print went to stderr, not the protocol


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie runs nothing; its new parent reaps it when it will


def _wait_for(condition, within: float = 30.0) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_end_of_stdin_kills_running_branches_and_their_children(tmp_path):
    proc = _worker(tmp_path)
    assert proc.stdout is not None
    hello = json.loads(proc.stdout.readline())
    assert hello["pgid"] == hello["pid"] == proc.pid  # it leads a process group of its own
    _send(proc, _load_message())
    pidfile = tmp_path / "child.pid"
    shared = _state(hang=60, child=True)
    _send_state(proc, shared)
    _send(proc, _run("1", "stuck", shared, pidfile=str(pidfile)))
    assert _wait_for(lambda: pidfile.exists() and pidfile.read_text() != "")
    child = int(pidfile.read_text())
    assert _running(child)
    out, _ = proc.communicate(timeout=30)  # closes stdin: no waiting for the 60 s branch
    assert out == ""  # no result for a branch nobody reads
    assert _wait_for(lambda: not _running(child))


def test_a_returned_state_json_would_change_is_a_serialization_error(tmp_path):
    proc = _worker(tmp_path)
    assert proc.stdout is not None
    proc.stdout.readline()
    _send(proc, _load_message())
    shared = _state()
    _send_state(proc, shared)
    _send(proc, _run("1", "a", shared, intkeys=True))
    result = json.loads(proc.stdout.readline())["result"]
    proc.communicate(timeout=30)
    assert not result["success"] and result["error"]["type"] == "SerializationError"
    assert "the update branch f[a] returned" in result["error"]["message"]
    assert "state['counts'] has the int key 1" in result["error"]["message"]


def test_unknown_program_is_a_failed_result_not_a_crash(tmp_path):
    proc = _worker(tmp_path)
    assert proc.stdout is not None
    proc.stdout.readline()
    shared = _state()
    _send_state(proc, shared)
    _send(proc, {**_run("1", "a", shared), "key": "never-sent"})
    answer = json.loads(proc.stdout.readline())
    assert not answer["result"]["success"] and "never sent" in answer["result"]["error"]["message"]
    proc.communicate(timeout=30)


def test_states_are_kept_by_key_and_the_oldest_goes_first(tmp_path):
    proc = _worker(tmp_path)
    assert proc.stdout is not None
    proc.stdout.readline()
    _send(proc, _load_message())
    states = [_state(n=n) for n in range(STATES_KEPT + 1)]
    for state in states:
        _send_state(proc, state)
    _send(proc, _run("newest", "a", states[-1]))
    _send(proc, _run("oldest", "b", states[0]))
    answers = {m["id"]: m["result"] for m in (json.loads(proc.stdout.readline()) for _ in "12")}
    proc.communicate(timeout=30)
    assert answers["newest"]["success"]
    assert not answers["oldest"]["success"]  # dropped: the driver would have sent it again
    assert f"shared state {states[0].key} was never sent" in answers["oldest"]["error"]["message"]


def test_a_workflow_that_does_not_load_is_a_setup_error(tmp_path):
    proc = _worker(tmp_path)
    assert proc.stdout is not None
    proc.stdout.readline()
    files = {"workflow.yaml": "name: broken\nnodes:\n  - name: a\n    goto: nowhere\n"}
    _send(proc, {"op": "load", "key": "k1", "kind": "yaml", "entry": "workflow.yaml", "files": files})
    shared = _state()
    _send_state(proc, shared)
    _send(proc, _run("1", "a", shared))
    result = json.loads(proc.stdout.readline())["result"]
    proc.communicate(timeout=30)
    assert not result["success"] and result["error"]["type"] == "ProgramLoadError"
    assert result["error"]["category"] == "setup"  # no retry, on this host or another, helps
    assert "does not load there" in result["error"]["message"] and "nowhere" in result["error"]["message"]


def test_cpu_bound_branches_run_at_once_in_separate_processes(tmp_path):
    proc = _worker(tmp_path, "--slots", "2")
    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline())["slots"] == 2
    _send(proc, _load_message())
    shared = _state(spin=1.0)
    _send_state(proc, shared)
    for task_id in "12":
        _send(proc, _run(task_id, f"cpu{task_id}", shared))
    first, second = (BranchResult.from_dict(json.loads(proc.stdout.readline())["result"]) for _ in "12")
    proc.communicate(timeout=30)
    assert first.pid != second.pid  # two processes: two cores, not one GIL
    (a_start, a_end), (b_start, b_end) = first.update["spun"], second.update["spun"]
    assert a_start < b_end and b_start < a_end  # they ran at the same time


def test_a_branch_that_kills_its_process_fails_alone(tmp_path):
    proc = _worker(tmp_path, "--slots", "1")
    assert proc.stdout is not None
    proc.stdout.readline()
    _send(proc, _load_message())
    shared = _state()
    _send_state(proc, shared)
    _send(proc, _run("1", "a", shared, crash=True))
    _send(proc, _run("2", "b", shared, i=2))
    answers = {m["id"]: BranchResult.from_dict(m["result"]) for m in (json.loads(proc.stdout.readline()) for _ in "12")}
    proc.communicate(timeout=30)
    crashed = answers["1"]
    assert not crashed.success and crashed.branch_id == "f[a]"
    assert crashed.error is not None and crashed.error.category == "worker_died"
    assert crashed.error.message == "the process running the branch died (signal 9)"
    assert answers["2"].success  # a fresh process took the slot, with the program and state
