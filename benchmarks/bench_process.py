"""How fast the process strategy starts, dispatches, and runs CPU-bound branches.

Run: ``.venv/bin/python benchmarks/bench_process.py [--work 10000000] [--repeat 3]``

Prints, for this machine:

* pool start: a new ``ProcessExecutor`` until its first two (empty) branches are back,
  cold (the first in this process, which also starts the forkserver) and warm;
* what a whole ``tea run`` pays for the pool (process minus thread, same workflow), and
  where that goes: the forkserver's boot (a fresh interpreter importing what workers
  preload, the engine) against the same interpreter doing nothing;
* dispatch overhead per branch once the pool is warm (an empty branch's round trip);
* a 2-branch fan-out of pure-Python CPU work against the same work in sequence,
  through the executor directly and through a YAML workflow (``tea.loads`` +
  ``invoke``) with ``parallel_strategy: process`` (and ``thread`` for comparison).

Targets (issue 4): pool start <= 100 ms, dispatch <= 1 ms per branch, speed-up >= 1.85x.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

# Only light imports at the top: every worker re-imports this script (multiprocessing's
# rule for the main module), as it re-imports the tea CLI in real runs.
from executors import BranchTask, ParallelConfig, ParallelExecutor, get_executor

PROCESS = ParallelConfig(strategy="process", max_workers=2)


def spin(n: int) -> int:
    """Pure-Python CPU work (holds the GIL the whole time)."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


class SpinProgram:
    """A branch program that spins ``state["n"]`` iterations (0: returns at once)."""

    key = "bench-spin"

    def run_branch(self, task: BranchTask, cancel: threading.Event | None = None) -> dict[str, Any]:
        return {"total": spin(task.state["n"])}


def ProcessExecutor() -> ParallelExecutor:
    return get_executor("process")


def ThreadExecutor() -> ParallelExecutor:
    return get_executor("thread")


def tasks(count: int, n: int) -> list[BranchTask]:
    return [BranchTask(f"fan[{i}]", "work", None, {"n": n}, index=i) for i in range(count)]


