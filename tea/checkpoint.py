"""Checkpoint files and the per-branch journal of a fan-out.

A checkpoint is one JSON document (never pickle: loading one never runs code)::

    {"format": "tea-checkpoint", "version": 2,
     "workflow_hash": ..., "workflow_path": ..., "node": ..., "position": "before"|"after",
     "reason": ..., "step": ..., "state": {...}, "pending_fanout": ..., "error": ...,
     "created_at": ..., "extra": {...},
     "checksum": sha256 of the body (every other key, in file order, compact JSON)}

The body is encoded once (a large state costs one pass of the C encoder) and the
checksum is taken over that text; reading re-encodes the parsed body the same
way, which gives the same text for any JSON value. Version 1 files (checksum over
the sorted body) are still read. The checksum detects damage, not tampering.

It is written atomically: a hidden temporary file in the same directory is
written, flushed and fsynced, renamed over the final name, and the directory is
fsynced, so a process killed at any moment leaves either no file or a whole one
under ``<node>-<position>-<utc ms>-<random>.json``.

A fan-out in progress journals its finished branches beside its checkpoint
(``tea.journal``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tea.errors import CheckpointError
from tea.state import unsaveable

__all__ = [
    "FORMAT_VERSION",
    "POSITIONS",
    "REASONS",
    "Checkpoint",
    "dump_json",
    "ensure_same_workflow",
    "fsync_dir",
    "latest_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
    "unique_name",
    "workflow_hash",
]

FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, 2)
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
    text = dump_json(body, "checkpoint", compact=True)
    checksum = hashlib.sha256(text.encode("utf-8")).hexdigest()
    data = f'{text[:-1]},"checksum":"{checksum}"}}'
    Path(directory).mkdir(parents=True, exist_ok=True)
    path = Path(directory) / f"{name or unique_name(ckpt.node, ckpt.position)}.json"
    _atomic_write(path, data.encode("utf-8"), sync=sync)
    return path


def dump_json(value: Any, what: str, *, compact: bool = False) -> str:
    """JSON text of ``value``; objects go through ``to_dict()`` or fail naming their key."""
    try:
        return json.dumps(value, default=_to_json, ensure_ascii=False, separators=_COMPACT if compact else None)
    except (TypeError, ValueError, RecursionError) as exc:
        # json's ValueError here is a cycle; its RecursionError, data nested too deeply
        nested = None if isinstance(exc, TypeError) else _nesting(value)
        if nested is not None:
            raise CheckpointError(f"cannot save the {what}: {nested}",
                                  hint="state must hold plain JSON data") from None
        try:
            where = _find_unsaveable(value, "")
        except RecursionError:
            where = None
        raise CheckpointError(
            f"cannot save the {what}: {where or 'a value'} is not JSON ({exc})",
            hint="state must hold JSON values (objects with a to_dict() method are converted)",
        ) from exc


def _nesting(value: Any) -> str | None:
    """Where ``value`` contains itself or nests too deeply (``state['x']``), and why."""
    found = unsaveable(value) if isinstance(value, dict) else None
    if found is None:
        return None
    key, why = found
    inner = value[key]
    deeper = unsaveable(inner) if isinstance(inner, dict) else None
    where = f"{key}[{deeper[0]!r}]" if deeper is not None else repr(key)
    return f"the value of {where} {why.removeprefix('it ')}"


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


_COMPACT = (",", ":")


def _checksum(body: Mapping[str, Any]) -> str:
    """The checksum ``body`` should carry (version 1: over the sorted body)."""
    rest = {k: v for k, v in body.items() if k != "checksum"}
    sort = body.get("version") == 1
    canonical = json.dumps(rest, sort_keys=sort, separators=_COMPACT, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def unique_name(node: str, *parts: str) -> str:
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
        fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
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
    if data.get("version") not in _READABLE_VERSIONS:
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
    _check_pending(values["pending_fanout"])
    _check_extra(values["extra"])
    return Checkpoint(**values)


JOURNAL_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.journal\.jsonl$")
"""A journal a checkpoint may name: a plain file name beside it, of the shape tea writes."""


def _check_pending(pending: dict[str, Any] | None) -> None:
    """A checkpoint names its fan-out journal; it must not lead anywhere else."""
    if pending is None:
        return
    if not isinstance(pending.get("node"), str):
        raise ValueError("pending_fanout.node must be a node name")
    journal = pending.get("journal")
    if not isinstance(journal, str) or not JOURNAL_NAME.match(journal):
        raise ValueError(
            f"pending_fanout.journal must be a journal file name beside the checkpoint, not {journal!r}"
        )


def _check_extra(extra: dict[str, Any]) -> None:
    pending = extra.get("pending", {})
    if not isinstance(pending, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(r, dict) for r in v)
        for k, v in pending.items()
    ):
        raise ValueError("extra.pending must map fan-in node names to lists of branch results")
    for key in ("interrupt_before", "interrupt_after"):
        names = extra.get(key, [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"extra.{key} must be a list of node names")


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
