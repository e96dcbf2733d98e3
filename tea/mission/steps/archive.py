"""``compress``: pack files and directories into a zip or tar archive (the standard library).

Sources and the archive are confined like every file step; a file reached
through a symlink that leads outside the files root is left out, never packed.
Names inside the archive are relative to each source's parent directory
(``dist/app`` is stored as ``app/...``), the way ``tar -C dist app`` stores it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tea.mission.steps.base import Param, StepContext, StepType
from tea.mission.steps.files import relative

__all__ = ["FORMATS", "STEP_TYPES", "archive_format"]

FORMATS = {"zip": "zip", "tar": "w", "tar.gz": "w:gz", "tgz": "w:gz", "tar.bz2": "w:bz2", "tar.xz": "w:xz"}
"""Archive formats, with the ``tarfile`` mode of the tar ones."""


def archive_format(destination: str, given: str | None) -> str | None:
    """The format named by ``given``, else by the destination's suffix; ``None``: unknown."""
    if given is not None:
        return given if given in FORMATS else None
    name = destination.lower()
    for suffix in sorted(FORMATS, key=len, reverse=True):
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
                       hint=f"set format: to one of {', '.join(FORMATS)}")
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
            with tarfile.open(target, FORMATS[fmt]) as tar:  # type: ignore[call-overload]
                for path, name in members:
                    tar.add(path, name, recursive=False)
    except OSError as exc:
        raise ctx.fail(f"cannot write '{p['destination']}': {exc.strerror or exc}") from None
    return {"path": relative(ctx, target), "format": fmt, "files": len(members),
            "bytes": target.stat().st_size}


STEP_TYPES = (
    StepType("compress", "files", "pack files and directories into a zip or tar archive",
             (Param("sources", "strings", required=True, doc="files and directories to pack"),
              Param("destination", required=True, doc="the archive to write"),
              Param("format", choices=tuple(FORMATS),
                    doc="zip, tar, tar.gz (tgz), tar.bz2 or tar.xz (default: from destination)")),
             {"path": "the archive", "format": "its format", "files": "how many files it holds",
              "bytes": "its size"}, compress),
)
