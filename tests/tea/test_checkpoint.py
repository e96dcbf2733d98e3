"""Checkpoint files and branch journals: round trips, atomicity under SIGKILL, clear errors."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from child_helpers import child_env, read_line

from executors.base import BranchResult
from tea.checkpoint import (
    FORMAT_VERSION,
    Checkpoint,
    ensure_same_workflow,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    workflow_hash,
)
from tea.errors import CheckpointError

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "name: demo\nnodes:\n  - name: a\n    run: 'return {}'\n"


def make(**changes: Any) -> Checkpoint:
    base = Checkpoint(
        workflow_hash=workflow_hash(SOURCE),
        workflow_path="/tmp/demo.yaml",
        node="review",
        position="before",
        reason="interrupt_before",
        state={"n": 3, "ratio": 0.1, "text": "héllo ✓", "items": [1, [2, {"x": None}]]},
        step=7,
    )
    return dataclasses.replace(base, **changes)


def result(branch_id: str, **state: Any) -> BranchResult:
    return BranchResult(branch_id=branch_id, success=True, update=dict(state), pid=os.getpid())


# -- round trips ----------------------------------------------------------------


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    ckpt = make(
        position="after",
        reason="error",
        pending_fanout={"node": "fan", "fan_in": "join", "journal": "fan-1-2.journal.jsonl", "branches": ["a"]},
        error={"type": "NodeError", "message": "boom", "node": "review"},
        extra={"run_id": "r1"},
    )
    path = save_checkpoint(tmp_path, ckpt)
    loaded = load_checkpoint(path)
    assert loaded.created_at
    assert loaded == dataclasses.replace(ckpt, created_at=loaded.created_at)


def test_file_is_versioned_json_with_checksum_and_a_telling_name(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "new" / "dir", make(node="my node/x"))
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == "tea-checkpoint"
    assert data["version"] == FORMAT_VERSION
    assert len(data["checksum"]) == 64
    assert path.name.startswith("my_node_x-before-")
    assert path.suffix == ".json"
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_objects_with_to_dict_are_saved_as_their_dict(tmp_path: Path) -> None:
    results = [result("fan[0]", score=1), result("fan[1]", score=2)]
    loaded = load_checkpoint(save_checkpoint(tmp_path, make(state={"parallel_results": results})))
    assert loaded.state["parallel_results"] == [r.to_dict() for r in results]
    assert BranchResult.from_dict(loaded.state["parallel_results"][1]) == results[1]


def test_an_object_without_to_dict_is_an_error_naming_its_key(tmp_path: Path) -> None:
    ckpt = make(state={"ok": 1, "results": [1, {"handle": object()}]})
    with pytest.raises(CheckpointError, match=r"state\['results'\]\[1\]\['handle'\].*object"):
        save_checkpoint(tmp_path, ckpt)
    assert list(tmp_path.iterdir()) == []


def test_redact_runs_on_state_and_error_before_writing(tmp_path: Path) -> None:
    secret = "s3cr3t-token"

    def redact(value: Any) -> Any:
        return json.loads(json.dumps(value).replace(secret, "***"))

    ckpt = make(
        state={"auth": f"Bearer {secret}", "nested": [secret]},
        error={"type": "NodeError", "message": f"bad token {secret}"},
    )
    path = save_checkpoint(tmp_path, ckpt, redact=redact)
    assert secret not in path.read_text(encoding="utf-8")
    loaded = load_checkpoint(path)
    assert loaded.state == {"auth": "Bearer ***", "nested": ["***"]}
    assert loaded.error == {"type": "NodeError", "message": "bad token ***"}


def test_workflow_hash_and_the_same_workflow_check() -> None:
    assert workflow_hash(SOURCE) == workflow_hash(SOURCE)
    assert workflow_hash(SOURCE) != workflow_hash(SOURCE + " ")
    ckpt = make()
    ensure_same_workflow(ckpt, SOURCE)
    with pytest.raises(CheckpointError, match="different version") as info:
        ensure_same_workflow(ckpt, SOURCE.replace("demo", "other"))
    assert "--force" in str(info.value)
    ensure_same_workflow(ckpt, "anything", force=True)


def test_bad_position_or_reason_is_refused() -> None:
    with pytest.raises(ValueError, match="position"):
        make(position="during")
    with pytest.raises(ValueError, match="reason"):
        make(reason="whim")


def test_latest_checkpoint_is_the_newest_readable_one(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path) is None
    save_checkpoint(tmp_path, make(step=1))
    newest = save_checkpoint(tmp_path, make(step=2))
    (tmp_path / "zzz-broken.json").write_text("{", encoding="utf-8")
    assert latest_checkpoint(tmp_path) == newest


# -- unusable files ---------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"name: a workflow\nnodes: []\n", "not a tea checkpoint"),
        (b"\xff\xfe\x00garbage", "not a tea checkpoint"),
        (b"", "not a tea checkpoint"),
        (b'{"state": {}}', "not a tea checkpoint"),
        (b"[1, 2]", "not a tea checkpoint"),
        (pickle.dumps({"state": {}, "node": "a", "version": "1.0"}), "pickle"),
    ],
)
def test_files_that_are_not_checkpoints(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_truncated_at_any_point_is_a_clear_error(tmp_path: Path) -> None:
    raw = save_checkpoint(tmp_path, make()).read_bytes()
    cut = tmp_path / "cut.json"
    for size in sorted({40, 60, len(raw) // 3, len(raw) // 2, len(raw) - 2, len(raw) - 1}):
        cut.write_bytes(raw[:size])
        with pytest.raises(CheckpointError, match="truncated or corrupt"):
            load_checkpoint(cut)


def test_a_modified_file_fails_its_checksum(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, make(state={"balance": 100}))
    path.write_text(path.read_text(encoding="utf-8").replace("100", "900"), encoding="utf-8")
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(path)


def test_another_format_version_is_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, make())
    data = json.loads(path.read_text(encoding="utf-8"))
    data["version"] = 99
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(path)


def test_a_well_formed_file_with_bad_fields_is_malformed(tmp_path: Path) -> None:
    from tea.checkpoint import _checksum

    path = save_checkpoint(tmp_path, make())
    for field, value in [("position", "sideways"), ("step", "7"), ("state", [1])]:
        data = json.loads(path.read_text(encoding="utf-8"))
        data[field] = value
        data["checksum"] = _checksum(data)
        bad = tmp_path / f"bad-{field}.json"
        bad.write_text(json.dumps(data), encoding="utf-8")
        with pytest.raises(CheckpointError, match="malformed"):
            load_checkpoint(bad)


# -- atomicity under SIGKILL ---------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from tea.checkpoint import Checkpoint, save_checkpoint
    state = {f"k{i}": "x" * 2000 + str(i) for i in range(1500)}
    ckpt = Checkpoint("h", None, "node", "after", "interrupt_after", state, 1)
    print("go", flush=True)
    while True:
        save_checkpoint(Path(sys.argv[1]), ckpt)
    """
)


