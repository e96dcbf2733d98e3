"""File built-ins: ``file.read`` and ``file.write``, confined to one directory.

The directory is ``settings.files.root`` (relative to the workflow file) or the
workflow's own directory. A path is first resolved with symlinks followed and
refused outside it (``confine``); the file is then opened from a descriptor of
the root, one component at a time, never following a symlink (``open_beneath``),
so a link swapped in between the check and the open is refused, not followed.
Result shapes follow the reference: ``{"content": text}`` and ``{"path": path}``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

from tea.actions._common import Action, ActionContext, confine, fail, files_root, takes_context, to_bool

__all__ = ["ACTIONS", "file_read", "file_write", "open_beneath"]

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def open_beneath(root: Path, target: Path, flags: int, *, make_dirs: bool = False) -> int:
    """A descriptor for ``target`` opened with ``flags``, reached from ``root`` without
    following a symbolic link below ``root`` (``ELOOP`` when one is met).

    ``target`` must be inside ``root`` (``ValueError`` otherwise). ``make_dirs``
    creates missing directories on the way, the same way. The caller closes it.
    """
    parts = target.relative_to(root).parts or (".",)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            child = _open_directory(part, fd, make_dirs)
            os.close(fd)
            fd = child
        return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666, dir_fd=fd)
    finally:
        os.close(fd)


def _open_directory(name: str, parent: int, make: bool) -> int:
    """The directory ``name`` in ``parent``, made first when missing and ``make``; a symlink
    there is ``ELOOP`` (Linux says ``ENOTDIR`` for a link opened as a directory)."""
    try:
        return os.open(name, _DIRECTORY, dir_fd=parent)
    except FileNotFoundError:
        if not make:
            raise
    except NotADirectoryError:
        if stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), name) from None
        raise
    # Made meanwhile by someone else: it is opened below, still without following.
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o777, dir_fd=parent)
    return _open_directory(name, parent, False)


def _open(ctx: ActionContext, action: str, path: Any, target: Path, flags: int, make_dirs: bool = False) -> int:
    """A descriptor for ``target`` (``path`` confined) opened with ``flags`` from the files root."""
    root = files_root(ctx)
    try:
        return open_beneath(root, target, flags, make_dirs=make_dirs)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise fail(
            ctx, action, f"path '{path}' became a symbolic link while it was opened; refused, so as "
            f"not to leave the allowed directory {root}",
            hint="something changed the directory while the workflow ran",
        ) from None


@takes_context
def file_read(state: dict[str, Any], path: str, encoding: str = "utf-8", *,
              ctx: ActionContext) -> dict[str, Any]:
    """The text of ``path`` as ``{"content": text}``."""
    target = confine(ctx, "file.read", path)
    try:
        # Non-blocking so that a FIFO is refused below instead of waiting for a writer.
        fd = _open(ctx, "file.read", path, target, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            mode = os.fstat(fd).st_mode
            if stat.S_ISDIR(mode):
                raise IsADirectoryError
            if not stat.S_ISREG(mode):
                raise fail(ctx, "file.read", f"'{path}' is not a regular file")
            return {"content": handle.read().decode(encoding)}
    except FileNotFoundError:
        raise fail(ctx, "file.read", f"no such file '{path}' ({target})") from None
    except IsADirectoryError:
        raise fail(ctx, "file.read", f"'{path}' is a directory, not a file") from None
    except UnicodeDecodeError as exc:
        raise fail(ctx, "file.read", f"'{path}' is not valid {encoding} text: {exc.reason}",
                   hint="set encoding: to the file's encoding") from None
    except LookupError:
        raise fail(ctx, "file.read", f"unknown encoding '{encoding}'") from None
    except OSError as exc:
        raise fail(ctx, "file.read", f"cannot read '{path}': {exc.strerror}") from None


def _as_text(content: Any) -> str | None:
    """Text as is, numbers and booleans in their JSON form, lists and mappings as JSON."""
    if isinstance(content, str):
        return content
    if isinstance(content, bool | int | float | list | dict):
        return json.dumps(content, ensure_ascii=False, indent=2 if isinstance(
            content, list | dict) else None, default=str)
    return None


@takes_context
def file_write(state: dict[str, Any], path: str, content: Any, encoding: str = "utf-8",
               append: bool = False, mkdir: bool = True, *,
               ctx: ActionContext) -> dict[str, Any]:
    """Write ``content`` to ``path``; returns ``{"path": absolute path}``.

    Text is written as is; numbers, booleans, lists and mappings as JSON.

    Parent directories are created unless ``mkdir: false``; ``append: true`` adds
    to the end instead of replacing the file.
    """
    target = confine(ctx, "file.write", path)
    text = _as_text(content)
    if text is None:
        raise fail(ctx, "file.write", f"content must be text, got {type(content).__name__}",
                   hint="check the template; a missing state key renders as None")
    try:
        data = text.encode(encoding)
    except LookupError:
        raise fail(ctx, "file.write", f"unknown encoding '{encoding}'") from None
    except UnicodeEncodeError as exc:
        raise fail(ctx, "file.write",
                   f"content cannot be written as {encoding}: {exc.reason}") from None
    adding = to_bool(ctx, "file.write", "append", append)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if adding else os.O_TRUNC)
    try:
        fd = _open(ctx, "file.write", path, target, flags, to_bool(ctx, "file.write", "mkdir", mkdir))
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    except FileNotFoundError:
        raise fail(ctx, "file.write", f"the directory of '{path}' does not exist",
                   hint="leave mkdir at true to create it") from None
    except OSError as exc:
        raise fail(ctx, "file.write", f"cannot write '{path}': {exc.strerror}") from None
    return {"path": str(target)}


ACTIONS: dict[str, Action] = {
    "file.read": file_read,
    "actions.file_read": file_read,
    "file.write": file_write,
    "actions.file_write": file_write,
}
