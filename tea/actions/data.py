"""Data built-ins: ``json.parse``, ``json.stringify``, ``yaml.parse`` and ``log``.

The result shapes follow the reference implementation: parsers return
``{"data": ..., "success": True}`` and, when the text does not parse,
``{"success": False, "error": ..., "error_type": "parse", "position": ...}``
instead of failing the node, so a workflow can route on ``state.success``.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from tea.actions._common import Action, ActionContext, fail, redact_text, takes_context

__all__ = ["ACTIONS", "json_parse", "json_stringify", "log", "yaml_parse"]

workflow_log = logging.getLogger("tea.workflow")

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def _lenient(text: str) -> str:
    """Drop // and /* */ comments and trailing commas (the reference's non-strict mode)."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    text = re.sub(r"(?m)^\s*//.*$|(?<=[,\[{\s])//.*$", "", text)
    return re.sub(r",\s*([}\]])", r"\1", text)


def _parse_failure(message: str, line: int | None, column: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {"success": False, "error": message, "error_type": "parse"}
    if line is not None:
        out["position"] = {"line": line, "column": column}
    return out


def json_parse(state: dict[str, Any], text: Any, strict: bool = True,
               default: Any = None) -> dict[str, Any]:
    """Parse JSON ``text`` (a value that is already parsed passes through).

    ``strict: false`` also accepts comments and trailing commas, and returns
    ``default`` (when given) for text that still does not parse.
    """
    if isinstance(text, dict | list | int | float | bool):
        return {"data": text, "success": True}
    if text is None:
        return _parse_failure("JSON parse error: the text is empty (None)", None, None)
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    try:
        return {"data": json.loads(text), "success": True}
    except json.JSONDecodeError as exc:
        if strict:
            return _parse_failure(f"JSON parse error: {exc.msg}", exc.lineno, exc.colno)
        first = exc
    try:
        return {"data": json.loads(_lenient(str(text))), "success": True}
    except json.JSONDecodeError:
        if default is not None:
            return {"data": default, "success": True}
        return _parse_failure(f"JSON parse error: {first.msg}", first.lineno, first.colno)


def json_stringify(state: dict[str, Any], data: Any, indent: int | None = None,
                   sort_keys: bool = False) -> dict[str, Any]:
    """``data`` as JSON text (values JSON cannot hold are written as strings)."""
    text = json.dumps(data, indent=indent, sort_keys=bool(sort_keys), ensure_ascii=False,
                      default=str)
    return {"text": text, "success": True}


def yaml_parse(state: dict[str, Any], text: Any) -> dict[str, Any]:
    """Parse YAML ``text`` with the safe loader (no Python object tags)."""
    import yaml

    if isinstance(text, dict | list):
        return {"data": text, "success": True}
    if text is None:
        return _parse_failure("YAML parse error: the text is empty (None)", None, None)
    try:
        return {"data": yaml.safe_load(str(text)), "success": True}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        if mark is None:
            return _parse_failure(f"YAML parse error: {problem}", None, None)
        return _parse_failure(f"YAML parse error: {problem}", mark.line + 1, mark.column + 1)


@takes_context
def log(state: dict[str, Any], message: Any, level: str = "info", *,
        ctx: ActionContext) -> dict[str, Any]:
    """Log ``message`` on the ``tea.workflow`` logger at ``level``, secrets redacted."""
    number = _LEVELS.get(str(level).lower())
    if number is None:
        raise fail(ctx, "log", f"level must be one of {', '.join(_LEVELS)}, got {level!r}")
    text = message if isinstance(message, str) else json.dumps(message, default=str)
    workflow_log.log(number, "[%s] %s", ctx.node, redact_text(ctx, text))
    return {}


def _check_log(params: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    level = params.get("level", "info")
    if isinstance(level, str) and "{{" not in level and level.lower() not in _LEVELS:
        return [f"level must be one of {', '.join(_LEVELS)}, got '{level}'"]
    return []


log.__tea_validate__ = _check_log  # type: ignore[attr-defined]

ACTIONS: dict[str, Action] = {
    "json.parse": json_parse,
    "json_parse": json_parse,
    "json.stringify": json_stringify,
    "json_stringify": json_stringify,
    "yaml.parse": yaml_parse,
    "log": log,
}
