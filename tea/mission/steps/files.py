"""File steps: create, edit, read, delete, copy, move, list, search and compress files.

Every path is confined by tea's file-action rule (``tea.actions``' ``confine``):
resolved with symlinks followed under ``settings.files.root`` (relative to the
mission file) or the mission's own directory; ``..``, absolute paths and
symlinks that lead outside are refused. Paths in outputs are relative to that
root, written with ``/``. ``compress`` leaves out a file reached through a symlink
that leads outside the root, and names members relative to each source's parent
(``dist/app`` is stored as ``app/...``, as ``tar -C dist app`` stores it).
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
from pathlib import Path
from typing import Any

from tea.mission.steps.base import Param, StepContext, StepType

__all__ = ["ARCHIVE_FORMATS", "STEP_TYPES", "archive_format", "as_text", "relative"]


def as_text(value: Any) -> str:
    """Text as is; numbers, booleans, lists and mappings as JSON; nothing as ''."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    indent = 2 if isinstance(value, list | dict) else None
    return json.dumps(value, ensure_ascii=False, indent=indent, default=str)


def relative(ctx: StepContext, path: Path) -> str:
    """``path`` relative to the files root, with ``/`` (``.`` for the root itself)."""
    try:
        return path.relative_to(ctx.root).as_posix() or "."
    except ValueError:
        return path.as_posix()


def _encode(ctx: StepContext, text: str, encoding: str) -> bytes:
    try:
        return text.encode(encoding)
    except LookupError:
        raise ctx.fail(f"unknown encoding '{encoding}'", retryable=False) from None
    except UnicodeEncodeError as exc:
        raise ctx.fail(f"the content cannot be written as {encoding}: {exc.reason}", retryable=False) from None


def _os_error(ctx: StepContext, what: str, exc: OSError) -> Exception:
    return ctx.fail(f"cannot {what}: {exc.strerror or exc}")


def create_file(ctx: StepContext, p: dict[str, Any]) -> dict[str, Any]:
    target = ctx.confine(p["path"])
    data = _encode(ctx, as_text(p["content"]), p["encoding"])
    if target.exists() and not p["overwrite"]:
        raise ctx.fail(f"'{p['path']}' exists and overwrite is false", retryable=False)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        if p["mode"] is not None:
            target.chmod(int(str(p["mode"]), 8))
    except ValueError:
        raise ctx.fail(f"mode must be octal digits like 644, got {p['mode']!r}", retryable=False) from None
    except OSError as exc:
        raise _os_error(ctx, f"write '{p['path']}'", exc) from None
    return {"path": relative(ctx, target), "bytes": len(data)}


def _read_text(ctx: StepContext, target: Path, shown: str, encoding: str) -> str:
    try:
        return target.read_text(encoding=encoding)
    except FileNotFoundError:
        raise ctx.fail(f"no such file '{shown}'") from None
    except IsADirectoryError:
        raise ctx.fail(f"'{shown}' is a directory, not a file", retryable=False) from None
    except UnicodeDecodeError as exc:
        raise ctx.fail(f"'{shown}' is not valid {encoding} text: {exc.reason}", retryable=False,
                       hint="set encoding: to the file's encoding") from None
    except LookupError:
        raise ctx.fail(f"unknown encoding '{encoding}'", retryable=False) from None
    except OSError as exc:
        raise _os_error(ctx, f"read '{shown}'", exc) from None


