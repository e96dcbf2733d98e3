"""How the dask strategy performs (issue 15), each figure next to its goal.

Run: ``.venv/bin/python benchmarks/bench_dask.py [--repeat 3]``

* per-branch overhead: a 200-item dynamic fan-out of trivial branches through
  ``Workflow.invoke`` on an external cluster (a ``dask scheduler`` and two single-threaded
  ``dask worker`` processes started here), minus the same run on threads, per branch;
* speed-up: two CPU-bound Python branches on those two workers against the same two
  nodes in sequence;
* a 10,000-item dynamic fan-out (each branch doubles its item, the fan-in sums) through a
  whole ``tea run`` on the embedded LocalCluster, against a whole Python process that
  starts a LocalCluster of the same shape and maps the items one Dask task each
  (``client.map``), as someone using Dask itself would.

Every run is repeated and the best time kept. Timing depends on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

FAN_OUT = """
name: bench-dask-items
settings:
  parallel:
    strategy: {strategy}
    dask: {{address: "{address}"}}
nodes:
  - name: each
    type: dynamic_parallel
    items: "{{{{ state.items }}}}"
    item_var: x
    fan_in: total
    steps:
      - run: |
          return {{"y": state["x"] * 2}}
  - name: total
    run: |
      return {{"total": sum(r["y"] for r in parallel_results)}}
"""

CPU_NODES = """
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

PARALLEL = """
name: bench-dask-cpu
settings:
  parallel:
    strategy: dask
    dask: {{address: "{address}"}}
nodes:
  - name: start
""" + CPU_NODES + """  - name: merge
    run: |
      return {{"branches": len(parallel_results)}}
edges:
  - {{from: start, to: [left, right], parallel: true, fan_in: merge}}
  - {{from: merge, to: __end__}}
"""

SEQUENTIAL = """
name: bench-dask-sequential
nodes:
""" + CPU_NODES

DASK_MAP = """
import sys, time
started = time.perf_counter()
import dask, distributed

def double(x):
    return x * 2

if __name__ == "__main__":
    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1,
                                           dashboard_address="127.0.0.1:0")
    client = distributed.Client(cluster)
    total = sum(client.gather(client.map(double, range(int(sys.argv[1])))))
    client.close()
    cluster.close()
    print(total, time.perf_counter() - started)
"""


def best(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def line(label: str, figure: str, goal: str, ok: bool) -> None:
    print(f"{label:<62} {figure:>12}  [goal {goal}] {'ok' if ok else 'MISSED'}", flush=True)


@contextmanager
def external_cluster(workdir: Path) -> Iterator[str]:
    """A ``dask scheduler`` and two single-threaded ``dask worker`` processes; its address."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    info = workdir / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    procs = [subprocess.Popen([BIN / "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--dashboard-address", "127.0.0.1:0", "--scheduler-file", info], **quiet)]
    try:
        deadline = time.monotonic() + 60
        while not (info.exists() and info.read_text().strip()):
            if time.monotonic() > deadline:
                raise RuntimeError("the dask scheduler did not start")
            time.sleep(0.05)
        address = json.loads(info.read_text())["address"]
        for _ in range(2):
            procs.append(subprocess.Popen([BIN / "dask", "worker", address, "--nthreads", "1",
                                           "--no-nanny", "--local-directory", workdir], **quiet))
        import distributed

        with distributed.Client(address, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=30)


def overhead(address: str, repeat: int) -> float:
    """Seconds per branch that dask adds to a 200-branch fan-out over threads."""
    import tea

    given = {"items": list(range(200))}
    times = {}
    for strategy in ("thread", "dask"):
        flow = tea.loads(FAN_OUT.format(strategy=strategy, address=address))
        assert flow.invoke(given)["total"] == 39800
        times[strategy] = best(repeat, lambda flow=flow: flow.invoke(given))
    return (times["dask"] - times["thread"]) / 200


def speedup(address: str, work: int, repeat: int) -> float:
    import tea

    sequential = tea.loads(SEQUENTIAL.format(n=work))
    parallel = tea.loads(PARALLEL.format(n=work, address=address))
    assert parallel.invoke({})["branches"] == 2
    return best(repeat, lambda: sequential.invoke({})) / best(repeat, lambda: parallel.invoke({}))


def wide(items: int, repeat: int, workdir: Path) -> tuple[float, float]:
    """Seconds for ``tea run`` of the fan-out on the embedded cluster, and for Dask's own map."""
    flow = workdir / "items.yaml"
    flow.write_text(FAN_OUT.format(strategy="dask", address="").replace('    dask: {address: ""}\n', ""))
    given = workdir / "items.json"
    given.write_text(json.dumps({"items": list(range(items))}))
    expected = items * (items - 1)
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}

    def tea_run() -> None:
        done = subprocess.run([BIN / "tea", "run", "-q", flow, "-i", f"@{given}"], capture_output=True,
                              text=True, env=env, check=True)
        assert json.loads(done.stdout)["total"] == expected

    def dask_map() -> None:
        done = subprocess.run([sys.executable, "-c", DASK_MAP, str(items)], capture_output=True,
                              text=True, env=env, check=True)
        assert int(done.stdout.split()[0]) == expected

    return best(repeat, tea_run), best(repeat, dask_map)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=int, default=10_000_000, help="loop iterations per CPU branch")
    parser.add_argument("--items", type=int, default=10_000)
    args = parser.parse_args()
    print("dask strategy (issue 15)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        with external_cluster(Path(tmp)) as address:
            per_branch = overhead(address, args.repeat)
            line("per-branch overhead over threads, 200 branches, 2 workers", f"{per_branch * 1e3:.2f} ms",
                 "<= 2 ms", per_branch <= 0.002)
            ratio = speedup(address, args.work, args.repeat)
            line("2 CPU-bound branches on 2 workers vs in sequence", f"{ratio:.2f}x", ">= 1.7x", ratio >= 1.7)
        ours, theirs = wide(args.items, args.repeat, Path(tmp))
        line(f"{args.items:,}-item fan-out, embedded LocalCluster, whole tea run", f"{ours:.2f} s",
             "<= 5 s", ours <= 5.0)
        line("the same mapped one Dask task per item (client.map), whole run", f"{theirs:.2f} s",
             f">= 3x ours: {theirs / ours:.1f}x", theirs >= 3 * ours)


if __name__ == "__main__":
    main()
