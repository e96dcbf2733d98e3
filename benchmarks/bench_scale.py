"""Fan-out at scale (issue 16): wide dynamic fan-outs, timed and weighed, each figure next to its goal.

    .venv/bin/python benchmarks/bench_scale.py [--limit-scale 1.0]

The workflows are in benchmarks/workflows/. Every case runs in a child process (``tea run``
as a user runs it, durable path included, or a child that times ``Workflow.invoke``), which
is killed at its time limit (three times its goal, at least 10 s: printed "timeout") or when
its processes together hold more than its memory cap (four times its goal, at least 1 GiB:
printed "over cap"), so a slow engine makes the benchmark short, not the machine swap.
``--limit-scale`` multiplies both limits, to measure a slow engine's figures in full. A
stopped run's figures are lower bounds, printed after ">".

Peak memory:
  * thread strategy: the ``tea`` process's own peak RSS (``VmHWM``, sampled every 20 ms;
    the kernel's ``ru_maxrss`` would count the image it was forked from);
  * process strategy: the whole tree, as the sum over every process of the run's session of
    that process's peak RSS (``VmHWM`` in /proc/<pid>/status, sampled every 20 ms while it
    lives; the session's members are listed every 250 ms). That is an upper bound of the
    tree's simultaneous peak: a page shared by the forkserver and its workers is counted once
    per process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKFLOWS = HERE / "workflows"
TEA = str(Path(sys.executable).parent / "tea")
SAMPLE_S = 0.02
# Listing the session scans all of /proc (about 3 ms): done less often than sampling, so the
# watchdog costs the benchmark about 1% of a core. Workers live for the whole run.
LIST_S = 0.25


@dataclass
class Outcome:
    """One child run: wall time, peak memory (MB), and why it ended early ("" if it did not)."""

    seconds: float
    peak_mb: float
    failure: str
    stdout: str


def session_members(sid: int) -> list[int]:
    """Every live process of session ``sid`` (the child and all it started)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # Fields after the command name (which may hold spaces): state ppid pgrp session ...
        if int(stat.rpartition(")")[2].split()[3]) == sid:
            members.append(int(entry))
    return members


def memory_kb(pid: int) -> tuple[int, int]:
    """(peak RSS, current RSS) of a process in kB; zeros once it is gone or a zombie."""
    fields = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = value
    except OSError:
        return 0, 0
    return int(fields.get("VmHWM", "0 kB").split()[0]), int(fields.get("VmRSS", "0 kB").split()[0])


class Watchdog(threading.Thread):
    """Samples a child's session: per-process peaks; kills it all past the deadline or the cap."""

    def __init__(self, sid: int, timeout: float, cap_mb: float) -> None:
        super().__init__(daemon=True)
        self.sid, self.deadline, self.cap_kb = sid, time.monotonic() + timeout, cap_mb * 1024
        self.peaks: dict[int, int] = {}
        self.failure = ""
        self.done = threading.Event()

    def run(self) -> None:
        members, listed = [self.sid], time.monotonic()
        while not self.done.wait(SAMPLE_S):
            if time.monotonic() - listed > LIST_S:
                members, listed = session_members(self.sid), time.monotonic()
            current = 0
            for pid in members:
                peak, rss = memory_kb(pid)
                self.peaks[pid] = max(self.peaks.get(pid, 0), peak)
                current += rss
            if current > self.cap_kb:
                self.failure = "over cap"
            elif time.monotonic() > self.deadline:
                self.failure = "timeout"
            if self.failure:
                kill_session(self.sid)
                return


