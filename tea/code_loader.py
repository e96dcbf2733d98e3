"""``run:``/``script:`` bodies (inline Python, Lua, expressions) → compiled bodies that know
where their code sits in the file (part of loading, for ``tea.node_loader``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tea.errors import Location, SchemaError, WorkflowSyntaxError
from tea.keys import check_keys
from tea.nodes import Body, ExpressionBody, LuaBody, PythonBody, TemplatedPythonBody
from tea.pycode import PythonCode
from tea.yamlsrc import location_of

if TYPE_CHECKING:
    from tea.node_loader import BodyContext

__all__ = ["code_location", "compile_run", "require_str", "timeout_of"]

log = logging.getLogger("tea.loader")


def code_location(raw: Mapping[str, Any], key: str, ctx: BodyContext) -> Location:
    """Where the code of ``raw[key]`` starts (the line after ``|`` for block scalars)."""
    loc = raw.value_loc(key) if hasattr(raw, "value_loc") else Location(ctx.file)
    if loc.line is not None and 0 < loc.line <= len(ctx.source_lines):
        text = ctx.source_lines[loc.line - 1][(loc.column or 1) - 1 :].lstrip()
        if text[:1] in ("|", ">"):
            # The column is the block's indentation: that of its first non-blank line.
            body = (line for line in ctx.source_lines[loc.line :] if line.strip())
            first = next(body, "")
            return Location(ctx.file, loc.line + 1, len(first) - len(first.lstrip()) + 1)
        if loc.column is not None:
            return Location(ctx.file, loc.line, loc.column + (text[:1] in ("'", '"')))
    return Location(ctx.file, loc.line)


def require_str(raw: Mapping[str, Any], key: str, what: str) -> str:
    """``raw[key]``, which must be a non-empty string (``SchemaError`` at the key)."""
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise SchemaError(f"{what}: '{key}' must be a non-empty string", location_of(raw, key))
    return value


def _lua_body(code: str, raw: Mapping[str, Any], key: str, ctx: BodyContext, node: Mapping[str, Any]) -> LuaBody:
    from tea.lua import LuaSyntaxError, check_syntax  # lupa loads only for workflows with Lua code

    try:
        check_syntax(code)
    except LuaSyntaxError as exc:
        base = code_location(raw, key, ctx)
        line = (base.line or 1) + (exc.lua_line or 1) - 1 if base.line else None
        raise WorkflowSyntaxError(
            f"Lua syntax error: {exc.message}", Location(ctx.file, line),
            hint="fix the Lua code of this node",
        ) from None
    return LuaBody(code, timeout_of(node), code_location(raw, key, ctx))


def timeout_of(raw: Mapping[str, Any]) -> float | None:
    """A node's ``timeout_seconds`` (``None``: none), checked."""
    timeout = raw.get("timeout_seconds")
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise SchemaError("timeout_seconds must be a positive number", location_of(raw, "timeout_seconds"))
    return float(timeout)


def compile_run(raw: Mapping[str, Any], ctx: BodyContext, what: str) -> Body:
    """The body of a ``run:``/``script:`` node or step: Python (compiled with the others once
    every node is read, or rendered per call when it holds templates), Lua, or an expression."""
    key = "run" if "run" in raw else "script"
    run = raw[key]
    language = raw.get("language", "python")
    if isinstance(run, Mapping):
        kind = run.get("type")
        if kind == "lua":
            code = run.get("code")
            if not isinstance(code, str):
                raise SchemaError(f"{what}: run: {{type: lua}} needs 'code'", location_of(run))
            return _lua_body(code, run, "code", ctx, raw)
        if kind == "expression":
            check_keys(run, frozenset({"type", "value", "output_key"}), f"{what} run")
            value = require_str(run, "value", what)
            return ExpressionBody(value, str(run.get("output_key", "result")), code_location(run, "value", ctx))
        raise SchemaError(
            f"{what}: run.type must be 'expression' or 'lua', not {kind!r}",
            location_of(run, "type") if "type" in run else location_of(run),
        )
    if not isinstance(run, str):
        raise SchemaError(f"{what}: '{key}' must be code (a string)", location_of(raw, key))
    if language == "lua" or ("language" not in raw and _marked_lua(run)):
        return _lua_body(run, raw, key, ctx, raw)
    if language != "python":
        raise SchemaError(
            f"{what}: unsupported language '{language}'", location_of(raw, "language"),
            hint="use 'python' (the default) or 'lua'",
        )
    if "{{" in run or "{%" in run:
        log.warning(
            "%s: its run: block holds templates, so it is rendered and compiled per call "
            "(as the reference does); reading state[...] directly is faster", what,
        )
        return TemplatedPythonBody(run, code_location(raw, key, ctx), what)
    code = PythonCode(run, code_location(raw, key, ctx), defer=True, label=what)
    ctx.deferred.append(code)
    return PythonBody(code)


def _marked_lua(code: str) -> bool:
    """The reference's marker: code whose first line is ``-- lua`` (or ``--lua``) is Lua."""
    return code.lstrip().startswith(("-- lua", "--lua"))
