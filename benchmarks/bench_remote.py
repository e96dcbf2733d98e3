"""Remote strategy figures on localhost SSH (three real sshd hosts, as in the tests).

    .venv/bin/python benchmarks/bench_remote.py [--branches 200] [--skip-bundle]

Prints: the frozen binary's size; the first branch of a run including the binary
upload and worker start (target <= 1.5 s); the per-branch cost once warm, 200
trivial branches over 3 hosts (target <= 0.5 ms); CPU-bound Python on one host with
slots: 2 against slots: 1 (target >= 1.8x on 2 cores); `tea hosts check` on 3 hosts
(target <= 1 s) and what a preflight adds to a run (target <= 300 ms); the bytes
sent for 1,000 branches of a dynamic fan-out whose shared state is 1 MiB, counted by
the transport (goal: <= 3 x 1 MiB + the branches' own items); the GNU Parallel
transport's cost per branch, cold (a new run: hosts set up, binary sent, servers
started) and warm (target <= 100 ms). Needs root (test hosts) and, without
--skip-bundle, PyInstaller (the binary is built once per source hash and cached).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "remote")]

from sshd_hosts import SshCluster  # noqa: E402

import tea  # noqa: E402
from executors.base import BranchProgram, BranchTask, ParallelConfig  # noqa: E402
from remote.bundle import build_bundle, source_hash  # noqa: E402
from remote.check import check_hosts  # noqa: E402
from remote.executor import RemoteExecutor  # noqa: E402
from remote.payload import SharedState, program_payload, task_message  # noqa: E402

WORKFLOW = """
name: bench
nodes:
  - name: start
  - name: work
    run: |
      return {"out": state["i"] * 2}
  - name: done
"""

CPU_WORKFLOW = """
name: bench_cpu
nodes:
  - name: start
  - name: work
    run: |
      total = 0
      for i in range(8_000_000):
          total += i * i % 7
      return {"total": total}
  - name: done
"""

ITEMS_WORKFLOW = """
name: bench_items
nodes:
  - name: each
    type: dynamic_parallel
    items: "{{ state.items }}"
    fan_in: done
    steps:
      - run: |
          return {"double": state["item"] * 2}
  - name: done