def kill_session(sid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(sid, signal.SIGKILL)


def run_limited(args: list[str], cwd: Path, timeout: float, cap_mb: float, tree: bool) -> Outcome:
    """Run ``args`` in a new session under a watchdog; peak memory as the module docstring says."""
    out_path = cwd / "stdout.txt"
    with out_path.open("wb") as out, (cwd / "stderr.txt").open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(args, cwd=cwd, stdout=out, stderr=err, start_new_session=True)
        watchdog = Watchdog(proc.pid, timeout, cap_mb)
        watchdog.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    watchdog.done.set()
    watchdog.join()
    if session_members(proc.pid):  # workers a killed run left behind (their session id is still ours)
        kill_session(proc.pid)
    # The kernel's ru_maxrss of a child also counts the image it was forked from (this
    # benchmark's own process, large after the 100,000-item case): the sampled VmHWM of
    # the exec'd process is its own peak. ru_maxrss only when no sample was taken.
    own = watchdog.peaks.get(proc.pid)
    peak_mb = sum(watchdog.peaks.values()) / 1024 if tree else (own or usage.ru_maxrss) / 1024
    failure = watchdog.failure or (f"exit {proc.returncode}" if proc.returncode else "")
    if proc.returncode and not watchdog.failure:
        sys.stderr.write((cwd / "stderr.txt").read_text(errors="replace")[-2000:])
    return Outcome(seconds, peak_mb, failure, out_path.read_text(errors="replace"))


class Case:
    """Limits for one workload, derived from its goals, and a scratch directory."""

    def __init__(self, tmp: Path, name: str, seconds_goal: float, mb_goal: float | None, scale: float) -> None:
        self.dir = tmp / name
        self.dir.mkdir()
        self.timeout = max(10.0, 3 * seconds_goal) * scale
        self.cap_mb = max(1024.0, 4 * (mb_goal or 512)) * scale

    def tea_run(self, workflow: str, state: Mapping[str, object] | None = None, tree: bool = False) -> Outcome:
        """``tea run`` of a workflow of benchmarks/workflows/ (checkpoints and journal in the case's dir)."""
        args = [TEA, "run", "-q", "-c", str(self.dir / "checkpoints"), "-o", str(self.dir / "out.json")]
        if state is not None:
            (self.dir / "input.json").write_text(json.dumps(state))
            args += ["-i", "@" + str(self.dir / "input.json")]
        done = run_limited([*args, str(WORKFLOWS / workflow)], self.dir, self.timeout, self.cap_mb, tree)
        if not done.failure:
            done.stdout = (self.dir / "out.json").read_text()
        return done

    def invoke(self, workflow: str, items: int | None, repeat: int) -> Outcome:
        """Best of ``repeat`` in-process ``invoke`` calls, timed inside a child (load excluded)."""
        args = [sys.executable, __file__, "--child-invoke", str(WORKFLOWS / workflow), str(items or ""), str(repeat)]
        done = run_limited(args, self.dir, self.timeout, self.cap_mb, tree=False)
        if not done.failure:
            result = json.loads(done.stdout)
            done.seconds, done.stdout = result["seconds"], json.dumps(result["state"])
        return done


def child_invoke(workflow: str, items: str, repeat: str) -> None:
    import tea

    flow = tea.load(workflow)
    state = {"items": list(range(int(items)))} if items else {}
    best, final = float("inf"), {}
    for _ in range(int(repeat)):
        started = time.perf_counter()
        final = flow.invoke(dict(state))
        best = min(best, time.perf_counter() - started)
    print(json.dumps({"seconds": best, "state": {"total": final.get("total")}}))


STOPPED = ("timeout", "over cap")


def check(done: Outcome, expected_total: int) -> Outcome:
    """Mark a finished run whose ``total`` is not the expected one."""
    if not done.failure:
        total = json.loads(done.stdout).get("total")
        if total != expected_total:
            done.failure = f"WRONG total {total!r} (expected {expected_total})"
    return done


def report(label: str, value: float | None, unit: str, goal: float | None, done: Outcome | None = None) -> None:
    """One line: figure, goal, ok/MISS; a stopped run's figure is a lower bound ("> ...")."""
    failure = done.failure if done else ""
    bound = "> " if failure in STOPPED else ""
    figure = "-" if value is None else f"{bound}{value:,.2f} {unit}"
    goal_text = "" if goal is None else f"goal <= {goal:,.4g} {unit}"
    if failure:
        status = failure
    elif goal is None or value is None:
        status = ""
    else:
        status = "ok" if value <= goal else "MISS"
    print(f"{label:<50} {figure:>15}  {goal_text:<20} {status}", flush=True)


def items_total(n: int) -> int:
    return n * (n - 1)  # the sum of 2x over range(n)


def bench_invoke(tmp: Path, scale: float) -> None:
    """The 10,000-item map in-process, and its per-item cost against 1,000 items."""
    small = check(Case(tmp, "invoke-1k", 1.0, None, scale).invoke("fanout_items.yaml", 1_000, 3), items_total(1_000))
    big = check(Case(tmp, "invoke-10k", 1.0, None, scale).invoke("fanout_items.yaml", 10_000, 2), items_total(10_000))
    report("1,000 items, thread, invoke (in-process)", small.seconds, "s", None, small)
    report("10,000 items, thread, invoke (in-process)", big.seconds, "s", 1.0, big)
    failed = small if small.failure else big
    ratio = None if failed.failure else (big.seconds / 10_000) / (small.seconds / 1_000)
    report("per-item cost, 10,000 vs 1,000 items (invoke)", ratio, "x", 1.5, failed)


def bench_tea_run(tmp: Path, scale: float) -> None:
    """The 10,000-item map through ``tea run`` on threads and processes, then 100,000 items."""
    state = {"items": list(range(10_000))}
    thread = check(Case(tmp, "run-10k", 2.0, 200, scale).tea_run("fanout_items.yaml", state), items_total(10_000))
    report("10,000 items, thread, tea run", thread.seconds, "s", 2.0, thread)
    report("  peak RSS", thread.peak_mb, "MB", 200, thread)

    case = Case(tmp, "run-10k-process", 4.0, 400, scale)
    process = check(case.tea_run("fanout_items_process.yaml", state, tree=True), items_total(10_000))
    report("10,000 items, process, tea run", process.seconds, "s", 4.0, process)
    report("  process tree peak RSS", process.peak_mb, "MB", 400, process)

    if thread.failure:
        print(f"{'100,000 items, thread, tea run':<50} skipped: 10,000 items did not finish", flush=True)
        return
    wide = Case(tmp, "run-100k", 20.0, 1024, scale).tea_run("fanout_items.yaml", {"items": list(range(100_000))})
    check(wide, items_total(100_000))
    report("100,000 items, thread, tea run", wide.seconds, "s", 20, wide)
    report("  peak RSS", wide.peak_mb, "MB", 1024, wide)


def startup_seconds(case: Case, repeat: int = 5) -> float:
    """Median wall time of ``tea run`` on a one-node workflow: what any run pays to start."""
    noop = case.dir / "noop.yaml"
    noop.write_text("name: noop\nnodes:\n  - name: only\n")
    args = [TEA, "run", "-q", "-c", str(case.dir / "checkpoints"), str(noop)]
    runs = [run_limited(args, case.dir, case.timeout, case.cap_mb, tree=False) for _ in range(repeat)]
    return statistics.median(done.seconds for done in runs)


def bench_loop_and_wide_state(tmp: Path, scale: float) -> None:
    """fanout_loop through ``tea run`` against in-process; a 1 MiB state to 64 branches."""
    case = Case(tmp, "fanout-loop", 1.0, None, scale)
    invoke = check(case.invoke("fanout_loop.yaml", None, 5), 7200)
    runs = [check(case.tea_run("fanout_loop.yaml"), 7200) for _ in range(3)]
    run = min(runs, key=lambda done: (bool(done.failure), done.seconds))
    startup = startup_seconds(case)
    report("fanout_loop, invoke (in-process)", invoke.seconds * 1e3, "ms", None, invoke)
    report("tea run start-up (one-node workflow, median)", startup * 1e3, "ms", None)
    goal_ms = None if invoke.failure else (2 * invoke.seconds + startup) * 1e3
    report("fanout_loop, tea run (<= 2x invoke + start-up)", run.seconds * 1e3, "ms", goal_ms, run)
    report("fanout_loop, tea run (below the reference)", run.seconds * 1e3, "ms", 626, run)

    wide = check(Case(tmp, "wide-state", 10.0, 150, scale).tea_run("fanout_wide_state.yaml"), 2016)
    report("1 MiB state to 64 branches, tea run, peak RSS", wide.peak_mb, "MB", 150, wide)
    report("  time (no goal)", wide.seconds, "s", None, wide)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit-scale", type=float, default=1.0, help="multiply every time limit and memory cap")
    args = parser.parse_args()
    print("fan-out at scale (issue 16); a run is stopped at 3x its time goal (min 10 s) or 4x its memory goal"
          " (min 1 GiB); after '>' a lower bound")
    with tempfile.TemporaryDirectory(prefix="tea-bench-scale-") as tmp:
        bench_invoke(Path(tmp), args.limit_scale)
        bench_tea_run(Path(tmp), args.limit_scale)
        bench_loop_and_wide_state(Path(tmp), args.limit_scale)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child-invoke":
        child_invoke(*sys.argv[2:])
    else:
        main()
