"""``tea checkpoints list`` and ``clean``: what runs leave behind, shown and removed."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from cli_helpers import tea

from tea._cli_checkpoints import human_age, human_size, parse_age

FAILING = "name: failing\nnodes:\n  - name: explode\n    run: |\n      raise KeyError('k')\n"
INTERRUPTED = "name: review\nnodes:\n  - name: draft\n    run: 'x = 1'\n  - name: approve\n    interrupt: before\n"


@pytest.fixture
def leftovers(tmp_path: Path) -> Path:
    """Two runs that left a checkpoint each in .tea-checkpoints, one backdated 10 days."""
    for name, text in (("failing.yaml", FAILING), ("review.yaml", INTERRUPTED)):
        (tmp_path / name).write_text(text, encoding="utf-8")
        assert tea("run", name, cwd=tmp_path).returncode in (1, 3)
    directory = tmp_path / ".tea-checkpoints"
    old = sorted(directory.glob("explode-*.json"))[0]
    body = json.loads(old.read_text())
    assert body["node"] == "explode"
    ten_days = time.time() - 10 * 86400
    os.utime(old, (ten_days, ten_days))
    (directory / "notes.json").write_text('{"mine": true}', encoding="utf-8")  # not tea's: left alone
    (directory / "stale.journal.jsonl").write_text("", encoding="utf-8")
    os.utime(directory / "stale.journal.jsonl", (ten_days, ten_days))
    return tmp_path


def test_list_shows_run_node_reason_age_and_size(leftovers: Path) -> None:
    proc = tea("checkpoints", "list", cwd=leftovers)
    assert proc.returncode == 0, proc.stderr
    header, *rows = proc.stdout.splitlines()
    assert header.split() == ["CHECKPOINT", "KIND", "RUN", "WORKFLOW", "NODE", "REASON", "AGE", "SIZE"]
    assert any("failing.yaml" in r and "explode" in r and "error" in r for r in rows)
    assert any("review.yaml" in r and "approve" in r and "interrupt_before" in r for r in rows)
    assert any("stale.journal.jsonl" in r and "orphan" in r for r in rows)
    assert not any("notes.json" in r for r in rows)


def test_list_as_json(leftovers: Path) -> None:
    proc = tea("checkpoints", "list", ".tea-checkpoints", "--format", "json", cwd=leftovers)
    entries = json.loads(proc.stdout)
    kinds = sorted(e["kind"] for e in entries)
    assert kinds == ["orphan", "workflow", "workflow"]
    assert all(e["size"] > 0 or e["kind"] == "orphan" for e in entries)


def test_clean_older_than_removes_only_old_files(leftovers: Path) -> None:
    directory = leftovers / ".tea-checkpoints"
    dry = tea("checkpoints", "clean", "--older-than", "7d", "--dry-run", cwd=leftovers)
    assert dry.returncode == 0 and "would remove 2 files" in dry.stderr
    assert len(list(directory.iterdir())) == 4
    proc = tea("checkpoints", "clean", "--older-than", "7d", cwd=leftovers)
    assert proc.returncode == 0, proc.stderr
    assert sorted(Path(line).name for line in proc.stdout.splitlines())[-1] == "stale.journal.jsonl"
    remaining = sorted(p.name for p in directory.iterdir())
    assert "notes.json" in remaining and len(remaining) == 2
    assert any(name.startswith("approve-") for name in remaining)


def test_clean_all_keeps_what_is_not_teas(leftovers: Path) -> None:
    directory = leftovers / ".tea-checkpoints"
    proc = tea("checkpoints", "clean", str(directory), "--all", cwd=leftovers)
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in directory.iterdir()] == ["notes.json"]
    assert tea("checkpoints", "list", cwd=leftovers).stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["clean"], "--older-than AGE or --all"),
        (["clean", "--all", "--older-than", "1d"], "--older-than AGE or --all"),
        (["clean", "--older-than", "7x"], "'7x' is not a duration"),
        (["clean", "--older-than", "soon"], "'soon' is not a duration"),
        (["list", "nowhere"], "nowhere is not a directory"),
        (["list", "--format", "yaml"], "'yaml' is not one of"),
    ],
)
def test_bad_values_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    proc = tea("checkpoints", *args, cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr and proc.stdout == ""


def test_no_default_directory_is_nothing_to_do(tmp_path: Path) -> None:
    listed = tea("checkpoints", "list", cwd=tmp_path)
    assert listed.returncode == 0 and "no checkpoints in .tea-checkpoints" in listed.stderr
    cleaned = tea("checkpoints", "clean", "--all", cwd=tmp_path)
    assert cleaned.returncode == 0 and "removed 0 files" in cleaned.stderr


def test_ages_and_sizes_read_like_a_person_writes_them() -> None:
    assert parse_age("7d").total_seconds() == 7 * 86400
    assert parse_age("1.5h").total_seconds() == 5400
    assert parse_age("2w").days == 14
    with pytest.raises(ValueError):
        parse_age("7 days")
    assert human_age(parse_age("90m")) == "1h"
    assert human_size(512) == "512 B" and human_size(2048) == "2.0 KB"