def test_sigkill_during_writes_never_leaves_a_bad_checkpoint(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    kills = 12
    for _ in range(kills):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, env=child_env())
        try:
            assert read_line(proc) == b"go\n"
            time.sleep(rng.uniform(0.0, 0.25))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=20)
            assert proc.stdout is not None
            proc.stdout.close()
    written = sorted(tmp_path.glob("*.json"))
    assert written, f"no checkpoint was ever completed (seed {seed})"
    for path in written:
        assert load_checkpoint(path).state["k1499"].endswith("1499"), f"seed {seed}"
    leftovers = [p.name for p in tmp_path.iterdir() if p.suffix not in (".json", ".tmp")]
    assert leftovers == []


# -- crafted files ------------------------------------------------------------------


@pytest.mark.parametrize("journal", ["../victim.txt", "/etc/passwd", "sub/x.journal.jsonl", "x.json", 7])
def test_a_journal_path_that_leads_elsewhere_is_refused(tmp_path: Path, journal: Any) -> None:
    path = save_checkpoint(tmp_path, make(pending_fanout={"node": "review", "journal": journal}))
    with pytest.raises(CheckpointError, match=r"pending_fanout\.journal must be a journal file name"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "extra",
    [{"pending": []}, {"pending": {"f": "x"}}, {"pending": {"f": [1]}}, {"interrupt_before": "a"}],
)
def test_malformed_extra_fields_are_a_checkpoint_error(tmp_path: Path, extra: dict[str, Any]) -> None:
    path = save_checkpoint(tmp_path, make(extra=extra))
    with pytest.raises(CheckpointError, match="malformed"):
        load_checkpoint(path)


def test_resume_from_a_crafted_checkpoint_leaves_other_files_alone(
    tmp_path: Path, run_tea: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    workflow = tmp_path / "flow.yaml"
    workflow.write_text(SOURCE, encoding="utf-8")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious", encoding="utf-8")
    ckpt = make(node="a", pending_fanout={"node": "a", "journal": "../victim.txt"})
    path = save_checkpoint(tmp_path / "ckpts", ckpt)
    proc = run_tea("resume", path, "--workflow", workflow, "--force")
    assert proc.returncode == 2, proc.stderr
    assert "pending_fanout.journal" in proc.stderr and "Traceback" not in proc.stderr
    assert victim.read_text(encoding="utf-8") == "precious"