def best(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def pool_start() -> tuple[float, float]:
    def once() -> float:
        started = time.perf_counter()
        with ProcessExecutor() as executor:
            results = list(executor.run(SpinProgram(), tasks(2, 0), PROCESS))
            elapsed = time.perf_counter() - started
        assert all(r.success for r in results)
        return elapsed

    cold = once()
    warm = statistics.median(once() for _ in range(5))
    return cold, warm


def dispatch_overhead(count: int = 500) -> tuple[float, float]:
    """Per-branch time for empty branches: one at a time, and two workers in parallel."""
    program = SpinProgram()
    with ProcessExecutor() as executor:
        list(executor.run(program, tasks(4, 0), PROCESS))
        serial = ParallelConfig(strategy="process", max_workers=1)
        one = best(3, lambda: list(executor.run(program, tasks(count, 0), serial))) / count
        two = best(3, lambda: list(executor.run(program, tasks(count, 0), PROCESS))) / count
    return one, two


def executor_speedup(n: int, repeat: int) -> tuple[float, float, float, float]:
    program = SpinProgram()
    sequential = best(repeat, lambda: [program.run_branch(t) for t in tasks(2, n)])
    with ThreadExecutor() as threads:
        thread = best(repeat, lambda: list(threads.run(program, tasks(2, n), PROCESS)))
    with ProcessExecutor() as processes:
        list(processes.run(program, tasks(2, 0), PROCESS))
        warm = best(repeat, lambda: list(processes.run(program, tasks(2, n), PROCESS)))

    def cold_run() -> None:
        with ProcessExecutor() as fresh:
            list(fresh.run(program, tasks(2, n), PROCESS))

    cold = best(repeat, cold_run)
    return sequential, sequential / thread, sequential / warm, sequential / cold


BRANCHES = """
  - name: left
    run: |
      total = 0
      for i in range({n}):
          total += i * i % 7
      return {{"left": total}}
  - name: right
    run: |
      total = 0
      for i in range({n}):
          total += i * i % 7
      return {{"right": total}}
"""

WORKFLOW = """
name: bench-process
settings:
  parallel:
    strategy: {strategy}
nodes:
  - name: start
""" + BRANCHES + """  - name: merge
    run: |
      return {{"branches": len(parallel_results)}}
edges:
  - from: start
    to: [left, right]
    parallel: true
    fan_in: merge
  - from: merge
    to: __end__
"""

SEQUENTIAL = """
name: bench-sequential
nodes:
""" + BRANCHES


def workflow_speedup(n: int, repeat: int) -> dict[str, float]:
    import tea

    sequential = tea.loads(SEQUENTIAL.format(n=n))
    base = best(repeat, lambda: sequential.invoke({}))
    ratios = {"sequential_s": base}
    for strategy in ("thread", "process"):
        flow = tea.loads(WORKFLOW.format(n=n, strategy=strategy))
        assert flow.invoke({})["branches"] == 2
        ratios[strategy] = base / best(repeat, partial(flow.invoke, {}))
    return ratios


RUN_COST_YAML = """
settings: {{parallel: {{strategy: {strategy}}}}}
nodes:
  - name: start
  - name: a
    run: "x = 1"
  - name: b
    run: "y = 2"
  - name: m
    run: |
      return {{"n": len(parallel_results)}}
edges:
  - {{from: start, to: [a, b], parallel: true, fan_in: m}}
"""


def run_cost(repeat: int = 10) -> float:
    """What the process strategy adds to a whole ``tea run`` (pool start, paid once per run):
    the median run time of a 2-empty-branch fan-out on process, minus the same on thread."""
    tea_bin = Path(sys.executable).with_name("tea")
    medians = {}
    with tempfile.TemporaryDirectory() as tmp:
        for strategy in ("thread", "process"):
            path = Path(tmp) / f"{strategy}.yaml"
            path.write_text(RUN_COST_YAML.format(strategy=strategy))
            times = []
            for _ in range(repeat):
                started = time.perf_counter()
                subprocess.run([tea_bin, "run", "-q", path], check=True, stdout=subprocess.DEVNULL)
                times.append(time.perf_counter() - started)
            medians[strategy] = statistics.median(times)
    return medians["process"] - medians["thread"]


def forkserver_boot(repeat: int = 10) -> tuple[float, float]:
    """Median wall time of a fresh interpreter that imports what the forkserver preloads
    (``executors._forkserver.PRELOAD``), and of one that imports nothing: the difference
    is what a run waits for between starting its pool and its first worker."""
    from executors._forkserver import PRELOAD

    def median_of(code: str) -> float:
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    return median_of(f"import {', '.join(PRELOAD)}"), median_of("pass")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--work", type=int, default=10_000_000, help="loop iterations per branch (~0.5 s)"
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    cold, warm = pool_start()
    print(f"pool start (2 workers, first run back): cold {cold * 1000:.1f} ms (forkserver boot "
          f"included), warm {warm * 1000:.1f} ms")
    print(f"pool start paid by a `tea run` (process minus thread, same workflow): "
          f"{run_cost() * 1000:.1f} ms   [target <= 100 ms]")
    preload, bare = forkserver_boot()
    print(f"  of which the forkserver's boot: {preload * 1000:.1f} ms (a bare interpreter "
          f"{bare * 1000:.1f} ms + the workers' preload {(preload - bare) * 1000:.1f} ms)")
    one, two = dispatch_overhead()
    print(f"dispatch overhead per empty branch: {one * 1e3:.3f} ms one at a time, "
          f"{two * 1e3:.3f} ms with 2 workers   [target <= 1 ms]")
    seq, thread, warm_ratio, cold_ratio = executor_speedup(args.work, args.repeat)
    print(f"2-branch CPU fan-out, executor only (sequential {seq:.2f} s): thread {thread:.2f}x, "
          f"process {warm_ratio:.2f}x warm pool, {cold_ratio:.2f}x including pool start"
          "   [target >= 1.85x]")
    ratios = workflow_speedup(args.work, args.repeat)
    print(f"2-branch CPU fan-out, YAML workflow invoke() (sequential {ratios['sequential_s']:.2f} s):"
          f" thread {ratios['thread']:.2f}x, process {ratios['process']:.2f}x"
          "   [target >= 1.85x]")


if __name__ == "__main__":
    main()
