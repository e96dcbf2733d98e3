"""tea.journal: a fan-out's finished branches, group-committed, readable after any kill."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from child_helpers import child_env, read_line

from executors.base import BranchResult, ErrorInfo
from tea.errors import CheckpointError
from tea.journal import GROUP_SECONDS, BranchJournal

ROOT = Path(__file__).resolve().parents[2]


def result(branch_id: str, **update: Any) -> BranchResult:
    return BranchResult(branch_id=branch_id, success=True, update=dict(update), pid=os.getpid())



def test_journal_records_and_loads_by_branch_id(tmp_path: Path) -> None:
    journal = BranchJournal.new(tmp_path / "ckpts", "fan")
    assert journal.path.name.endswith(BranchJournal.SUFFIX)
    assert journal.load() == {}
    failed = BranchResult(branch_id="fan[b]", success=False, update={}, error=ErrorInfo("NodeError", "boom", "b"))
    journal.record(result("fan[a]", v=1))
    journal.record(failed)
    journal.record(result("fan[a]", v=2))
    journal.commit()
    loaded = BranchJournal(journal.path).load()
    assert loaded == {"fan[a]": result("fan[a]", v=2), "fan[b]": failed}
    journal.remove()
    journal.remove()
    assert not journal.path.exists()


@pytest.mark.parametrize("torn", [b'{"branch_id": "fan[c]", "succ', b"\x00\x00\x00\n"])
def test_torn_last_line_is_ignored_and_cut_before_the_next_record(tmp_path: Path, torn: bytes) -> None:
    path = tmp_path / "fan.journal.jsonl"
    first = BranchJournal(path)
    first.record(result("fan[a]", v=1))
    first.record(result("fan[b]", v=2))
    first.commit()
    with open(path, "ab") as out:
        out.write(torn)
    assert set(BranchJournal(path).load()) == {"fan[a]", "fan[b]"}
    resumed = BranchJournal(path)
    resumed.record(result("fan[c]", v=3))
    resumed.commit()
    assert set(BranchJournal(path).load()) == {"fan[a]", "fan[b]", "fan[c]"}


def test_a_damaged_line_before_the_last_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "fan.journal.jsonl"
    journal = BranchJournal(path)
    journal.record(result("fan[a]"))
    journal.commit()
    with open(path, "ab") as out:
        out.write(b"not json\n")
    journal.record(result("fan[b]"))
    journal.commit()
    with pytest.raises(CheckpointError, match="corrupt at line 2"):
        journal.load()


def test_journal_redacts_and_refuses_non_json(tmp_path: Path) -> None:
    journal = BranchJournal(tmp_path / "j.journal.jsonl", redact=lambda v: {"redacted": True})
    journal.record(result("fan[a]", token="secret"))
    journal.commit()
    assert "secret" not in journal.path.read_text(encoding="utf-8")
    assert journal.load()["fan[a]"].update == {"redacted": True}
    with pytest.raises(CheckpointError, match=r"branch fan\[b\].*state\['handle'\]"):
        BranchJournal(tmp_path / "k.journal.jsonl").record(result("fan[b]", handle=object()))


JOURNAL_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from executors.base import BranchResult
    from tea.journal import GROUP_SECONDS, BranchJournal
    journal = BranchJournal(Path(sys.argv[1]))
    print("go", flush=True)
    for i in range(10**6):
        journal.record(BranchResult(f"{sys.argv[2]}-{i}", True, {"pad": "p" * 5000, "i": i}))
    """
)


def test_sigkill_during_appends_leaves_a_readable_journal(tmp_path: Path) -> None:
    rng = random.Random()
    path = tmp_path / "fan.journal.jsonl"
    for child in range(8):
        proc = subprocess.Popen(
            [sys.executable, "-c", JOURNAL_WRITER, str(path), f"c{child}"],
            stdout=subprocess.PIPE,
            env=child_env(),
        )
        try:
            assert read_line(proc) == b"go\n"
            time.sleep(rng.uniform(0.0, 0.1))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=20)
            assert proc.stdout is not None
            proc.stdout.close()
        loaded = BranchJournal(path).load()
        mine = sorted(r.update["i"] for r in loaded.values() if r.branch_id.startswith(f"c{child}-"))
        assert mine == list(range(len(mine)))


def test_records_are_synced_in_groups_and_at_commit(tmp_path: Path) -> None:
    journal = BranchJournal(tmp_path / "fan.journal.jsonl")
    journal.record(result("fan[0]", i=0))
    time.sleep(GROUP_SECONDS * 2)
    journal.record(result("fan[1]", i=1))  # the group's time is up: synced with it
    assert set(BranchJournal(journal.path).load()) == {"fan[0]", "fan[1]"}
    for i in range(2, 50):
        journal.record(result(f"fan[{i}]", i=i))
    journal.commit()
    assert len(BranchJournal(journal.path).load()) == 50
    journal.commit()  # idempotent
    journal.record(result("fan[50]", i=50))  # a record after a commit reopens the file
    journal.commit()
    assert sorted(r.update["i"] for r in BranchJournal(journal.path).load().values()) == list(range(51))


def test_records_hold_the_update_not_the_base(tmp_path: Path) -> None:
    journal = BranchJournal(tmp_path / "fan.journal.jsonl")
    big = {"items": list(range(10_000))}
    journal.record(result("fan[0]", doubled=2).with_base(big))
    journal.commit()
    assert journal.path.stat().st_size < 500
    loaded = BranchJournal(journal.path).load()["fan[0]"]
    assert loaded.update == {"doubled": 2} and loaded.base is None


def test_a_record_that_cannot_be_kept_goes_to_on_error_when_set(tmp_path: Path) -> None:
    seen: list[CheckpointError] = []
    journal = BranchJournal(tmp_path / "fan.journal.jsonl")
    journal.on_error = seen.append
    journal.record(result("fan[0]", handle=object()))
    journal.record(result("fan[1]", ok=True))
    journal.commit()
    assert len(seen) == 1 and "fan[0]" in seen[0].message
    assert set(BranchJournal(journal.path).load()) == {"fan[1]"}


def test_a_held_journal_touches_the_disk_only_once_persisted(tmp_path: Path) -> None:
    """Until a checkpoint names it, a journal keeps its records in memory: a quick fan-out
    costs no file at all; once persisted, what was held and what follows are on disk."""
    journal = BranchJournal.new(tmp_path, "fan", held=True)
    journal.record(result("fan[0]", i=0))
    journal.commit()
    assert not journal.path.exists()
    journal.persist()
    journal.record(result("fan[1]", i=1))
    journal.commit()
    assert set(BranchJournal(journal.path).load()) == {"fan[0]", "fan[1]"}
