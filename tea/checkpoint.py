"""Checkpoint files and the per-branch journal of a fan-out.

A checkpoint is one JSON document (never pickle: loading one never runs code)::

    {"format": "tea-checkpoint", "version": 1,
     "workflow_hash": ..., "workflow_path": ..., "node": ..., "position": "before"|"after",
     "reason": ..., "step": ..., "state": {...}, "pending_fanout": ..., "error": ...,
     "created_at": ..., "extra": {...},
     "checksum": sha256 of the canonical body (every other key, sorted, compact)}

It is written atomically: a hidden temporary file in the same directory is
written, flushed and fsynced, renamed over the final name, and the directory is
fsynced, so a process killed at any moment leaves either no file or a whole one
under ``<node>-<position>-<utc ms>-<random>.json``.

A fan-out in progress journals each finished branch as one JSON line in a file
beside its checkpoint (``*.journal.jsonl``), fsynced per line; a resumed fan-out
runs only the branches the journal does not hold. A torn last line (the process
died mid-append) is ignored and cut off before the next append.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from executors.base import BranchResult
from tea.errors import CheckpointError

__all__ = [
    "FORMAT_VERSION",
    "POSITIONS",
    "REASONS",
    "BranchJournal",
    "Checkpoint",
    "ensure_same_workflow",
    "latest_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
    "workflow_hash",
]

FORMAT_VERSION = 1
FORMAT_NAME = "tea-checkpoint"
POSITIONS = ("before", "after")
REASONS = ("interrupt_before", "interrupt_after", "error", "signal", "fanout", "progress")
"""``fanout``: saved as a fan-out starts; ``progress``: at a node boundary (SIGKILL insurance)."""

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.]+")
_PICKLE_MAGIC = b"\x80"


@dataclass(frozen=True)
class Checkpoint:
    """Where a run stopped and the state it had there.

    ``position`` is ``"before"`` when ``node`` has not run (resume runs it) and
    ``"after"`` when it has (resume goes on with its successor).
    ``pending_fanout`` describes a fan-out in progress:
    ``{"node", "fan_in", "journal": <file name beside the checkpoint>, "branches": [ids]}``.
    """

    workflow_hash: str
    workflow_path: str | None
    node: str
    position: str
    reason: str
    state: dict[str, Any]
    step: int
    pending_fanout: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    created_at: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.position not in POSITIONS:
            raise ValueError(f"checkpoint position must be one of {POSITIONS}: {self.position!r}")
        if self.reason not in REASONS:
            raise ValueError(f"checkpoint reason must be one of {REASONS}: {self.reason!r}")


def workflow_hash(source_text: str) -> str:
    """The sha256 (hex) of a workflow's source text, as recorded in its checkpoints."""
    return hashlib.sha256(source_text.encode("utf-8")).hexdigest()


def ensure_same_workflow(ckpt: Checkpoint, source_text: str, *, force: bool = False) -> None:
    """Raise ``CheckpointError`` unless ``source_text`` is the workflow ``ckpt`` was saved from."""
    if force or ckpt.workflow_hash == workflow_hash(source_text):
        return
    raise CheckpointError(
        "the checkpoint was saved by a different version of this workflow"
        + (f" ({ckpt.workflow_path})" if ckpt.workflow_path else ""),
        hint="resume with the workflow it was saved from, or pass --force to resume anyway",
    )


# -- writing -------------------------------------------------------------------


def save_checkpoint(
    directory: Path,
    ckpt: Checkpoint,
    *,
    redact: Callable[[Any], Any] | None = None,
    name: str | None = None,
    sync: bool = True,
) -> Path:
    """Write ``ckpt`` atomically into ``directory`` (created if needed); return its path.

    ``redact`` is applied to ``state`` and ``error`` first, so secrets never reach
    the disk. ``name`` (without ``.json``) replaces the generated file name, so a
    run can keep overwriting one file. ``sync=False`` skips the fsyncs: the file is
    still whole after the process dies (the rename is atomic), but not after a
    power loss; progress checkpoints use it, every other checkpoint syncs.
    Values that are not JSON are saved through their ``to_dict()``; any other
    object is a ``CheckpointError`` naming its key.
    """
    state = redact(ckpt.state) if redact else ckpt.state
    error = redact(ckpt.error) if redact and ckpt.error is not None else ckpt.error
    created = ckpt.created_at or datetime.now(UTC).isoformat(timespec="microseconds")
    body: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        **{f.name: getattr(ckpt, f.name) for f in fields(ckpt)},
        "state": state,
        "error": error,
        "created_at": created,
    }
    plain = json.loads(_dumps(body, "checkpoint"))
    plain["checksum"] = _checksum(plain)
    Path(directory).mkdir(parents=True, exist_ok=True)
    path = Path(directory) / f"{name or _unique_name(ckpt.node, ckpt.position)}.json"
    _atomic_write(path, json.dumps(plain, indent=1, ensure_ascii=False).encode("utf-8"), sync=sync)
    return path


