"""What worker processes write to stderr: nothing reaches the user's terminal.

A worker's stderr goes into the error of a branch that failed (a segfault's
faulthandler dump, a message before ``os._exit``) or, for a branch that succeeded,
to INFO logging (what a branch printed, for people); a worker whose driver went away exits without a traceback.
The terminal checks run a real script in a subprocess, whose stderr is the
terminal the workers (and the forkserver) inherit.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from branch_programs import Probe

from executors import BranchTask, ParallelConfig
from executors.process import ProcessExecutor

pytestmark = pytest.mark.timeout(60)

CONFIG = ParallelConfig(strategy="process", max_workers=2)


def task(index: int, **overrides: object) -> BranchTask:
    return BranchTask(
        f"fan[{index}]", "work", None, {}, index=index, target=f"t{index}",
        overrides=dict(overrides),
    )


def run_script(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(code)
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


@pytest.fixture
def executor():
    with ProcessExecutor(max_workers=2) as made:
        yield made


@pytest.mark.parametrize(
    ("mode", "said"),
    [("segfault", "Fatal Python error: Segmentation fault"), ("exit", "last words")],
)
def test_a_dead_workers_stderr_is_in_its_branchs_error(executor, mode, said):
    (dead,) = executor.run(Probe(), [task(0, mode=mode, say="last words")], CONFIG)
    assert dead.error is not None and dead.error.type == "WorkerDied"
    assert said in (dead.error.traceback or "")
    if mode == "segfault":
        assert "run_branch" in (dead.error.traceback or "")  # the dump's stack


def test_a_failed_branchs_stderr_is_in_its_traceback(executor):
    (result,) = executor.run(Probe(), [task(0, mode="raise", say="disk almost full")], CONFIG)
    assert result.error is not None and result.error.type == "KeyError"
    assert "disk almost full" in (result.error.traceback or "")


def test_only_the_end_of_a_long_stderr_is_kept(executor):
    said = "\n".join(f"line {i}" for i in range(20_000))
    (dead,) = executor.run(Probe(), [task(0, mode="exit", say=said)], CONFIG)
    text = dead.error.traceback if dead.error else ""
    assert "line 19999" in (text or "")
    assert "line 100\n" not in (text or "")
    assert len(text or "") < 10_000


def test_a_successful_branchs_output_is_logged_at_info_and_not_kept(executor, caplog):
    with caplog.at_level(logging.DEBUG, logger="tea.process"):
        (first,) = executor.run(Probe(), [task(0, say="progress 50%")], CONFIG)
        (second,) = executor.run(Probe(), [task(1, mode="raise")], CONFIG)
    assert first.success
    assert [r.levelno for r in caplog.records if "progress 50%" in r.getMessage()] == [
        logging.INFO
    ]
    # What one branch wrote does not end up in the next branch's error.
    assert second.error is not None and "progress" not in (second.error.traceback or "")


SEGFAULT_RUN = """
import json
import tea

FLOW = '''
settings: {parallel: {strategy: process, on_branch_failure: continue}}
nodes:
  - name: start
  - name: crash
    run: |
      import ctypes
      ctypes.string_at(0)
  - name: chatty
    run: |
      import sys
      print("chatty was here", file=sys.stderr)
      return {"chatty": 1}
  - name: merge
    run: |
      return {"results": [[r.branch_id, r.success, r.error.traceback if r.error else None]
                          for r in parallel_results]}
edges:
  - {from: start, to: [crash, chatty], parallel: true, fan_in: merge}
  - {from: merge, to: __end__}
'''

if __name__ == "__main__":
    print(json.dumps(tea.loads(FLOW).invoke({})["results"]))
"""


def test_a_segfault_does_not_reach_the_terminal_but_its_error(tmp_path):
    done = run_script(tmp_path, SEGFAULT_RUN)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    crash, chatty = json.loads(done.stdout)
    assert crash[:2] == ["start[crash]", False]
    assert "Fatal Python error: Segmentation fault" in crash[2]
    assert chatty[:2] == ["start[chatty]", True]


EARLY_FAILURE = """
import tea
from tea.errors import NodeError

FLOW = '''
settings: {parallel: {strategy: process}}
nodes:
  - name: start
    run: |
      raise ValueError("no input")
  - name: a
  - name: b
  - name: merge
edges:
  - {from: start, to: [a, b], parallel: true, fan_in: merge}
  - {from: merge, to: __end__}
'''

if __name__ == "__main__":
    for _ in range(3):
        try:
            tea.loads(FLOW).invoke({})
        except NodeError as exc:
            print(type(exc).__name__)
"""


def test_a_run_failing_while_workers_boot_prints_no_worker_tracebacks(tmp_path):
    """The run closes the pool it started in the background while the workers still boot."""
    done = run_script(tmp_path, EARLY_FAILURE)
    assert done.stdout.split() == ["NodeError"] * 3, done.stderr
    assert done.stderr == ""


DRIVER_GONE = """
from executors import _worker
from executors._forkserver import start_context

if __name__ == "__main__":
    context = start_context()
    ours, theirs = context.Pipe(duplex=True)
    ours.close()  # the driver is gone before the worker says "ready"
    process = context.Process(target=_worker.serve, args=(theirs,), name="tea-process-worker")
    process.start()
    theirs.close()
    process.join(30)
    print(process.exitcode)
"""


def test_a_worker_whose_driver_is_gone_exits_quietly(tmp_path):
    """No stderr file is passed here: the worker writes straight to the script's stderr."""
    done = run_script(tmp_path, DRIVER_GONE)
    assert done.stdout.strip() == "0", done.stderr
    assert done.stderr == ""