def edit_file(ctx: StepContext, p: dict[str, Any]) -> dict[str, Any]:
    """Replace the whole text, append to it, or replace ``find`` with ``replace``."""
    target = ctx.confine(p["path"])
    if (p["content"] is None) == (p["find"] is None):
        raise ctx.fail("give either content (replace or append) or find + replace", retryable=False)
    old = _read_text(ctx, target, p["path"], p["encoding"])
    out: dict[str, Any] = {"path": relative(ctx, target)}
    if p["find"] is not None:
        count = old.count(p["find"])
        limit = int(p["count"]) if p["count"] else -1
        new = old.replace(p["find"], as_text(p["replace"]), limit)
        out["replacements"] = count if limit < 0 else min(count, limit)
    else:
        new = old + as_text(p["content"]) if p["append"] else as_text(p["content"])
    data = _encode(ctx, new, p["encoding"])
    try:
        if p["backup"]:
            backup = target.with_name(target.name + ".bak")
            shutil.copy2(target, backup)
            out["backup"] = relative(ctx, backup)
        target.write_bytes(data)
    except OSError as exc:
        raise _os_error(ctx, f"write '{p['path']}'", exc) from None
    out["bytes"] = len(data)
    return out


def read_file(ctx: StepContext, p: dict[str, Any]) -> dict[str, Any]:
    target = ctx.confine(p["path"])
    content = _read_text(ctx, target, p["path"], p["encoding"])
    return {"path": relative(ctx, target), "content": content, "bytes": len(content.encode(p["encoding"]))}


def delete_file(ctx: StepContext, p: dict[str, Any]) -> dict[str, Any]:
    target = ctx.confine(p["path"])
    if target == ctx.root:
        raise ctx.fail("refusing to delete the files root itself", retryable=False)
    try:
        if target.is_dir() and not target.is_symlink():
            if not p["recursive"]:
                raise ctx.fail(f"'{p['path']}' is a directory; set recursive: true to delete it",
                               retryable=False)
            shutil.rmtree(target)
        else:
            target.unlink()
    except FileNotFoundError:
        if not p["missing_ok"]:
            raise ctx.fail(f"no such file '{p['path']}'", hint="set missing_ok: true if that is fine") from None
        return {"path": relative(ctx, target), "deleted": False}
    except OSError as exc:
        raise _os_error(ctx, f"delete '{p['path']}'", exc) from None
    return {"path": relative(ctx, target), "deleted": True}


def _two_paths(ctx: StepContext, p: dict[str, Any]) -> tuple[Path, Path]:
    source = ctx.confine(p["source"], "source")
    destination = ctx.confine(p["destination"], "destination")
    if destination.is_dir() or str(p["destination"]).endswith(("/", os.sep)):
        destination = destination / source.name
    if not source.is_file():
        raise ctx.fail(f"no such file '{p['source']}'")
    if destination.exists() and not p["overwrite"]:
        raise ctx.fail(f"'{p['destination']}' exists and overwrite is false", retryable=False)
    destination.parent.mkdir(parents=True, exist_ok=True)
    return source, destination


def copy_file(ctx: StepContext, p: dict[str, Any]) -> dict[str, Any]:
    source, destination = _two_paths(ctx, p)
    try:
        shutil.copyfile(source, destination)
        shutil.copymode(source, destination)
    except OSError as exc:
        raise _os_error(ctx, f"copy '{p['source']}'", exc) from None
    return {"source": relative(ctx, source), "destination": relative(ctx, destination),
            "bytes": destination.stat().st_size}


def move_file(ctx: StepContext, p: dict[str, Any]) -> dict[str, Any]:
    source, destination = _two_paths(ctx, p)
    try:
        os.replace(source, destination)
    except OSError:
        try:  # another file system: copy, then remove
            shutil.move(source, destination)
        except OSError as exc:
            raise _os_error(ctx, f"move '{p['source']}'", exc) from None
    return {"source": relative(ctx, source), "destination": relative(ctx, destination)}


def _walk(ctx: StepContext, base: Path, recursive: bool, hidden: bool) -> list[Path]:
    """Files and directories under ``base`` that stay under the root (symlinks checked)."""
    found: list[Path] = []
    for directory, dirs, files in os.walk(base):
        ctx.check_time("listing")
        if not hidden:
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            files = [f for f in files if not f.startswith(".")]
        for name in sorted(dirs) + sorted(files):
            path = Path(directory) / name
            if path.resolve().is_relative_to(ctx.root):
                found.append(path)
        if not recursive:
            break
        dirs.sort()
    return found


