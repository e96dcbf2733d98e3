"""Stopping a run (issue 13): how long SIGTERM takes, and what is left, each figure next to its goal.

Run: ``.venv/bin/python benchmarks/bench_signals.py [--branches 2000] [--workers 4]``

Prints, for this machine:

* stop latency of ``tea run`` (SIGTERM until the process has exited, checkpoint written)
  with ``--branches`` thread-strategy branches in flight, each a chain of short nodes
  (goal: 2 s);
* the same with process-strategy branches that start ``sleep`` programs, one with
  ``setsid`` (it leaves the worker's group) and one orphaned at once, with
  ``--workers`` workers busy (goal: 2 s), and how many of those programs are alive
  afterwards (goal: 0);
* how long ``shell.run`` with ``timeout_seconds: 1`` takes to return when the
  command left programs holding its pipes (goal: 1.5 s), and what is left (goal: 0).

A run is "in flight" once its branches have started (they touch files the benchmark
counts). Timing depends on the machine being quiet.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' helpers: finding programs by a mark in their argv
from tests.process_marks import gone, new_mark  # noqa: E402

GOAL_STOP = 2.0
GOAL_SHELL = 1.5

THREADS = """
name: stop_threads
settings:
  parallel: {{strategy: thread, max_workers: {branches}}}
initial_state:
  items: {items}
nodes:
  - name: each
    type: dynamic_parallel
    items: "{{{{ state.items }}}}"
    fan_in: done
    steps:
      - run: |
          open("{dir}/s%d" % state["index"], "w").close()
          return {{}}
{steps}
  - name: done
    run: |
      return {{}}
"""
STEP = """      - run: |
          import time
          time.sleep(0.05)
          return {}
"""
PROCESSES = """
name: stop_processes
settings:
  parallel: {{strategy: process, max_workers: {workers}}}
initial_state:
  items: {items}
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
          open("{dir}/s%d" % state["index"], "w").close()
          time.sleep(300)
          return {{}}
  - name: done
    run: |
      return {{}}
"""


def line(label: str, figure: str, goal: str, ok: bool) -> None:
    print(f"{label:<62} {figure:>12}  [goal {goal}] {'ok' if ok else 'MISSED'}", flush=True)


def stop_latency(flow: str, workdir: Path, started: int) -> tuple[float, int]:
    """Run ``flow`` until ``started`` branches touched their file, SIGTERM it; (seconds to
    exit, exit status)."""
    path = workdir / "flow.yaml"
    path.write_text(flow)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tea", "run", str(path), "-q", "--checkpoint-dir", str(workdir / "ck")],
        cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while len([n for n in os.listdir(workdir) if n.startswith("s")]) < started:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the run did not get its branches going")
            time.sleep(0.02)
        sent = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(timeout=120)
        return time.perf_counter() - sent, status
    finally:
        proc.kill()
        proc.wait()


def bench_threads(branches: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        flow = THREADS.format(branches=branches, items=list(range(branches)), dir=tmp, steps=STEP * 40)
        seconds, status = stop_latency(flow, Path(tmp), branches)
        line(f"stop, {branches} thread branches in flight (exit {status})", f"{seconds:.2f} s",
             f"<= {GOAL_STOP:g} s", seconds <= GOAL_STOP and status == 143)


def bench_processes(branches: int, workers: int) -> None:
    mark = new_mark()
    with tempfile.TemporaryDirectory() as tmp:
        flow = PROCESSES.format(workers=workers, items=list(range(branches)), dir=tmp, mark=mark)
        seconds, status = stop_latency(flow, Path(tmp), workers)
        line(f"stop, {workers} process workers with programs (exit {status})", f"{seconds:.2f} s",
             f"<= {GOAL_STOP:g} s", seconds <= GOAL_STOP and status == 143)
        left = len(gone(mark, within=5.0))
        line("programs those branches started, alive after the stop", str(left), "0", left == 0)


def bench_shell() -> None:
    from tea.actions import ActionContext, ActionFailed, builtin_registry, call_action
    from tea.secrets import Secrets

    mark = new_mark()
    command = ["sh", "-c", f"setsid sh -c 'sleep 300.{mark}1 & sleep 300.{mark}2' & sleep 300.{mark}3"]
    with tempfile.TemporaryDirectory() as tmp:
        ctx = ActionContext(node="cmd", workflow_dir=Path(tmp), settings={"shell": {"enabled": True}},
                            secrets=Secrets({}))
        started = time.perf_counter()
        with contextlib.suppress(ActionFailed):  # the timeout is the point
            call_action(builtin_registry(entry_points=False)["shell.run"], {},
                        {"command": command, "timeout_seconds": 1}, ctx, name="shell.run")
        seconds = time.perf_counter() - started
    line("shell.run, timeout 1 s, programs escaped with setsid", f"{seconds:.2f} s",
         f"<= {GOAL_SHELL:g} s", seconds <= GOAL_SHELL)
    left = len(gone(mark, within=5.0))
    line("programs that command started, alive after it returned", str(left), "0", left == 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--branches", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    if not sys.platform.startswith("linux"):
        print("skipped: reads /proc (Linux only)")
        return
    bench_shell()
    bench_threads(args.branches)
    bench_processes(args.branches, args.workers)


if __name__ == "__main__":
    main()
