"""The journal of a fan-out in progress: its finished branches, one JSON line each.

A durable run (``tea.durable``) keeps one per fan-out, beside its checkpoint
(``*.journal.jsonl``); a resumed fan-out runs only the branches the journal does
not hold. Records are deltas (``BranchResult.to_dict``: the branch's own updates),
so a journal grows with what the branches wrote, not with the state.

Group commit: records are appended as branches finish and written out and made
durable (flush + fsync) together: a record arriving when the last sync is older
than ``GROUP_SECONDS`` syncs the group at once (so a lone slow branch is durable
as it finishes), a burst of quick ones shares one sync, and ``commit()`` syncs
the rest: before the fan-in runs and when the run stops. After a SIGKILL or a
power loss, a resume re-runs at most the branches of the last group not yet
synced (at-least-once). A torn last line is ignored and cut off before the next
append.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from executors.base import BranchResult
from tea.checkpoint import dump_json, unique_name
from tea.errors import CheckpointError

__all__ = ["GROUP_SECONDS", "BranchJournal"]

GROUP_SECONDS = 0.005


class BranchJournal:
    """The finished branches of one fan-out. Thread-safe; one process at a time."""

    SUFFIX = ".journal.jsonl"

    def __init__(
        self, path: Path, *, redact: Callable[[Any], Any] | None = None, held: bool = False
    ) -> None:
        """``held``: keep records in memory until ``persist()`` (nothing names the journal
        yet: a fan-out that ends first never touches the disk)."""
        self.path = Path(path)
        self._redact = redact
        self._lock = threading.Lock()
        self._held: list[bytes] | None = [] if held else None
        self._out: IO[bytes] | None = None
        self._dirty = False
        # The first group starts as the fan-out does: branches that finish within
        # GROUP_SECONDS of it share one sync (a fan-out of quick branches syncs once, at
        # commit); a branch finishing later is synced as it finishes.
        self._synced_at = time.monotonic()
        self._tail_checked = False
        self.on_error: Callable[[CheckpointError], None] | None = None
        """Called when a record cannot be kept (the run goes on, less resumable)."""

    @classmethod
    def new(
        cls, directory: Path, node: str, *, redact: Callable[[Any], Any] | None = None, held: bool = False
    ) -> BranchJournal:
        """A journal with a fresh name in ``directory`` for a fan-out at ``node``."""
        return cls(Path(directory) / f"{unique_name(node)}{cls.SUFFIX}", redact=redact, held=held)

    def persist(self) -> None:
        """Write what is held to the file, durably, and record straight to it from now on
        (a checkpoint is about to name this journal)."""
        with self._lock:
            held, self._held = self._held, None
            if not held:
                return
            try:
                out = self._open()
                out.write(b"".join(held))
                self._dirty = True
                self._sync(out)
            except OSError as exc:
                self._report(CheckpointError(f"cannot write journal {self.path}: {exc.strerror}"))

    def done(self) -> dict[str, BranchResult]:
        """The results recorded so far (``Journal`` protocol)."""
        return self.load()

    def record(self, result: BranchResult) -> None:
        """Append ``result``; it reaches the file, durably, with its group (or at ``commit``)."""
        try:
            line = self._encode(result)
            with self._lock:
                if self._held is not None:
                    self._held.append(line)
                    return
                out = self._open()
                out.write(line)
                self._dirty = True
                if time.monotonic() - self._synced_at >= GROUP_SECONDS:
                    self._sync(out)
        except CheckpointError as exc:
            self._report(exc)
        except OSError as exc:
            self._report(CheckpointError(f"cannot write journal {self.path}: {exc.strerror}"))

    def commit(self) -> None:
        """Make every record durable and close the file (``Journal`` protocol). Held
        records stay held: no checkpoint names them."""
        with self._lock:
            out, self._out = self._out, None
            if out is None:
                return
            try:
                if self._dirty:
                    self._sync(out)
            except OSError as exc:
                self._report(CheckpointError(f"cannot sync journal {self.path}: {exc.strerror}"))
            finally:
                out.close()

    def _encode(self, result: BranchResult) -> bytes:
        data = result.to_dict()
        if self._redact is not None:
            data["state"] = self._redact(data["state"])
            if data.get("error") is not None:
                data["error"] = self._redact(data["error"])
        return (dump_json(data, f"result of branch {result.branch_id}") + "\n").encode("utf-8")

    def _open(self) -> IO[bytes]:
        if self._out is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._out = open(self.path, "ab")  # noqa: SIM115 - kept open for the fan-out's life
            if not self._tail_checked:
                self._cut_torn_tail(self._out)
                self._tail_checked = True
        return self._out

    def _sync(self, out: IO[bytes]) -> None:
        # The file's entry in the directory is made durable by the synced checkpoint that
        # names this journal (a stop, an error: same directory), never needed before.
        out.flush()
        os.fsync(out.fileno())
        self._dirty = False
        self._synced_at = time.monotonic()

    def _report(self, exc: CheckpointError) -> None:
        if self.on_error is None:
            raise exc
        self.on_error(exc)

    def _cut_torn_tail(self, out: IO[bytes]) -> None:
        # A line torn by a kill would otherwise glue itself to the next record
        # and turn into a damaged line in the middle of the journal.
        if out.seek(0, os.SEEK_END) == 0:
            return
        content = self.path.read_bytes()
        body = content[:-1] if content.endswith(b"\n") else content
        start = body.rfind(b"\n") + 1
        if not content.endswith(b"\n") or self._parse(body[start:]) is None:
            out.truncate(start)
            out.seek(0, os.SEEK_END)

    def load(self) -> dict[str, BranchResult]:
        """The recorded results by branch id (a later record of a branch wins).

        A missing journal holds nothing; a torn last line is ignored; a damaged
        line before it is a ``CheckpointError``.
        """
        try:
            content = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise CheckpointError(f"cannot read journal {self.path}: {exc}") from exc
        lines = content.split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        results: dict[str, BranchResult] = {}
        for number, line in enumerate(lines, start=1):
            result = self._parse(line)
            if result is None:
                if number == len(lines):
                    break
                raise CheckpointError(f"journal {self.path} is corrupt at line {number}")
            results[result.branch_id] = result
        return results

    @staticmethod
    def _parse(line: bytes) -> BranchResult | None:
        try:
            data = json.loads(line.decode("utf-8"))
            return BranchResult.from_dict(data) if isinstance(data, dict) else None
        except (UnicodeDecodeError, ValueError, TypeError):
            return None

    def remove(self) -> None:
        """Delete the journal (the fan-out is over and its fan-in has run)."""
        self.commit()
        self.path.unlink(missing_ok=True)
