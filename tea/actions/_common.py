"""What the built-in actions share: the registry's context and marker, and parameter checks.

The built-in action modules import from here only (not from ``registry``), so
this module is their whole view of the engine. Each check raises
``ActionFailed`` naming the action, the parameter and the node, so a bad
``with:`` value reads the same whichever action it reached.
The ``*_problem`` functions return the same findings as text for load-time
validation, where values that are still templates are skipped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tea.actions.registry import Action, ActionContext, ActionFailed, redact_text, takes_context

__all__ = [
    "Action",
    "ActionContext",
    "confine",
    "fail",
    "files_root",
    "is_template",
    "redact_text",
    "takes_context",
    "to_bool",
    "to_number",
    "url_problem",
]


def fail(ctx: ActionContext, action: str, message: str, **kwargs: Any) -> ActionFailed:
    """An ``ActionFailed`` for ``ctx.node`` with secrets removed from every text."""
    texts = {k: redact_text(ctx, v) for k, v in kwargs.items() if isinstance(v, str)}
    return ActionFailed(action, redact_text(ctx, message), node=ctx.node, **{**kwargs, **texts})


def is_template(value: Any) -> bool:
    """Whether ``value`` is a string whose content is only known at run time."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def url_problem(name: str, value: Any) -> str | None:
    """Why ``value`` is not an http(s) URL, or ``None`` when it is one."""
    if not isinstance(value, str):
        return f"{name} must be an http(s) URL string, got {type(value).__name__}"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"{name} '{value}' is not an http(s) URL (expected like http://localhost:8080)"
    return None


def to_number(
    ctx: ActionContext, action: str, name: str, value: Any, *,
    minimum: float | None = None, integer: bool = False,
) -> float:
    """``value`` as a number (numeric strings accepted), at least ``minimum``."""
    try:
        if isinstance(value, bool):
            raise ValueError
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        kind = "an integer" if integer else "a number"
        raise fail(ctx, action, f"{name} must be {kind}, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise fail(ctx, action, f"{name} must be at least {minimum}, got {number}")
    return number


def to_bool(ctx: ActionContext, action: str, name: str, value: Any) -> bool:
    """``value`` as a boolean; the strings true/false/yes/no/1/0 are accepted."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off", "", "none"):
        return False
    raise fail(ctx, action, f"{name} must be true or false, got {value!r}")


def files_root(ctx: ActionContext) -> Path:
    """The directory file actions are confined to: ``settings.files.root`` or the
    workflow's directory (a relative root is taken from the workflow's directory)."""
    root = ctx.section("files").get("root")
    base = Path(ctx.workflow_dir)
    if root is None:
        return base.resolve()
    return (base / os.path.expanduser(str(root))).resolve()


def confine(ctx: ActionContext, action: str, path: Any, *, name: str = "path") -> Path:
    """``path`` resolved (symlinks followed) under ``files_root``; refused outside it."""
    if not isinstance(path, str | os.PathLike) or not str(path):
        raise fail(ctx, action, f"{name} must be a non-empty path string, got {path!r}")
    root = files_root(ctx)
    try:
        target = (root / Path(path).expanduser()).resolve()
    except OSError as exc:  # a link removed or swapped while it was being followed
        raise fail(ctx, action, f"{name} '{path}' changed while it was resolved: {exc.strerror}",
                   retryable=True) from None
    if not target.is_relative_to(root):
        raise fail(
            ctx, action, f"{name} '{path}' is outside the allowed directory {root}",
            hint="use a path inside the workflow's directory, or set settings.files.root",
        )
    return target