def list_directory(ctx: StepContext, p: dict[str, Any]) -> dict[str, Any]:
    base = ctx.confine(p["path"])
    if not base.is_dir():
        raise ctx.fail(f"'{p['path']}' is not a directory")
    entries = []
    for path in _walk(ctx, base, p["recursive"], p["include_hidden"]):
        if not fnmatch.fnmatch(path.name, p["pattern"]):
            continue
        is_dir = path.is_dir()
        entries.append({"name": path.name, "path": relative(ctx, path),
                        "type": "directory" if is_dir else "file",
                        "size": 0 if is_dir else path.stat().st_size})
    return {"path": relative(ctx, base), "entries": entries, "count": len(entries)}


def file_search(ctx: StepContext, p: dict[str, Any]) -> dict[str, Any]:
    """Files matching the glob ``pattern`` (``**`` crosses directories), optionally only
    those whose text contains ``contains``."""
    base = ctx.confine(p["path"])
    matches: list[str] = []
    for path in sorted(base.glob(p["pattern"])):
        ctx.check_time("the search")
        if not path.is_file() or not path.resolve().is_relative_to(ctx.root):
            continue
        if p["contains"] is not None:
            try:
                if p["contains"] not in path.read_text(encoding="utf-8", errors="replace"):
                    continue
            except OSError:
                continue
        matches.append(relative(ctx, path))
        if len(matches) >= p["max_results"]:
            break
    return {"matches": matches, "count": len(matches)}


ARCHIVE_FORMATS = {"zip": "zip", "tar": "w", "tar.gz": "w:gz", "tgz": "w:gz", "tar.bz2": "w:bz2", "tar.xz": "w:xz"}
"""Archive formats, with the ``tarfile`` mode of the tar ones."""


def archive_format(destination: str, given: str | None) -> str | None:
    """The format named by ``given``, else by the destination's suffix; ``None``: unknown."""
    if given is not None:
        return given if given in ARCHIVE_FORMATS else None
    name = destination.lower()
    for suffix in sorted(ARCHIVE_FORMATS, key=len, reverse=True):
        if name.endswith("." + suffix):
            return suffix
    return None


def _members(ctx: StepContext, sources: list[str]) -> list[tuple[Path, str]]:
    """(file on disk, name in the archive) for every file under the sources, in order."""
    found: list[tuple[Path, str]] = []
    for source in sources:
        base = ctx.confine(source, "sources")
        if not base.exists():
            raise ctx.fail(f"no such file or directory '{source}'")
        if base.is_file():
            found.append((base, base.name))
            continue
        for directory, dirs, files in os.walk(base):
            ctx.check_time("packing")
            dirs.sort()
            for name in sorted(files):
                path = Path(directory) / name
                if path.resolve().is_relative_to(ctx.root) and path.resolve().is_file():
                    found.append((path, path.relative_to(base.parent).as_posix()))
    return found


def compress(ctx: StepContext, p: dict[str, Any]) -> dict[str, Any]:
    """Write ``destination`` holding every file of ``sources``."""
    fmt = archive_format(p["destination"], p["format"])
    if fmt is None:
        raise ctx.fail(f"cannot tell the archive format of '{p['destination']}'", retryable=False,
                       hint=f"set format: to one of {', '.join(ARCHIVE_FORMATS)}")
    import tarfile
    import zipfile

    target = ctx.confine(p["destination"], "destination")
    members = [(path, name) for path, name in _members(ctx, p["sources"]) if path != target]
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        if fmt == "zip":
            with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                for path, name in members:
                    archive.write(path, name)
        else:
            with tarfile.open(target, ARCHIVE_FORMATS[fmt]) as tar:  # type: ignore[call-overload]
                for path, name in members:
                    tar.add(path, name, recursive=False)
    except OSError as exc:
        raise ctx.fail(f"cannot write '{p['destination']}': {exc.strerror or exc}") from None
    return {"path": relative(ctx, target), "format": fmt, "files": len(members),
            "bytes": target.stat().st_size}


