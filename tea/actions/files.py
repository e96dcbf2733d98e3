"""File built-ins: ``file.read`` and ``file.write``, confined to one directory.

The directory is ``settings.files.root`` (relative to the workflow file) or the
workflow's own directory. Paths are resolved with symlinks followed before the
check, so neither ``..``, an absolute path nor a symlink leads outside it.
Result shapes follow the reference: ``{"content": text}`` and ``{"path": path}``.
"""

from __future__ import annotations

from typing import Any

from tea.actions._common import confine, fail, to_bool
from tea.actions.registry import ActionContext, takes_context

__all__ = ["ACTIONS", "file_read", "file_write"]


@takes_context
def file_read(state: dict[str, Any], path: str, encoding: str = "utf-8", *,
              ctx: ActionContext) -> dict[str, Any]:
    """The text of ``path`` as ``{"content": text}``."""
    target = confine(ctx, "file.read", path)
    try:
        return {"content": target.read_text(encoding=encoding)}
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


@takes_context
def file_write(state: dict[str, Any], path: str, content: Any, encoding: str = "utf-8",
               append: bool = False, mkdir: bool = True, *,
               ctx: ActionContext) -> dict[str, Any]:
    """Write ``content`` (text) to ``path``; returns ``{"path": absolute path}``.

    Parent directories are created unless ``mkdir: false``; ``append: true`` adds
    to the end instead of replacing the file.
    """
    target = confine(ctx, "file.write", path)
    if not isinstance(content, str):
        raise fail(ctx, "file.write", f"content must be text, got {type(content).__name__}",
                   hint="turn data into text first, e.g. with json.stringify or '| tojson'")
    try:
        data = content.encode(encoding)
    except LookupError:
        raise fail(ctx, "file.write", f"unknown encoding '{encoding}'") from None
    except UnicodeEncodeError as exc:
        raise fail(ctx, "file.write",
                   f"content cannot be written as {encoding}: {exc.reason}") from None
    try:
        if to_bool(ctx, "file.write", "mkdir", mkdir):
            target.parent.mkdir(parents=True, exist_ok=True)
        if to_bool(ctx, "file.write", "append", append):
            with target.open("ab") as handle:
                handle.write(data)
        else:
            target.write_bytes(data)
    except FileNotFoundError:
        raise fail(ctx, "file.write", f"the directory of '{path}' does not exist",
                   hint="leave mkdir at true to create it") from None
    except OSError as exc:
        raise fail(ctx, "file.write", f"cannot write '{path}': {exc.strerror}") from None
    return {"path": str(target)}


ACTIONS = {
    "file.read": file_read,
    "actions.file_read": file_read,
    "file.write": file_write,
    "actions.file_write": file_write,
}
