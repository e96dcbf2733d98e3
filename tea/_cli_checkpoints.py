"""``tea checkpoints list`` and ``tea checkpoints clean``: what a checkpoint directory holds.

A directory holds checkpoints (``*.json``, each naming the fan-out journal it needs, if
any), journals (``*.journal.jsonl``) and, after a process was killed while writing,
hidden temporary files (``.*.tmp``). ``scan`` reads them into ``Entry`` records: a
checkpoint with its journal counted in its size, a journal no checkpoint names
(``orphan``), a file that was a checkpoint once (``corrupt``) and a temporary file
(``partial``). Files that are not tea's are never listed, nor removed.

``checkpoints`` is the ``tea checkpoints`` command group built on it::

    tea checkpoints list [DIR] [--format text|json]
    tea checkpoints clean [DIR] (--older-than 7d | --all) [--dry-run]

``DIR`` defaults to ``.tea-checkpoints`` in the current directory (where ``tea run``
writes for a workflow in it); a missing default directory is an empty one.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

import tea
from tea._cli_io import dumps
from tea.errors import CheckpointError

__all__ = ["Entry", "checkpoints", "human_age", "human_size", "parse_age", "scan", "table"]

DEFAULT_DIR = ".tea-checkpoints"

_FORMAT_MARK = b"tea-checkpoint"
_JOURNAL_SUFFIX = ".journal.jsonl"
_RUN_NAME = re.compile(r"^run-([0-9a-f]+)-progress\.json$")
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class Entry:
    """One thing in a checkpoint directory; ``files`` are what removing it removes."""

    path: Path
    kind: str
    """``workflow`` or ``mission`` (a checkpoint), ``orphan`` (a journal), ``corrupt``, ``partial``."""
    written: datetime
    """When the file was last written (its age is what ``clean --older-than`` compares)."""
    size: int
    files: tuple[Path, ...]
    run: str | None = None
    workflow: str | None = None
    node: str | None = None
    reason: str | None = None

    def to_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "path": str(self.path), "kind": self.kind, "run": self.run, "workflow": self.workflow,
            "node": self.node, "reason": self.reason,
            "written_at": self.written.isoformat(timespec="seconds"),
            "age_seconds": round((now - self.written).total_seconds()), "size": self.size,
            "files": [str(f) for f in self.files],
        }


def parse_age(text: str) -> timedelta:
    """``7d``, ``12h``, ``30m``, ``45s``, ``2w`` as a duration; ``ValueError`` otherwise."""
    match = _AGE.match(text)
    if match is None:
        raise ValueError(f"'{text}' is not a duration; write a number and a unit: 7d, 12h, 30m, 45s or 2w")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def scan(directory: Path) -> list[Entry]:
    """Every tea file in ``directory``, oldest first."""
    entries: list[Entry] = []
    claimed: set[Path] = set()
    for path in sorted(directory.glob("*.json")):
        entry = _checkpoint(path)
        if entry is not None:
            entries.append(entry)
            claimed.update(entry.files)
    for path in sorted(directory.glob(f"*{_JOURNAL_SUFFIX}")):
        if path not in claimed:
            entries.append(_plain(path, "orphan"))
    entries.extend(_plain(path, "partial") for path in sorted(directory.glob(".*.tmp")))
    return sorted(entries, key=lambda e: (e.written, e.path.name))


def _checkpoint(path: Path) -> Entry | None:
    try:
        with path.open("rb") as file:
            head = file.read(256)
    except OSError:
        return None
    if _FORMAT_MARK not in head:
        return None  # not tea's
    try:
        ckpt = tea.load_checkpoint(path)
    except CheckpointError:
        return _plain(path, "corrupt")
    files = [path]
    journal = (ckpt.pending_fanout or {}).get("journal")
    if isinstance(journal, str) and (path.parent / journal).exists():
        files.append(path.parent / journal)
    name = _RUN_NAME.match(path.name)
    run = ckpt.extra.get("run_id") or (name.group(1) if name else None)
    return Entry(
        path, "mission" if ckpt.extra.get("kind") == "mission" else "workflow",
        _mtime(path), sum(_size(f) for f in files), tuple(files),
        run=run if isinstance(run, str) else None,
        workflow=Path(ckpt.workflow_path).name if ckpt.workflow_path else None,
        node=ckpt.node, reason=ckpt.reason,
    )


def _plain(path: Path, kind: str) -> Entry:
    return Entry(path, kind, _mtime(path), _size(path), (path,))


def _mtime(path: Path) -> datetime:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        return datetime.now(UTC)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def human_age(delta: timedelta) -> str:
    """``45s``, ``12m``, ``3h``, ``9d``: the largest whole unit."""
    seconds = max(0, int(delta.total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def human_size(size: int) -> str:
    """``512 B``, ``1.2 KB``, ``3.4 MB`` (powers of 1024)."""
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KB", "MB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def table(entries: Iterable[Entry], now: datetime) -> str:
    """The entries as aligned columns, under a header."""
    rows = [("CHECKPOINT", "KIND", "RUN", "WORKFLOW", "NODE", "REASON", "AGE", "SIZE")]
    for e in entries:
        rows.append((
            e.path.name, e.kind, e.run or "-", e.workflow or "-", e.node or "-", e.reason or "-",
            human_age(now - e.written), human_size(e.size),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def _directory(directory: str | None) -> Path | None:
    """The directory to look in; ``None`` when the default one does not exist (nothing to do)."""
    path = Path(directory or DEFAULT_DIR)
    if path.is_dir():
        return path
    if directory is None:
        return None
    raise click.BadParameter(f"{directory} is not a directory", param_hint="DIR")


@click.group()
def checkpoints() -> None:
    """List and remove the checkpoints runs leave behind (a finished run leaves none)."""


@checkpoints.command("list")
@click.argument("directory", metavar="[DIR]", required=False)
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def list_(directory: str | None, fmt: str) -> None:
    """Show each checkpoint in DIR (default .tea-checkpoints): run, node, reason, age, size."""
    path = _directory(directory)
    entries = scan(path) if path is not None else []
    now = datetime.now(UTC)
    if fmt == "json":
        click.echo(dumps([e.to_dict(now) for e in entries], indent=2))
    elif entries:
        click.echo(table(entries, now))
    else:
        click.echo(f"no checkpoints in {path or DEFAULT_DIR}", err=True)


def _age(ctx: click.Context, param: click.Parameter, value: str | None) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_age(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@checkpoints.command()
@click.argument("directory", metavar="[DIR]", required=False)
@click.option("--older-than", "older_than", metavar="AGE", callback=_age,
              help="Remove what is older than AGE: 45s, 30m, 12h, 7d, 2w.")
@click.option("--all", "all_", is_flag=True, help="Remove every checkpoint and journal in DIR.")
@click.option("-n", "--dry-run", is_flag=True, help="Only print what would be removed.")
def clean(directory: str | None, older_than: timedelta | None, all_: bool, dry_run: bool) -> None:
    """Remove old checkpoints and their journals from DIR (default .tea-checkpoints).

    Prints each removed file on stdout and a summary on stderr.
    """
    if (older_than is None) == (not all_):
        raise click.UsageError("say what to remove: --older-than AGE or --all (one of them)")
    path = _directory(directory)
    now = datetime.now(UTC)
    entries = scan(path) if path is not None else []
    doomed = [e for e in entries if all_ or (older_than is not None and now - e.written > older_than)]
    removed, size = 0, 0
    for entry in doomed:
        for file in entry.files:
            if not dry_run:
                try:
                    file.unlink()
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    click.echo(f"cannot remove {file}: {exc.strerror}", err=True)
                    sys.exit(1)
            click.echo(str(file))
            removed += 1
        size += entry.size
    verb = "would remove" if dry_run else "removed"
    click.echo(f"{verb} {removed} files ({human_size(size)}) from {path or DEFAULT_DIR}", err=True)
