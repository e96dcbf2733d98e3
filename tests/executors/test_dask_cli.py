"""The dask strategy through ``tea run`` as a user runs it: finding the cluster, clear errors,
SIGTERM and Ctrl-C with a resume, and the example on the embedded LocalCluster."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_dask_cluster import BIN, ROOT, WAIT_SECONDS, Cluster

from tea.checkpoint import load_checkpoint

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    made = Cluster(tmp_path_factory.mktemp("dask"))
    try:
        made.running()
        yield made
    finally:
        made.close()


FLOW = """
name: dask-cli
settings:
  parallel:
    strategy: dask
nodes:
  - name: each
    type: dynamic_parallel
    items: "{{ state.xs }}"
    fan_in: total
    steps:
      - run: |
          import os, time
          open(os.path.join(state["dir"], f"{state['item']}-{time.time_ns()}"), "w").close()
          while state["item"] >= state.get("slow_from", 99) and not os.path.exists(state["dir"] + "/go"):
              time.sleep(0.05)
          return {"y": state["item"] * 2, "pid": os.getpid()}
  - name: total
    run: |
      return {"total": sum(r["y"] for r in parallel_results), "pids": sorted({r["pid"] for r in parallel_results})}
"""


def run_tea(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BIN / "tea", *map(str, args)], capture_output=True, text=True, timeout=90,
                          env=env or os.environ.copy())


def test_the_cli_finds_the_cluster_by_variable_and_by_set(cluster, tmp_path):
    pids = cluster.running()
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW)
    given = json.dumps({"xs": [1, 2, 3], "dir": str(tmp_path)})
    by_variable = run_tea("run", flow, "-i", given, env={**cluster.env, "DASK_SCHEDULER_ADDRESS": cluster.address})
    by_set = run_tea("run", flow, "-i", given, "--set", f"settings.parallel.dask.address={cluster.address}",
                 env=cluster.env)
    for done in (by_variable, by_set):
        assert done.returncode == 0, done.stderr
        final = json.loads(done.stdout)
        assert final["total"] == 12 and set(final["pids"]) <= pids
        assert done.stderr == ""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_cli_says_what_is_wrong_with_the_scheduler(tmp_path):
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW)
    given = json.dumps({"xs": [1], "dir": str(tmp_path)})
    address = f"tcp://127.0.0.1:{free_port()}"
    unreachable = run_tea("run", flow, "-i", given, "--set", f"settings.parallel.dask.address={address}",
                      "--set", "settings.parallel.dask.connect_timeout=1")
    assert unreachable.returncode == 1
    assert f"no Dask scheduler answered at {address} (settings.parallel.dask.address)" in unreachable.stderr
    bad = run_tea("run", flow, "-i", given, "--set", "settings.parallel.dask.address=scheduler")
    assert bad.returncode == 2
    assert "settings.parallel.dask.address is not a Dask scheduler address" in bad.stderr
    for done in (unreachable, bad):
        assert "Traceback" not in done.stderr


UNPICKLABLE = """
name: dask-unpicklable
settings:
  parallel: {strategy: dask}
nodes:
  - name: connect
    run: |
      import threading
      return {"db": {"conn": threading.Lock()}}
  - name: each
    type: dynamic_parallel
    items: "{{ state.xs }}"
    fan_in: total
    steps:
      - run: |
          return {"y": state["item"]}
  - name: total
    run: |
      return {"total": len(parallel_results)}
edges:
  - {from: connect, to: each}
"""


def test_the_cli_names_the_state_key_that_cannot_be_pickled(tmp_path):
    flow = tmp_path / "flow.yaml"
    flow.write_text(UNPICKLABLE)
    done = run_tea("run", flow, "-i", '{"xs": [1, 2]}', "-c", tmp_path / "ck")
    assert done.returncode == 1
    assert "state key 'db.conn' of the fan-out's shared input cannot be pickled" in done.stderr
    assert "Traceback" not in done.stderr


def test_sigterm_cancels_the_tasks_and_resume_runs_only_unfinished_branches(cluster, tmp_path):
    cluster.running()
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW)
    runs = tmp_path / "runs"
    runs.mkdir()
    # One fast and one slow branch: one each for the two single-threaded workers.
    given = json.dumps({"xs": [0, 1], "slow_from": 1, "dir": str(runs)})
    proc = subprocess.Popen(
        [BIN / "tea", "run", flow, "-i", given, "-c", tmp_path / "ck", "--stream",
         "--set", f"settings.parallel.dask.address={cluster.address}",
         "--set", "settings.parallel.dask.chunk_size=1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.env,
    )
    try:
        event: dict[str, Any] = {}
        while event.get("type") != "branch_end":  # the fast one is done...
            event = json.loads(read_line(proc))
        assert event["branch"] == "each[0]"
        deadline = time.monotonic() + WAIT_SECONDS
        while len(list(runs.iterdir())) < 2:  # ...and the slow one runs
            assert time.monotonic() < deadline and proc.poll() is None, "the slow branch never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=WAIT_SECONDS)
    finally:
        proc.kill()
        proc.wait(timeout=WAIT_SECONDS)
    assert proc.returncode == 143, err
    (checkpoint,) = [p for p in (tmp_path / "ck").glob("*.json") if load_checkpoint(p).reason == "signal"]
    (runs / "go").touch()  # from now on the slow branches finish at once
    resumed = subprocess.run([BIN / "tea", "resume", checkpoint], capture_output=True, text=True,
                             timeout=90, env=cluster.env)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["total"] == 2
    started = sorted(p.name.split("-")[0] for p in runs.iterdir() if p.name != "go")
    assert started == ["0", "1", "1"]  # only the unfinished one ran again


def test_ctrl_c_in_the_terminal_stops_the_embedded_cluster_cleanly(tmp_path):
    """SIGINT reaches the whole process group, the cluster's workers too: they leave it to tea."""
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW)
    runs = tmp_path / "runs"
    runs.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    given = json.dumps({"xs": [0, 1], "slow_from": 0, "dir": str(runs)})
    proc = subprocess.Popen([BIN / "tea", "run", flow, "-i", given, "-c", tmp_path / "ck"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while len(list(runs.iterdir())) < 2:
            assert time.monotonic() < deadline and proc.poll() is None, "the branches never started"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=WAIT_SECONDS)
    finally:
        proc.kill()
        proc.wait(timeout=WAIT_SECONDS)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    (checkpoint,) = [p for p in (tmp_path / "ck").glob("*.json") if load_checkpoint(p).reason == "signal"]
    (runs / "go").touch()
    resumed = run_tea("resume", checkpoint, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["total"] == 2


def read_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], WAIT_SECONDS)
    assert ready and proc.poll() is None, "tea run said nothing in time"
    return proc.stdout.readline()


def test_the_example_runs_on_the_embedded_local_cluster(tmp_path):
    out = tmp_path / "out.json"
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    done = run_tea("run", ROOT / "examples" / "dask_fanout.yaml", "-o", out, "-q", env=env)
    assert done.returncode == 0, done.stderr
    final = json.loads(out.read_text())
    assert final["primes"] == [2262, 3245, 4203, 5133]
    assert final["ran_in_workers"] is True
