"""Children die with their parent: nothing a command or a branch started outlives it.

Real programs (``sleep``, some started with ``setsid`` to leave their process
group, some orphaned at once) carry a unique number in their argv, which is how
the tests find them in ``/proc`` afterwards. The time bounds only catch hangs;
stop latency is measured in benchmarks/bench_signals.py.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tea.actions import ActionContext, ActionFailed, builtin_registry, call_action
from tea.secrets import Secrets
from tests.process_marks import gone, new_mark, wait_for
from tests.tea.child_helpers import child_env

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
    pytest.mark.timeout(90),
]

ACTIONS = builtin_registry(entry_points=False)


def shell(tmp_path: Path, command: list[str], timeout: float = 1) -> Any:
    ctx = ActionContext(node="cmd", workflow_dir=tmp_path, settings={"shell": {"enabled": True}},
                        secrets=Secrets({}), variables={})
    params = {"command": command, "timeout_seconds": timeout}
    return call_action(ACTIONS["shell.run"], {}, params, ctx, name="shell.run")


ESCAPES = {
    # stays in the group, holds the pipes
    "background": "sleep 300.{m}1 & sleep 300.{m}2",
    # leaves the group, its parent still waiting
    "setsid": "setsid sleep 300.{m}1 & sleep 300.{m}2",
    # leaves the group and is orphaned at once; holds the pipes
    "orphan": "setsid sh -c 'sleep 300.{m}1 & sleep 300.{m}2' &",
    # orphaned in a group of its own, pipes closed: only the mark finds it
    "daemon": "setsid sh -c 'sleep 300.{m}1 & sleep 300.{m}2' >/dev/null 2>&1 </dev/null & "
              "sleep 300.{m}3",
}


@pytest.mark.parametrize("how", sorted(ESCAPES))
def test_shell_run_timeout_kills_everything_the_command_started(tmp_path, how):
    mark = new_mark()
    started = time.monotonic()
    with pytest.raises(ActionFailed, match="did not finish within 1s") as info:
        shell(tmp_path, ["sh", "-c", ESCAPES[how].format(m=mark)])
    assert info.value.retryable
    assert time.monotonic() - started < 30  # a hang, not a latency check
    assert gone(mark) == []


def test_shell_run_still_returns_output_and_status(tmp_path):
    result = shell(tmp_path, ["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=30)
    assert result == {"stdout": "out\n", "stderr": "err\n", "exit_code": 3}


def test_commands_running_when_the_interpreter_exits_are_killed(tmp_path):
    """A run stopped by a signal exits while thread branches are still inside shell.run:
    their commands, and what those started, die with the interpreter."""
    mark = new_mark()
    code = textwrap.dedent(f"""
        import signal, sys, threading, time
        from pathlib import Path
        from tea.actions import ActionContext, builtin_registry, call_action
        from tea.secrets import Secrets
        ctx = ActionContext(node="cmd", workflow_dir=Path({str(tmp_path)!r}),
                            settings={{"shell": {{"enabled": True}}}}, secrets=Secrets({{}}))
        params = {{"command": ["sh", "-c", "setsid sleep 300.{mark}1 & sleep 300.{mark}2"],
                   "timeout_seconds": 300}}
        action = builtin_registry(entry_points=False)["shell.run"]
        run = lambda: call_action(action, {{}}, params, ctx, name="shell.run")
        threading.Thread(target=run, daemon=True).start()
        # tea leaves the same way after its first signal: sys.exit from the main thread
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        time.sleep(300)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], env=child_env())
    try:
        wait_for(mark, 2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 143
    finally:
        proc.kill()
    assert gone(mark) == []


FLOW = """
name: children
settings:
  parallel: {{strategy: process, max_workers: 2}}
initial_state:
  items: [0, 1, 2, 3, 4, 5]
nodes:
  - name: each
    type: dynamic_parallel
    items: "{{{{ state.items }}}}"
    fan_in: done
    steps:
      - run: |
          import subprocess, time
          subprocess.Popen(["sleep", "300.{mark}1"])
          subprocess.Popen(["sh", "-c", "setsid sleep 300.{mark}2 & sleep 300.{mark}3"])
          subprocess.Popen(["sh", "-c", "setsid sleep 300.{mark}4 >/dev/null 2>&1 &"])
          time.sleep(300)
          return {{}}
  - name: done
    run: |
      return {{}}
"""


def start_run(tmp_path: Path, mark: str, flow_text: str = FLOW, programs: int = 8) -> subprocess.Popen[bytes]:
    """``tea run`` of ``flow_text`` (formatted with ``mark``), once ``programs`` of its
    ``sleep`` programs run."""
    flow = tmp_path / "flow.yaml"
    flow.write_text(flow_text.format(mark=mark))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tea", "run", str(flow), "--checkpoint-dir", str(tmp_path / "ck")],
        cwd=tmp_path, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        wait_for(mark, programs)  # FLOW: two branches in flight, four programs each
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    return proc


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_process_branches_and_their_programs(tmp_path, signum, code):
    mark = new_mark()
    proc = start_run(tmp_path, mark)
    try:
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == code, err.decode()
    assert b"checkpoint: " in err
    assert list((tmp_path / "ck").glob("*.json"))
    assert gone(mark) == []


def test_a_second_signal_ends_tea_at_once_and_still_takes_the_programs(tmp_path):
    mark = new_mark()
    proc = start_run(tmp_path, mark)
    try:
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode in (143, -signal.SIGTERM)
    assert gone(mark, within=30) == []


def test_a_sigkilled_tea_takes_its_workers_and_their_programs(tmp_path):
    mark = new_mark()
    proc = start_run(tmp_path, mark)
    proc.kill()
    proc.communicate(timeout=30)
    assert gone(mark, within=30) == []


def handled(pid: int, signum: int) -> None:
    """Wait until ``signum`` is no longer pending for ``pid``, then give its Python handler
    a moment to run (a sequencing wait, not a measure)."""
    bit = 1 << (signum - 1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status").read_text()
        pending = {k: int(v, 16) for k, v in (ln.split(":\t") for ln in status.splitlines()
                                            if ln.startswith(("SigPnd", "ShdPnd")))}
        if not any(mask & bit for mask in pending.values()):
            break
        time.sleep(0.01)
    time.sleep(0.5)


SHELL_FLOW = """
name: shell-children
settings:
  shell: {{enabled: true}}
initial_state:
  items: [0, 1]
nodes:
  - name: each
    type: dynamic_parallel
    items: "{{{{ state.items }}}}"
    fan_in: done
    steps:
      - uses: shell.run
        with:
          command: ["sh", "-c", "setsid sleep 300.{mark}1 & sleep 300.{mark}2"]
          timeout_seconds: 300
  - name: done
    run: |
      return {{}}
"""


def test_a_second_signal_takes_the_commands_of_thread_branches(tmp_path):
    """Thread branches inside shell.run: the second signal ends tea without atexit, and
    the commands (and what they started with setsid) go with it."""
    mark = new_mark()
    proc = start_run(tmp_path, mark, SHELL_FLOW, programs=4)  # two branches, two programs each
    try:
        proc.send_signal(signal.SIGTERM)
        # Two signals sent at once may reach tea as one (signals do not queue); the second
        # counts once the first was handled (its handler runs between bytecodes, at once).
        handled(proc.pid, signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode in (143, -signal.SIGTERM)
    assert gone(mark, within=30) == []