_PATH = Param("path", required=True, doc="a path under the files root")
_ENCODING = Param("encoding", default="utf-8", doc="text encoding")
_OVERWRITE = Param("overwrite", "bool", default=True, doc="replace an existing destination")
_MOVED = (Param("source", required=True, doc="the file to copy or move"),
          Param("destination", required=True, doc="the new path, or a directory (existing, or ending in /)"),
          _OVERWRITE)

STEP_TYPES = (
    StepType("create_file", "files", "write a file (parent directories created)",
             (_PATH, Param("content", "any", default="", doc="text; other values are written as JSON"),
              Param("mode", doc="permissions as octal digits, e.g. 644"), _ENCODING, _OVERWRITE),
             {"path": "the file, relative to the files root", "bytes": "bytes written"}, create_file),
    StepType("edit_file", "files", "replace or append to an existing file, or replace text in it",
             (_PATH, Param("content", "any", doc="the new text (or what to append)"),
              Param("append", "bool", default=False, doc="append content instead of replacing the file"),
              Param("find", doc="text to replace (instead of content)"),
              Param("replace", "any", default="", doc="what replaces find"),
              Param("count", "int", default=0, minimum=0, doc="replace at most this many (0: all)"),
              Param("backup", "bool", default=False, doc="keep the old file as path + .bak"), _ENCODING),
             {"path": "the file", "bytes": "its new size", "replacements": "with find: how many",
              "backup": "with backup: the copy's path"}, edit_file),
    StepType("read_file", "files", "read a text file", (_PATH, _ENCODING),
             {"path": "the file", "content": "its text", "bytes": "its size in bytes"}, read_file),
    StepType("delete_file", "files", "delete a file (or a directory with recursive)",
             (_PATH, Param("missing_ok", "bool", default=False, doc="succeed when it does not exist"),
              Param("recursive", "bool", default=False, doc="delete a directory and everything in it")),
             {"path": "the path", "deleted": "false when it did not exist"}, delete_file),
    StepType("copy_file", "files", "copy a file", _MOVED,
             {"source": "the file copied", "destination": "the copy", "bytes": "its size"}, copy_file),
    StepType("move_file", "files", "move or rename a file", _MOVED,
             {"source": "the old path", "destination": "the new path"}, move_file),
    StepType("list_directory", "files", "list a directory",
             (Param("path", default=".", doc="the directory"),
              Param("pattern", default="*", doc="only names matching this glob"),
              Param("recursive", "bool", default=False, doc="descend into subdirectories"),
              Param("include_hidden", "bool", default=False, doc="include names starting with '.'")),
             {"path": "the directory", "entries": "[{name, path, type (file|directory), size}]",
              "count": "how many entries"}, list_directory),
    StepType("file_search", "files", "find files by glob, optionally by content",
             (Param("pattern", required=True, doc="a glob relative to path; ** crosses directories"),
              Param("path", default=".", doc="where to search"),
              Param("contains", doc="only files whose text contains this"),
              Param("max_results", "int", default=1000, minimum=1, doc="stop after this many")),
             {"matches": "paths of the matching files", "count": "how many"}, file_search),
    StepType("compress", "files", "pack files and directories into a zip or tar archive",
             (Param("sources", "strings", required=True, doc="files and directories to pack"),
              Param("destination", required=True, doc="the archive to write"),
              Param("format", choices=tuple(ARCHIVE_FORMATS),
                    doc="zip, tar, tar.gz (tgz), tar.bz2 or tar.xz (default: from destination)")),
             {"path": "the archive", "format": "its format", "files": "how many files it holds",
              "bytes": "its size"}, compress),
)