"""
MIB = 1 << 20


def _frozen(skip: bool) -> Path | None:
    if skip:
        return None
    target = ROOT / ".cache" / "tea-bundle" / source_hash() / "tea"
    if not target.exists():
        print("building the frozen binary (once per source hash)...", flush=True)
        build_bundle(target)
    return target


def _launcher(root: Path) -> Path:
    site = next(p for p in sys.path if p.endswith("site-packages") and p.startswith(sys.prefix))
    python = shutil.which(f"python{sys.version_info.major}.{sys.version_info.minor}",
                          path="/usr/bin:/usr/local/bin") or sys.executable
    path = root / "tea-launcher"
    path.write_text(f'#!/bin/sh\nPYTHONPATH={ROOT}:{site} exec {python} -m remote._entry "$@"\n')
    path.chmod(0o755)
    return path


def _tasks(count: int) -> list[BranchTask]:
    """Branches as the engine makes them: one shared input, each its own overrides."""
    shared = {"run": "bench"}
    return [
        BranchTask(f"start[{i}]", "work", "done", shared, index=i, target=f"b{i}", overrides={"i": i})
        for i in range(count)
    ]


def _config(cluster: SshCluster, basefile: Path, name: str, **extra: object) -> ParallelConfig:
    work, cache = cluster.user_dir(f"{name}-work"), cluster.user_dir(f"{name}-cache")
    settings = cluster.remote_settings(work, cache, basefile=str(basefile), slots=8, **extra)
    return ParallelConfig(strategy="remote", options=RemoteExecutor.parse_options(settings))


def _shared_state_bytes(cluster: SshCluster, basefile: Path, root: Path, branches: int) -> None:
    """Issue 16's remote figure: what the transport sent for ``branches`` items over a
    1 MiB shared state. Goal: the state and the program once per host, plus each
    branch's own line (its item and index), nothing proportional to branches x state."""
    program: BranchProgram = tea.loads(ITEMS_WORKFLOW, root / "items.yaml").branch_program()
    items = list(range(branches))
    filler = MIB - len(json.dumps({"items": items, "blob": ""}, separators=(",", ":")))
    shared = {"items": items, "blob": "x" * filler}
    tasks = [
        BranchTask(f"each[{i}]", "each", None, shared, index=i, target="each", fanout="each",
                   overrides={"item": i, "index": i})
        for i in range(branches)
    ]
    key, load = program_payload(program, tasks)
    state = SharedState.encode(shared)
    assert isinstance(state, SharedState)
    per_host = len(state.message()) + 1 + len(_line({"op": "load", "key": key, **load})) + 1
    own = sum(len(_line({"op": "run", "id": str(i + 1), "key": key, "state": state.key, "task": task_message(t)})) + 1
              for i, t in enumerate(tasks))
    with RemoteExecutor() as executor:
        started = time.perf_counter()
        results = list(executor.run(program, tasks, _config(cluster, basefile, "state")))
        elapsed = time.perf_counter() - started
        sent = executor.traffic()
    assert all(r.success for r in results), next(r.error for r in results if not r.success)
    total, goal = sum(sent.values()), 3 * per_host + own
    print(f"bytes sent, {branches} branches over a {len(state.text) / MIB:.2f} MiB shared state, 3 hosts "
          f"{total / MIB:6.3f} MiB   (goal <= 3 x (state + program) + branch lines = {goal / MIB:.3f} MiB; "
          f"branch lines {own / 1024:.0f} KiB; by host {', '.join(f'{n / MIB:.3f}' for n in sent.values())}; "
          f"{elapsed:.1f} s)")


def _line(message: dict[str, object]) -> str:
    return json.dumps(message, separators=(",", ":"))


def _cpu_bound(cluster: SshCluster, basefile: Path, root: Path) -> None:
    """Issue 11: CPU-bound Python branches on one host, slots 2 against slots 1."""
    program: BranchProgram = tea.loads(CPU_WORKFLOW, root / "cpu.yaml").branch_program()
    tasks = _tasks(4)
    took = {}
    for slots in (1, 2):
        settings = cluster.remote_settings(cluster.user_dir(f"cpu{slots}-work"), cluster.user_dir(f"cpu{slots}-cache"),
                                           basefile=str(basefile), hosts=[cluster.hosts[0].login], slots=slots)
        config = ParallelConfig(strategy="remote", options=RemoteExecutor.parse_options(settings))
        with RemoteExecutor() as executor:
            assert all(r.success for r in executor.run(program, tasks[:slots], config))  # warm: every process
            runs = []
            for _ in range(3):  # the best of three: other work on the machine only slows a run
                started = time.perf_counter()
                assert all(r.success for r in executor.run(program, tasks, config))
                runs.append(time.perf_counter() - started)
            took[slots] = min(runs)
    print(f"CPU-bound, 4 branches on one host      slots 1 {took[1]:.2f} s, slots 2 {took[2]:.2f} s: "
          f"{took[1] / took[2]:.2f}x   (target >= 1.8x on 2 cores)")


