"""File built-ins: ``file.read`` and ``file.write``, confined to one directory.

The directory is ``settings.files.root`` (relative to the workflow file) or the
workflow's own directory. Paths are resolved with symlinks followed before the
check, so neither ``..``, an absolute path nor a symlink leads outside it.
Result shapes follow the reference: ``{"content": text}`` and ``{"path": path}``.
"""

from __future__ import annotations

import json
from typing import Any

from tea.actions._common import Action, ActionContext, confine, fail, takes_context, to_bool

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


ACTIONS: dict[str, Action] = {
    "file.read": file_read,
    "actions.file_read": file_read,
    "file.write": file_write,
    "actions.file_write": file_write,
}
