"""SIGKILL `tea run` at random moments, resume until done: the result never changes.

The workflow has a loop, a fan-out in every round and nodes without side
effects, so however often it is killed and resumed its final state must equal
that of a run that was never interrupted, and every checkpoint left on disk
must load.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tea.checkpoint import latest_checkpoint, load_checkpoint
from tea.journal import BranchJournal

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "import sys; from tea.cli import main; sys.exit(main())"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
KILLS = 50


def loop_workflow() -> str:
    """Rounds of: tick -> fan-out (square, cube, negate) -> join -> tick ..., then finish."""
    branches = {
        "square": 'state["acc"] * state["acc"] % 1000003',
        "cube": 'pow(state["acc"], 3, 1000033)',
        "negate": '(1000037 - state["acc"]) % 1000037',
    }
    branch_nodes = "".join(
        f"""
          - name: {name}
            run: |
              import time
              time.sleep(0.02)
              return {{"v": {expr}}}
            goto: join
        """
        for name, expr in branches.items()
    )
    return textwrap.dedent(
        """
        name: kill-and-resume
        config:
          checkpoint_dir: ck
        variables:
          rounds: 4
        settings:
          parallel:
            max_workers: 3
        initial_state:
          i: 0
          acc: 1
          mix: 0
          history: []
        nodes:
          - name: tick
            run: |
              import time
              time.sleep(0.01)
              i = state["i"] + 1
              return {"i": i, "acc": (state["acc"] * 31 + i) % 1000000007}
        """
        + branch_nodes
        + """
          - name: join
            run: |
              values = [r["v"] for r in parallel_results]
              mixed = state["mix"] * 7 + sum((k + 1) * v for k, v in enumerate(values))
              return {"history": state["history"] + [values], "mix": mixed % 1000000007}
            goto:
              - if: "{{ state.i < variables.rounds }}"
                to: tick
              - to: finish
          - name: finish
            run: |
              return {"done": True, "total": sum(sum(v) for v in state["history"])}
        edges:
          - from: tick
            to: [square, cube, negate]
            parallel: true
            fan_in: join
        """
    )


def comparable(state: dict[str, Any]) -> dict[str, Any]:
    # Branch records carry pids and durations, which differ between any two runs.
    return {k: v for k, v in state.items() if k != "parallel_results"}


def start(args: list[str], events: Path, errors: Path) -> subprocess.Popen[bytes]:
    with open(events, "wb") as out, open(errors, "wb") as err:
        return subprocess.Popen([*CLI, *args, "--stream"], stdout=out, stderr=err, env=ENV)


def wait_first_event(proc: subprocess.Popen[bytes], events: Path) -> None:
    deadline = time.monotonic() + 20
    while proc.poll() is None and not events.read_bytes().strip():
        assert time.monotonic() < deadline, "the run printed no event"
        time.sleep(0.005)


def kill_and_resume(
    workdir: Path, kills_wanted: int, rng: random.Random, window: float, reference: dict[str, Any]
) -> tuple[int, int]:
    """Chains of run/resume, each killed at random until it finishes; (kills, resumes)."""
    workdir.mkdir()
    events, errors = workdir / "events.ndjson", workdir / "stderr.txt"
    deadline = time.monotonic() + 100  # a guard against a hang, not a speed check
    kills = resumes = chains = 0
    while kills < kills_wanted:
        chains += 1
        chain = workdir / f"chain{chains}"
        chain.mkdir()
        workflow = chain / "loop.yaml"
        workflow.write_text(loop_workflow(), encoding="utf-8")
        out = chain / "out.json"
        steps: list[str] = []  # what happened in this chain, for the failure message
        while True:
            assert time.monotonic() < deadline, f"too slow: {kills} kills"
            latest = latest_checkpoint(chain / "ck") if (chain / "ck").exists() else None
            if latest is None:
                args = ["run", str(workflow)]
                steps.append("run")
            else:
                resumes += 1
                args = ["resume", str(latest)]
                ckpt = load_checkpoint(latest)
                steps.append(f"resume {ckpt.reason} {ckpt.position} {ckpt.node}")
            proc = start([*args, "-o", str(out)], events, errors)
            wait_first_event(proc, events)
            if kills < kills_wanted and rng.random() < 0.9:
                time.sleep(rng.uniform(0.0, window))
                proc.send_signal(signal.SIGKILL)
            code = proc.wait(timeout=30)
            steps.append(f"-> {code}")
            if code == -signal.SIGKILL:
                kills += 1
                for path in (chain / "ck").glob("*.json"):
                    load_checkpoint(path)
                continue
            story = f"{workdir.name}/{chain.name}: {' '.join(steps)}"
            assert code == 0, f"{story}\n{errors.read_text(encoding='utf-8')}"
            final = comparable(json.loads(out.read_text(encoding="utf-8")))
            assert final == reference, f"{story}\nfinal: {final}\nreference: {reference}"
            break
    return kills, resumes


def test_sigkill_at_random_moments_then_resume_gives_the_same_state(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    events, errors = tmp_path / "events.ndjson", tmp_path / "stderr.txt"
    (tmp_path / "loop.yaml").write_text(loop_workflow(), encoding="utf-8")
    out = tmp_path / "out.json"
    proc = start(["run", str(tmp_path / "loop.yaml"), "-o", str(out)], events, errors)
    wait_first_event(proc, events)
    began = time.monotonic()
    assert proc.wait(timeout=30) == 0, errors.read_text(encoding="utf-8")
    # A kill lands within 60% of a whole run's time after a run's first event; a
    # resumed run starts further on, so together the kills cover the whole workflow.
    window = (time.monotonic() - began) * 0.6
    reference = comparable(json.loads(out.read_text(encoding="utf-8")))
    assert reference["done"] is True
    assert len(reference["history"]) == 4

    # Two killers side by side (one per core) keep the whole test well under a minute.
    with ThreadPoolExecutor(2) as pool:
        jobs = [
            pool.submit(
                kill_and_resume,
                tmp_path / f"killer{n}",
                KILLS // 2,
                random.Random(seed + n),
                window,
                reference,
            )
            for n in range(2)
        ]
        try:
            outcomes = [job.result(timeout=150) for job in jobs]
        except AssertionError as exc:
            raise AssertionError(f"{exc} (seed {seed})") from exc
    assert sum(kills for kills, _ in outcomes) >= KILLS
    assert all(resumes for _, resumes in outcomes), "no killed run left a checkpoint to resume"


def fanout_workflow(branches: int) -> str:
    """One fan-out whose branches run one at a time and log each run (the test's witness)."""
    nodes = "".join(
        f"""
  - name: b{n}
    run: |
      import time
      time.sleep(0.15)
      with open(state["log"], "a") as log:
          log.write("b{n}\\n")
      return {{"v": state["base"] + {n}}}
    goto: gather
"""
        for n in range(branches)
    )
    targets = ", ".join(f"b{n}" for n in range(branches))
    return f"""
name: durable-fanout
config:
  checkpoint_dir: ck
settings:
  parallel:
    max_workers: 1
nodes:
  - name: prep
    run: |
      return {{"base": 10}}
{nodes}
  - name: gather
    run: |
      return {{"values": [r["v"] for r in parallel_results]}}
edges:
  - from: prep
    to: [{targets}]
    parallel: true
    fan_in: gather
"""


def ran(log: Path) -> list[str]:
    """The branches that logged a run so far."""
    return log.read_text(encoding="utf-8").split() if log.exists() else []


def test_a_fanout_killed_midway_reruns_only_unfinished_branches(tmp_path: Path) -> None:
    branches = 6
    workflow = tmp_path / "fan.yaml"
    workflow.write_text(fanout_workflow(branches), encoding="utf-8")
    log, out = tmp_path / "branches.log", tmp_path / "out.json"
    events, errors = tmp_path / "events.ndjson", tmp_path / "stderr.txt"
    update = json.dumps({"log": str(log)})

    proc = start(["run", str(workflow), "-i", update], events, errors)
    deadline = time.monotonic() + 30
    # Kill once two branches have run: some are journaled, the others are not.
    while len(ran(log)) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, errors.read_text()
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    ran_first = ran(log)

    latest = latest_checkpoint(tmp_path / "ck")
    assert latest is not None, "a run killed during a fan-out left no checkpoint"
    ckpt = load_checkpoint(latest)
    assert ckpt.pending_fanout is not None, f"the last checkpoint ({ckpt.reason}) names no fan-out"
    journal = BranchJournal(tmp_path / "ck" / ckpt.pending_fanout["journal"]).load()
    finished = {f"b{r.state['v'] - 10}" for r in journal.values() if r.success}
    assert finished, "no finished branch was journaled"
    assert finished <= set(ran_first)

    log.write_text("")
    proc = start(["resume", str(latest), "-o", str(out)], events, errors)
    assert proc.wait(timeout=30) == 0, errors.read_text()
    ran_again = ran(log)
    assert sorted(ran_again) == sorted({f"b{n}" for n in range(branches)} - finished)
    state = json.loads(out.read_text(encoding="utf-8"))
    assert state["values"] == [10 + n for n in range(branches)]