def _checks(cluster: SshCluster, basefile: Path, program: BranchProgram) -> None:
    """Issue 11: `tea hosts check` on the 3 hosts, and what a preflight adds to a run."""
    config = _config(cluster, basefile, "check")
    check_hosts(config.options)  # the binary is not there yet: a first check reads nothing cached
    started = time.perf_counter()
    reports = check_hosts(config.options)
    checked = time.perf_counter() - started
    assert all(r.ok for r in reports), reports
    print(f"hosts check, 3 hosts                   {checked * 1000:8.0f} ms   (target <= 1000 ms)")
    tasks = _tasks(6)
    runs: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(3):
        for preflight in (False, True):
            with RemoteExecutor() as executor:
                started = time.perf_counter()
                if preflight:
                    executor.preflight([config])
                assert all(r.success for r in executor.run(program, tasks, config))
                runs[preflight].append(time.perf_counter() - started)
    added = min(runs[True]) - min(runs[False])
    print(f"preflight added to a run (3 hosts)     {added * 1000:8.0f} ms   (target <= 300 ms; "
          f"run {min(runs[False]) * 1000:.0f} ms without, {min(runs[True]) * 1000:.0f} ms with)")


def _gnu_parallel(cluster: SshCluster, basefile: Path, program: BranchProgram, count: int, warm: float) -> None:
    """The GNU Parallel transport per branch: a new run (cold), then a second batch (warm)."""
    gnu = _config(cluster, basefile, "gnu", transport="gnu_parallel")
    tasks = _tasks(count)
    with RemoteExecutor() as executor:
        started = time.perf_counter()
        results = list(executor.run(program, tasks, gnu))
        cold = (time.perf_counter() - started) / count
        assert all(r.success for r in results), results[0].error
        started = time.perf_counter()
        results = list(executor.run(program, tasks, gnu))
        hot = (time.perf_counter() - started) / count
        assert all(r.success for r in results), results[0].error
    print(f"per branch, GNU Parallel ({count}), cold   {cold * 1000:8.1f} ms   (target <= 100 ms)")
    print(f"per branch, GNU Parallel ({count}), warm   {hot * 1000:8.1f} ms   ({hot / warm:.0f}x the direct transport)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--branches", type=int, default=200)
    parser.add_argument("--gnu-branches", type=int, default=96,
                        help="branches per GNU Parallel batch (each job costs GNU Parallel about 60 ms here)")
    parser.add_argument("--state-branches", type=int, default=1000,
                        help="branches over a 1 MiB shared state (the bytes-sent figure)")
    parser.add_argument("--skip-bundle", action="store_true", help="ship a launcher script")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tea-bench-"))
    os.environ["HOME"] = str(root)  # the test hosts' keys only, never ~/.ssh
    os.environ.pop("SSH_AUTH_SOCK", None)
    cluster = SshCluster.start(root, 3)
    try:
        program = tea.loads(WORKFLOW, root / "bench.yaml").branch_program()
        frozen = _frozen(args.skip_bundle)
        basefile = frozen or _launcher(root)
        if frozen is not None:
            size = frozen.stat().st_size / 1e6
            print(f"binary size                      {size:8.1f} MB   (target <= 20 MB)")
        config = _config(cluster, basefile, "ssh")
        tasks = _tasks(args.branches)
        with RemoteExecutor() as executor:
            started = time.perf_counter()
            first = next(iter(executor.run(program, tasks[:1], config)))
            cold = time.perf_counter() - started
            assert first.success, first.error
            print(f"first branch, upload included    {cold * 1000:8.0f} ms   (target <= 1500 ms)")
            list(executor.run(program, tasks, config))  # every host warm
            warm = float("inf")
            for _ in range(8):  # the best of eight: other work on the machine only slows a run
                started = time.perf_counter()
                results = list(executor.run(program, tasks, config))
                warm = min(warm, (time.perf_counter() - started) / len(tasks))
                assert all(r.success for r in results)
        print(f"per branch, warm ({len(tasks)} over 3 hosts) {warm * 1000:8.2f} ms   "
              f"(target <= 0.5 ms)")
        _shared_state_bytes(cluster, basefile, root, args.state_branches)
        _cpu_bound(cluster, basefile, root)
        _checks(cluster, basefile, program)
        if shutil.which("parallel"):
            _gnu_parallel(cluster, basefile, program, args.gnu_branches, warm)
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
