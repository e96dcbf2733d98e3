"""settings.step_budget: one count of node steps for a whole run, branches and subgraphs included."""

from __future__ import annotations

import pickle
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import tea
from tea.errors import RunError
from tea.scope import StepBudget

BRANCHES = """\
settings:
  step_budget: {budget}
  parallel: {{strategy: {strategy}}}
nodes:
  - name: start
    run: |
      return {{"i": 0}}
  - name: spin_a
    run: |
      return {{"i": state["i"] + 1}}
    goto:
      - if: "state.i < {steps}"
        to: spin_a
      - to: merge
  - name: spin_b
    run: |
      return {{"i": state["i"] + 1}}
    goto:
      - if: "state.i < {steps}"
        to: spin_b
      - to: merge
  - name: merge
    run: |
      return {{"total": sum(r["i"] for r in parallel_results)}}
edges:
  - {{from: start, to: [spin_a, spin_b], fan_in: merge}}
"""

LOOP = """\
nodes:
  - name: spin
    run: |
      return {"i": state.get("i", 0) + 1}
    goto:
      - if: "state.i < 30"
        to: spin
      - to: __end__
"""

CALLS_A_SUBGRAPH = """\
settings: {step_budget: 20}
nodes:
  - name: first
    run: |
      return {"i": 0}
  - name: call
    subgraph: loop.yaml
"""


def branches(budget: int, steps: int, strategy: str = "thread") -> str:
    return BRANCHES.format(budget=budget, steps=steps, strategy=strategy)


def test_branches_of_a_thread_fan_out_share_the_run_budget():
    # each branch alone stays far inside the budget; together they go past it
    with pytest.raises(RunError, match="the run's step budget of 50 node steps is spent"):
        tea.loads(branches(50, 30)).invoke()
    assert tea.loads(branches(70, 30)).invoke()["total"] == 60


def test_a_process_branch_gets_what_is_left_of_the_budget():
    with pytest.raises(RunError, match="step budget of 30 node steps is spent"):
        tea.loads(branches(30, 40, "process")).invoke()
    assert tea.loads(branches(1_000, 40, "process")).invoke()["total"] == 80


def test_subgraph_steps_count_against_the_callers_budget(tmp_path: Path):
    (tmp_path / "loop.yaml").write_text(LOOP)
    (tmp_path / "flow.yaml").write_text(CALLS_A_SUBGRAPH)
    with pytest.raises(RunError, match="step budget of 20 node steps is spent") as info:
        tea.load(tmp_path / "flow.yaml").invoke()
    assert info.value.node == "spin"
    (tmp_path / "flow.yaml").write_text(CALLS_A_SUBGRAPH.replace("20", "100"))
    assert tea.load(tmp_path / "flow.yaml").invoke()["i"] == 30


def test_the_cli_stops_with_exit_1_a_checkpoint_and_the_budget_named(tmp_path: Path):
    (tmp_path / "flow.yaml").write_text(branches(50, 30))
    done = subprocess.run([sys.executable, "-m", "tea", "run", "flow.yaml"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False, stdin=subprocess.DEVNULL)
    assert done.returncode == 1, done.stderr
    assert "the run's step budget of 50 node steps is spent" in done.stderr
    assert "checkpoint: " in done.stderr
    assert "on_branch_failure" not in done.stderr  # no fan-in setting could help


@pytest.mark.parametrize("value", ["many", 0, -5, True, 2.5])
def test_a_bad_budget_is_refused(value):
    with pytest.raises(tea.TeaError, match=r"settings\.step_budget must be a positive integer"):
        tea.loads(branches(50, 3).replace("step_budget: 50", f"step_budget: {value!r}")).invoke()


def test_the_budget_counts_every_thread_and_pickles_as_what_is_used():
    budget = StepBudget(8_000)

    def spend() -> None:
        for _ in range(1_000):
            assert budget.spend()

    threads = [threading.Thread(target=spend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not budget.spend()  # exactly 8,000 steps were taken: the next one is past the limit
    alone = StepBudget(100)
    for _ in range(60):
        alone.spend()
    copy = pickle.loads(pickle.dumps(alone))
    assert (copy.limit, copy.used) == (100, 60)
    assert [copy.spend() for _ in range(41)][-2:] == [True, False]