def _dumps(value: Any, what: str) -> str:
    """JSON text of ``value``; objects go through ``to_dict()`` or fail naming their key."""
    try:
        return json.dumps(value, default=_to_json, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        try:
            where = _find_unsaveable(value, "")
        except RecursionError:
            where = None
        raise CheckpointError(
            f"cannot save the {what}: {where or 'a value'} is not JSON ({exc})",
            hint="state must hold JSON values (objects with a to_dict() method are converted)",
        ) from exc


def _to_json(obj: Any) -> Any:
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _find_unsaveable(value: Any, path: str) -> str | None:
    """The path (``state['a'][0]``) of the first value ``json`` cannot write, if any."""
    if isinstance(value, str | int | float | bool) or value is None:
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str | int | float | bool) and key is not None:
                return f"the key {key!r} in {path or 'the top level'}"
            found = _find_unsaveable(item, f"{path}[{key!r}]" if path else str(key))
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _find_unsaveable(item, f"{path}[{index}]")
            if found:
                return found
        return None
    if callable(getattr(value, "to_dict", None)):
        return _find_unsaveable(value.to_dict(), path)
    return f"{path or 'the value'} (a {type(value).__name__})"


def _checksum(body: Mapping[str, Any]) -> str:
    canonical = json.dumps(
        {k: v for k, v in body.items() if k != "checksum"},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _unique_name(node: str, *parts: str) -> str:
    """``<node>-<parts>-<utc ms>-<random>``, with the node name made safe for a file name."""
    safe = _UNSAFE_NAME.sub("_", node).strip("._")[:80] or "node"
    return "-".join([safe, *parts, str(time.time_ns() // 1_000_000), os.urandom(4).hex()])


def _atomic_write(path: Path, data: bytes, *, sync: bool = True) -> None:
    # The temporary name starts with a dot and ends in .tmp so that no reader
    # globbing *.json ever sees a half-written file.
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    except FileNotFoundError:
        # Another run sharing the directory removed it when it was empty: make it again.
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            if sync:
                os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if sync:
        _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # The rename (or a new journal) is durable only once the directory entry is.
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- reading -------------------------------------------------------------------


def load_checkpoint(path: Path) -> Checkpoint:
    """Read and verify a checkpoint; every way it can be unusable is a ``CheckpointError``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise CheckpointError(f"checkpoint not found: {path}") from exc
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from exc
    if raw.startswith(_PICKLE_MAGIC):
        raise CheckpointError(
            f"{path} is a pickle, not a tea checkpoint",
            hint="tea never loads pickles (loading one can run code); checkpoints are JSON",
        )
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        if FORMAT_NAME.encode() in raw[:200]:
            raise CheckpointError(
                f"checkpoint {path} is truncated or corrupt ({exc})",
                hint="resume from an earlier checkpoint in the same directory",
            ) from exc
        raise CheckpointError(f"{path} is not a tea checkpoint (not JSON)") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise CheckpointError(f'{path} is not a tea checkpoint (no "format": "{FORMAT_NAME}")')
    if data.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {data.get('version')!r}; this tea reads version {FORMAT_VERSION}"
        )
    if data.get("checksum") != _checksum(data):
        raise CheckpointError(
            f"checkpoint {path} is corrupt: its checksum does not match its content",
            hint="the file was modified or damaged; resume from an earlier checkpoint",
        )
    try:
        return _from_body(data)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} is malformed: {exc}") from exc


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(("workflow_hash", "node", "position", "reason", "created_at"), (str,)),
    **dict.fromkeys(("state", "extra"), (dict,)),
    **dict.fromkeys(("pending_fanout", "error"), (dict, type(None))),
    "workflow_path": (str, type(None)),
    "step": (int,),
}


def _from_body(data: Mapping[str, Any]) -> Checkpoint:
    values: dict[str, Any] = {}
    for name, types in _FIELD_TYPES.items():
        if name not in data:
            raise ValueError(f"the field {name!r} is missing")
        value = data[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ValueError(f"the field {name!r} has the wrong type ({type(value).__name__})")
        values[name] = value
    return Checkpoint(**values)


def latest_checkpoint(directory: Path) -> Path | None:
    """The most recently saved readable checkpoint in ``directory``, or ``None``.

    Unreadable files are skipped, so this never raises for a damaged one.
    """
    best: tuple[str, int, str] | None = None
    found: Path | None = None
    for path in Path(directory).glob("*.json"):
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError:
            continue
        key = (ckpt.created_at, ckpt.step, path.name)
        if best is None or key > best:
            best, found = key, path
    return found


# -- the branch journal ----------------------------------------------------------


class BranchJournal:
    """The results of the finished branches of one fan-out, one fsynced JSON line each.

    Safe to call from several threads; meant for one process at a time.
    """

    SUFFIX = ".journal.jsonl"

    def __init__(self, path: Path, *, redact: Callable[[Any], Any] | None = None) -> None:
        self.path = Path(path)
        self._redact = redact
        self._lock = threading.Lock()
        self._tail_checked = False

    @classmethod
    def new(cls, directory: Path, node: str, *, redact: Callable[[Any], Any] | None = None) -> BranchJournal:
        """A journal with a fresh name in ``directory`` for a fan-out at ``node``."""
        return cls(Path(directory) / f"{_unique_name(node)}{cls.SUFFIX}", redact=redact)

    def record(self, result: BranchResult) -> None:
        """Append ``result``; it is on disk (fsynced) when this returns."""
        data = result.to_dict()
        if self._redact is not None:
            data["state"] = self._redact(data["state"])
            if data.get("error") is not None:
                data["error"] = self._redact(data["error"])
        line = (_dumps(data, f"result of branch {result.branch_id}") + "\n").encode("utf-8")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            with open(self.path, "ab") as out:
                if not self._tail_checked:
                    self._cut_torn_tail(out)
                    self._tail_checked = True
                out.write(line)
                out.flush()
                os.fsync(out.fileno())
            if created:
                _fsync_dir(self.path.parent)

    def _cut_torn_tail(self, out: Any) -> None:
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
        self.path.unlink(missing_ok=True)
