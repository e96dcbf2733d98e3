"""Node mappings of the YAML document → node bodies (part of the loader).

Every problem raises a ``LoadError`` located at the key or value at fault.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tea.conditions import compile_condition
from tea.errors import Location, SchemaError, WorkflowSyntaxError
from tea.nodes import (
    ActionBody,
    Body,
    ExpressionBody,
    LuaBody,
    PythonBody,
    StepsBody,
    WhileLoopBody,
)
from tea.pycode import PythonCode
from tea.templates import compile_value
from tea.yamlsrc import located, location_of

if TYPE_CHECKING:
    from executors.base import ParallelConfig
    from tea.actions import ActionRegistry
    from tea.graph import Graph
    from tea.state import Reducer

__all__ = ["NODE_KEYS", "BodyContext", "check_keys", "compile_node_body", "suggest"]

_BODY_KEYS = {"run", "script", "language", "uses", "action", "with", "output", "steps",
              "timeout_seconds", "name", "description"}
_DYNAMIC_KEYS = {"items", "item_var", "index_var", "max_concurrency", "fail_fast", "fan_in",
                 "action", "steps", "subgraph", "input", "parallel_strategy", "parallel"}
_LOOP_KEYS = {"condition", "max_iterations", "body"}
NODE_KEYS = frozenset(
    _BODY_KEYS | _DYNAMIC_KEYS | _LOOP_KEYS
    | {"type", "goto", "interrupt", "on_error", "error_policy", "retry", "fallback"}
)
STEP_KEYS = frozenset(_BODY_KEYS)


def suggest(word: str, choices: Any) -> str | None:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{match[0]}'?" if match else None


def check_keys(raw: Mapping[str, Any], allowed: frozenset[str] | set[str], what: str) -> None:
    for key in raw:
        if key not in allowed:
            raise SchemaError(
                f"unknown key '{key}' in {what}",
                location_of(raw, key),
                hint=suggest(str(key), allowed) or f"allowed keys: {', '.join(sorted(allowed))}",
            )


@dataclass
class BodyContext:
    """What compiling a node body needs from the rest of the document."""

    file: str | None
    source_lines: list[str]
    registry: ActionRegistry | None
    reducers: Mapping[str, Reducer]
    parallel: ParallelConfig
    parse_parallel: Callable[[Any, ParallelConfig, str], ParallelConfig]
    load_subgraph: Callable[[Path, Location], Graph]
    workflow_dir: Path
    settings: Mapping[str, Any] = field(default_factory=dict)
    deferred: list[PythonCode] = field(default_factory=list)
    """Python bodies compiled together once every node is read (``compile_deferred``)."""
    node_names: set[str] = field(default_factory=set)


def _code_location(raw: Mapping[str, Any], key: str, ctx: BodyContext) -> Location:
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


def _require_str(raw: Mapping[str, Any], key: str, what: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise SchemaError(f"{what}: '{key}' must be a non-empty string", location_of(raw, key))
    return value


def _lua_body(code: str, raw: Mapping[str, Any], key: str, ctx: BodyContext, timeout: Any) -> LuaBody:
    from tea.lua import LuaSyntaxError, check_syntax

    try:
        check_syntax(code)
    except LuaSyntaxError as exc:
        base = _code_location(raw, key, ctx)
        line = (base.line or 1) + (exc.lua_line or 1) - 1 if base.line else None
        raise WorkflowSyntaxError(
            f"Lua syntax error: {exc.message}", Location(ctx.file, line),
            hint="fix the Lua code of this node",
        ) from None
    if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
        raise SchemaError("timeout_seconds must be a positive number", location_of(raw, "timeout_seconds"))
    return LuaBody(code, float(timeout) if timeout is not None else None, _code_location(raw, key, ctx))


def _run_body(raw: Mapping[str, Any], ctx: BodyContext, what: str) -> Body:
    key = "run" if "run" in raw else "script"
    run = raw[key]
    language = raw.get("language", "python")
    if isinstance(run, Mapping):
        kind = run.get("type")
        if kind == "lua":
            code = run.get("code")
            if not isinstance(code, str):
                raise SchemaError(f"{what}: run: {{type: lua}} needs 'code'", location_of(run))
            return _lua_body(code, run, "code", ctx, raw.get("timeout_seconds"))
        if kind == "expression":
            check_keys(run, frozenset({"type", "value", "output_key"}), f"{what} run")
            value = _require_str(run, "value", what)
            return ExpressionBody(value, str(run.get("output_key", "result")), _code_location(run, "value", ctx))
        raise SchemaError(
            f"{what}: run.type must be 'expression' or 'lua', not {kind!r}",
            location_of(run, "type") if "type" in run else location_of(run),
        )
    if not isinstance(run, str):
        raise SchemaError(f"{what}: '{key}' must be code (a string)", location_of(raw, key))
    if language == "lua":
        return _lua_body(run, raw, key, ctx, raw.get("timeout_seconds"))
    if language != "python":
        raise SchemaError(
            f"{what}: unsupported language '{language}'", location_of(raw, "language"),
            hint="use 'python' (the default) or 'lua'",
        )
    code = PythonCode(run, _code_location(raw, key, ctx), defer=True, label=what)
    ctx.deferred.append(code)
    return PythonBody(code)


def _resolve(registry: ActionRegistry, name: str) -> Any:
    """A registered action; installed ``tea.actions`` plugins are scanned only on a miss
    (the scan costs milliseconds that most workflows never need)."""
    try:
        return registry.resolve(name)
    except KeyError:
        from tea.actions import load_entry_points

        load_entry_points(registry)
        return registry.resolve(name)


def _action_body(raw: Mapping[str, Any], ctx: BodyContext, what: str) -> ActionBody:
    key = "uses" if "uses" in raw else "action"
    name = _require_str(raw, key, what)
    if ctx.registry is None:
        # The imports failed (and were reported): naming actions here would only add noise.
        return ActionBody(name, None, {}, None)
    try:
        fn = _resolve(ctx.registry, name)
    except KeyError as exc:
        raise SchemaError(
            f"{what}: unknown action '{name}'", location_of(raw, key),
            hint=getattr(exc, "hint", None) or suggest(name, ctx.registry.names()),
        ) from None
    params = raw.get("with") or {}
    if not isinstance(params, Mapping):
        raise SchemaError(f"{what}: 'with' must be a mapping", location_of(raw, "with"))
    output = raw.get("output")
    if output is not None and not isinstance(output, str | Mapping):
        raise SchemaError(f"{what}: 'output' must be a key or a mapping", location_of(raw, "output"))
    from tea.actions import validate_action_params

    problems = validate_action_params(name, dict(params), registry=ctx.registry, settings=ctx.settings)
    if problems:
        where = location_of(raw, "with") if "with" in raw else location_of(raw, key)
        raise SchemaError(f"{what}: {problems[0]}", where)
    compiled_output = compile_value(output, location_of(raw, "output")) if isinstance(output, Mapping) else output
    return ActionBody(name, fn, compile_value(params, location_of(raw, "with")), compiled_output)


def _steps_body(steps: Any, ctx: BodyContext, what: str, owner: Mapping[str, Any], key: str) -> StepsBody:
    if not isinstance(steps, list) or not steps:
        raise SchemaError(f"{what}: '{key}' must be a non-empty list of steps", location_of(owner, key))
    compiled: list[tuple[str, Body]] = []
    for index, step in enumerate(steps):
        step_what = f"{what} step {index + 1}"
        if not isinstance(step, Mapping):
            raise SchemaError(f"{step_what} must be a mapping", location_of(steps, index))
        check_keys(step, STEP_KEYS, step_what)
        body = compile_simple_body(step, ctx, step_what)
        if body is None:
            raise SchemaError(f"{step_what} has nothing to run", location_of(step),
                              hint="give it run:, uses:, or steps:")
        compiled.append((str(step.get("name", "")), body))
    return StepsBody(compiled, ctx.reducers)


def compile_simple_body(raw: Mapping[str, Any], ctx: BodyContext, what: str) -> Body | None:
    """run / script / uses / steps, or ``None`` for a node with no body."""
    present = [k for k in ("run", "script", "uses", "action", "steps") if k in raw]
    if len(present) > 1:
        raise SchemaError(
            f"{what} has both '{present[0]}' and '{present[1]}'", location_of(raw, present[1]),
            hint="a node runs one thing; split it into two nodes or use steps:",
        )
    if not present:
        return None
    if present[0] in ("run", "script"):
        return _run_body(raw, ctx, what)
    if present[0] in ("uses", "action"):
        return _action_body(raw, ctx, what)
    return _steps_body(raw["steps"], ctx, what, raw, "steps")


def _while_body(raw: Mapping[str, Any], ctx: BodyContext, what: str) -> WhileLoopBody:
    if "condition" not in raw:
        raise SchemaError(f"{what}: while_loop needs 'condition'", location_of(raw))
    limit = raw.get("max_iterations")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise SchemaError(
            f"{what}: while_loop needs 'max_iterations', a positive integer",
            location_of(raw, "max_iterations") if "max_iterations" in raw else location_of(raw),
            hint="add max_iterations: 100 (a bound keeps unattended runs from looping forever)",
        )
    condition = compile_condition(raw["condition"], location_of(raw, "condition"))
    body = _steps_body(raw.get("body"), ctx, what, raw, "body")
    return WhileLoopBody(condition, limit, body)


def _dynamic_body(raw: Mapping[str, Any], ctx: BodyContext, what: str) -> Any:
    from tea.fanout import DynamicParallelBody

    modes = [k for k in ("action", "steps", "subgraph") if k in raw]
    if len(modes) != 1:
        raise SchemaError(
            f"{what}: dynamic_parallel needs exactly one of action, steps, subgraph"
            + (f" (found {', '.join(modes)})" if modes else ""),
            location_of(raw, modes[1]) if len(modes) > 1 else location_of(raw),
        )
    if "items" not in raw:
        raise SchemaError(f"{what}: dynamic_parallel needs 'items'", location_of(raw))
    fan_in = _require_str(raw, "fan_in", f"{what} (dynamic_parallel)")
    action = steps = subgraph = None
    mode = modes[0]
    if mode == "action":
        spec = raw["action"]
        if not isinstance(spec, Mapping):
            raise SchemaError(f"{what}: 'action' must be a mapping with uses:", location_of(raw, "action"))
        action = _action_body(spec, ctx, f"{what} action")
    elif mode == "steps":
        steps = _steps_body(raw["steps"], ctx, what, raw, "steps")
    else:
        path = _require_str(raw, "subgraph", what)
        subgraph = ctx.load_subgraph(ctx.workflow_dir / path, location_of(raw, "subgraph"))
    given = raw.get("parallel")
    if given is not None and not isinstance(given, Mapping):
        raise SchemaError(f"{what}: 'parallel' must be a mapping of parallel settings", location_of(raw, "parallel"))
    overrides: dict[str, Any] = dict(given or {})
    if "parallel_strategy" in raw:
        overrides["strategy"] = raw["parallel_strategy"]
    if given is not None:
        where = located(overrides, given, {})
        if "strategy" in overrides and "strategy" not in given:
            where.key_locs["strategy"] = location_of(raw, "parallel_strategy")
            where.value_locs["strategy"] = raw.value_loc("parallel_strategy")  # type: ignore[attr-defined]
    else:
        where = located(overrides, raw, {"strategy": "parallel_strategy"})
    config = ctx.parse_parallel(where, ctx.parallel, f"{what}: parallel") if overrides else ctx.parallel
    limit = raw.get("max_concurrency")
    return DynamicParallelBody(
        items=compile_value(raw["items"], location_of(raw, "items")),
        item_var=str(raw.get("item_var", "item")),
        index_var=str(raw.get("index_var", "index")),
        max_concurrency=compile_value(limit, location_of(raw, "max_concurrency")),
        fail_fast=raw.get("fail_fast"),
        fan_in=fan_in,
        config=config,
        action=action,
        steps=steps,
        subgraph=subgraph,
        subgraph_input=compile_value(raw.get("input"), location_of(raw, "input")),
    )


def compile_node_body(raw: Mapping[str, Any], ctx: BodyContext, what: str) -> tuple[Body | None, str]:
    """The body of a node and its kind (for ``tea inspect``)."""
    kind = raw.get("type")
    if kind == "while_loop":
        return _while_body(raw, ctx, what), "while_loop"
    if kind == "dynamic_parallel":
        return _dynamic_body(raw, ctx, what), "dynamic_parallel"
    if kind is not None:
        raise SchemaError(
            f"{what}: unknown node type '{kind}'", location_of(raw, "type"),
            hint=suggest(str(kind), ["while_loop", "dynamic_parallel"])
            or "known types: while_loop, dynamic_parallel",
        )
    for key in _LOOP_KEYS | (_DYNAMIC_KEYS - {"fan_in", "action", "steps"}):
        if key in raw and key not in ("input",):
            raise SchemaError(
                f"{what}: '{key}' only applies to type: while_loop or dynamic_parallel",
                location_of(raw, key),
            )
    body = compile_simple_body(raw, ctx, what)
    if body is None:
        return None, "noop"
    kind_name = type(body).__name__.removesuffix("Body").lower()
    return body, kind_name
