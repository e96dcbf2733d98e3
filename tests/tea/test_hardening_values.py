"""A node value that contains itself or nests too deeply fails its node, with a checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tea._cli_io import dumps
from tea.checkpoint import dump_json, load_checkpoint
from tea.errors import CheckpointError
from tea.state import MAX_NESTING, unsaveable

CYCLIC = """\
initial_state: {before: 1}
nodes:
  - name: first
    run: |
      return {"kept": "yes"}
  - name: n
    run: |
      d = {"a": 1}
      d["self"] = d
      return {"fine": [1, 2], "x": d}
  - name: never
    run: |
      return {"after": True}
"""

DEEP = """\
nodes:
  - name: n
    run: |
      x = []
      for _ in range(100_000):
          x = [x]
      return {"deep": x}
"""

IN_A_BRANCH = """\
nodes:
  - name: start
  - name: loops
    run: |
      ring = [1]
      ring.append([ring])
      return {"ring": ring}
  - name: plain
    run: |
      return {"ok": 1}
  - name: merge
    run: |
      return {"n": len(parallel_results)}
edges:
  - {from: start, to: [loops, plain], fan_in: merge}
"""

IN_AN_ITEM = """\
initial_state: {words: [a, b]}
nodes:
  - name: each
    type: dynamic_parallel
    items: "{{ state.words }}"
    fan_in: collect
    steps:
      - run: |
          d = {}
          d["d"] = [d]
          return {"loop": d}
  - name: collect
    run: |
      return {"n": len(parallel_results)}
"""


def tea_run(cwd: Path, text: str) -> subprocess.CompletedProcess[str]:
    (cwd / "flow.yaml").write_text(text)
    return subprocess.run([sys.executable, "-m", "tea", "run", "flow.yaml"], cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False, stdin=subprocess.DEVNULL)


def checkpoint_of(done: subprocess.CompletedProcess[str], cwd: Path) -> Path:
    line = next(x for x in done.stderr.splitlines() if x.startswith("checkpoint: "))
    return cwd / line.removeprefix("checkpoint: ")


def test_a_cyclic_value_is_a_node_error_naming_the_key_with_a_checkpoint(tmp_path):
    done = tea_run(tmp_path, CYCLIC)
    assert done.returncode == 1, done.stderr
    assert "node 'n': the value of 'x' cannot be saved: it contains itself" in done.stderr
    assert "internal error" not in done.stderr
    ckpt = load_checkpoint(checkpoint_of(done, tmp_path))
    assert (ckpt.node, ckpt.position, ckpt.reason) == ("n", "before", "error")
    assert ckpt.state == {"before": 1, "kept": "yes"}  # the failed node's update is not in it
    assert "contains itself" in ckpt.error["message"]


def test_a_value_nested_too_deeply_is_a_node_error(tmp_path):
    done = tea_run(tmp_path, DEEP)
    assert done.returncode == 1, done.stderr
    assert f"the value of 'deep' cannot be saved: it is nested more than {MAX_NESTING} levels" in done.stderr
    assert checkpoint_of(done, tmp_path).is_file()


def test_a_cyclic_value_in_a_branch_fails_the_branch(tmp_path):
    done = tea_run(tmp_path, IN_A_BRANCH)
    assert done.returncode == 1, done.stderr
    assert "start[loops]" in done.stderr and "the value of 'ring' cannot be saved: it contains itself" in done.stderr
    assert "internal error" not in done.stderr


def test_a_cyclic_value_in_a_dynamic_item_fails_the_item(tmp_path):
    done = tea_run(tmp_path, IN_AN_ITEM)
    assert done.returncode == 1, done.stderr
    assert "the value of 'loop' cannot be saved: it contains itself" in done.stderr
    assert "internal error" not in done.stderr


def test_shared_parts_are_not_cycles():
    shared: list[object] = [1, {"k": "v"}]
    layer: object = shared
    for _ in range(30):  # 2**30 paths through 30 shared layers: visited once each
        layer = [layer, layer]
    assert unsaveable({"a": shared, "b": [shared, shared], "c": layer, "n": 1}) is None
    assert unsaveable({"t": (1, [2, (3,)])}) is None


def test_the_nesting_limit():
    value: object = 1
    for _ in range(MAX_NESTING):
        value = [value]
    assert unsaveable({"v": value}) is None
    assert unsaveable({"v": [value]}) == ("v", f"it is nested more than {MAX_NESTING} levels deep")


def test_a_cycle_through_a_tuple_or_a_list_is_found():
    ring: list[object] = []
    ring.append(({"back": ring},))
    assert unsaveable({"ok": [1], "ring": ring}) == ("ring", "it contains itself")


def test_saving_a_state_that_contains_itself_names_the_key():
    loop: dict[str, object] = {}
    loop["me"] = loop
    with pytest.raises(CheckpointError, match=r"the value of state\['x'\] contains itself"):
        dump_json({"state": {"x": loop}}, "checkpoint")


def test_the_printed_output_marks_a_value_that_contains_itself():
    loop: dict[str, object] = {"a": 1}
    loop["me"] = loop
    assert json.loads(dumps({"x": loop}, indent=2)) == {"x": {"a": 1, "me": "<contains itself>"}}
