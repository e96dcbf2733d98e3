"""Remote strategy figures on localhost SSH (three real sshd hosts, as in the tests).

    .venv/bin/python benchmarks/bench_remote.py [--branches 200] [--skip-bundle]

Prints: the frozen binary's size; the first branch of a run including the binary
upload and worker start (target <= 1.5 s); the per-branch cost once warm, 200
trivial branches over 3 hosts (target <= 5 ms); the same kind of workload through
the GNU Parallel transport (fewer branches: each job opens several ssh
connections and starts the binary), and the ratio. Needs root (test hosts) and, without
--skip-bundle, PyInstaller (the binary is built once per source hash and cached).
"""

from __future__ import annotations

import argparse
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
from executors.base import BranchTask, ParallelConfig  # noqa: E402
from remote.bundle import build_bundle, source_hash  # noqa: E402
from remote.executor import RemoteExecutor  # noqa: E402

WORKFLOW = """
name: bench
nodes:
  - name: start
  - name: work
    run: |
      return {"out": state["i"] * 2}
  - name: done
"""


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
                          path="/usr/bin:/usr/local/bin") or sys.executable  # fmt: skip
    path = root / "tea-launcher"
    path.write_text(f'#!/bin/sh\nPYTHONPATH={ROOT}:{site} exec {python} -m remote._entry "$@"\n')
    path.chmod(0o755)
    return path


def _tasks(count: int) -> list[BranchTask]:
    return [
        BranchTask(f"start[{i}]", "work", "done", {"i": i}, index=i, target=f"b{i}")
        for i in range(count)
    ]


def _settings(cluster: SshCluster, basefile: Path, name: str, **extra: object) -> dict:
    work, cache = cluster.user_dir(f"{name}-work"), cluster.user_dir(f"{name}-cache")
    return cluster.remote_settings(work, cache, basefile=str(basefile), slots=8, **extra)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--branches", type=int, default=200)
    parser.add_argument("--gnu-branches", type=int, default=48,
                        help="GNU Parallel costs ~1 s of CPU per job here: fewer, same per-branch figure")
    parser.add_argument("--skip-bundle", action="store_true", help="ship a launcher script")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tea-bench-"))
    os.environ["HOME"] = str(root)  # the test hosts' keys only, never ~/.ssh
    os.environ.pop("SSH_AUTH_SOCK", None)
    cluster = SshCluster.start(root, 3)
    try:
        graph = tea.loads(WORKFLOW, root / "bench.yaml").graph
        frozen = _frozen(args.skip_bundle)
        basefile = frozen or _launcher(root)
        if frozen is not None:
            size = frozen.stat().st_size / 1e6
            print(f"binary size                      {size:8.1f} MB   (target <= 20 MB)")
        config = ParallelConfig(strategy="remote", remote=_settings(cluster, basefile, "ssh"))
        tasks = _tasks(args.branches)
        with RemoteExecutor() as executor:
            started = time.perf_counter()
            first = next(iter(executor.run(graph, tasks[:1], config)))
            cold = time.perf_counter() - started
            assert first.success, first.error
            print(f"first branch, upload included    {cold * 1000:8.0f} ms   (target <= 1500 ms)")
            list(executor.run(graph, tasks, config))  # every host warm
            started = time.perf_counter()
            results = list(executor.run(graph, tasks, config))
            warm = (time.perf_counter() - started) / len(tasks)
            assert all(r.success for r in results)
        print(f"per branch, warm ({len(tasks)} over 3 hosts) {warm * 1000:8.2f} ms   "
              f"(target <= 5 ms)")  # fmt: skip
        if shutil.which("parallel"):
            gnu = ParallelConfig(
                strategy="remote",
                remote=_settings(cluster, basefile, "gnu", transport="gnu_parallel"),
            )
            with RemoteExecutor() as executor:
                started = time.perf_counter()
                gnu_tasks = tasks[: args.gnu_branches]
                results = list(executor.run(graph, gnu_tasks, gnu))
                per = (time.perf_counter() - started) / len(gnu_tasks)
            assert all(r.success for r in results), results[0].error
            print(f"per branch, GNU Parallel ({len(gnu_tasks)})    {per * 1000:8.2f} ms   "
                  f"({per / warm:.0f}x the direct transport)")  # fmt: skip
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
