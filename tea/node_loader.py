"""The ``nodes`` list of the YAML document → nodes and their bodies (part of loading).

Every problem raises a ``LoadError`` located at the key or value at fault.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tea.code_loader import compile_run, require_str, timeout_of
from tea.conditions import compile_condition
from tea.dialect import normalize_node
from tea.errors import LoadError, Location, SchemaError
from tea.graph import END, START, FanOut, Graph, ItemSpec, Node
from tea.keys import check_keys, suggest
from tea.matrix import each_fanout, is_each_node
from tea.nodes import (
    ActionBody,
    Body,
    LuaBody,
    StepsBody,
    TimedBody,
    WhileLoopBody,
)
from tea.policy import parse_node_policy
from tea.problems import Problems
from tea.pycode import PythonCode
from tea.routes import read_goto
from tea.subgraph_node import SubgraphBody
from tea.templates import compile_value
from tea.yamlsrc import located, location_of

if TYPE_CHECKING:
    from executors.base import ParallelConfig
    from tea.actions import ActionRegistry
    from tea.state import Reducer

__all__ = ["NODE_KEYS", "BodyContext", "compile_node_body", "read_nodes"]

_BODY_KEYS = {"run", "script", "language", "uses", "action", "with", "output", "steps",
              "subgraph", "input", "timeout_seconds", "name", "description"}
_DYNAMIC_KEYS = {"items", "item_var", "index_var", "max_concurrency", "fail_fast", "fan_in",
                 "action", "steps", "subgraph", "input", "parallel_strategy", "parallel"}
_BODIES = ("run", "script", "uses", "action", "steps", "subgraph")
_LOOP_KEYS = {"condition", "max_iterations", "body"}
NODE_KEYS = frozenset(
    _BODY_KEYS | _DYNAMIC_KEYS | _LOOP_KEYS
    | {"type", "goto", "interrupt", "on_error", "error_policy", "retry", "fallback",
       "strategy", "parallel_each", "max_workers"}
)
STEP_KEYS = frozenset(_BODY_KEYS)


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
    name = require_str(raw, key, what)
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
    return ActionBody(name, fn, compile_value(params, location_of(raw, "with")), compiled_output, ctx.registry)


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
    """run / script / uses / steps / subgraph, or ``None`` for a node with no body."""
    present = [k for k in _BODIES if k in raw]
    if len(present) > 1:
        raise SchemaError(
            f"{what} has both '{present[0]}' and '{present[1]}'", location_of(raw, present[1]),
            hint="a node runs one thing; split it into two nodes or use steps:",
        )
    if "input" in raw and present != ["subgraph"]:
        raise SchemaError(f"{what}: 'input' belongs to a subgraph: node", location_of(raw, "input"))
    if not present:
        return None
    body: Body
    if present[0] in ("run", "script"):
        body = compile_run(raw, ctx, what)
    elif present[0] in ("uses", "action"):
        body = _action_body(raw, ctx, what)
    elif present[0] == "subgraph":
        body = _subgraph_body(raw, ctx, what, inherit=True)
    else:
        body = _steps_body(raw["steps"], ctx, what, raw, "steps")
    return _timed(body, raw, what)


def _timed(body: Body, raw: Mapping[str, Any], what: str) -> Body:
    """``body`` held to the node's ``timeout_seconds`` (Lua keeps its own limit)."""
    seconds = timeout_of(raw)
    if seconds is None or isinstance(body, LuaBody):
        return body
    if isinstance(body, StepsBody | SubgraphBody):
        raise SchemaError(
            f"{what}: timeout_seconds applies to a run: or uses: body, not to {type(body).__name__[:-4].lower()}",
            location_of(raw, "timeout_seconds"),
            hint="put timeout_seconds on the step that may run long",
        )
    return TimedBody(body, seconds)


def _subgraph_body(raw: Mapping[str, Any], ctx: BodyContext, what: str, *, inherit: bool) -> SubgraphBody:
    """``subgraph: path`` (+ ``input``, + ``output`` for a node of its own)."""
    path = require_str(raw, "subgraph", what)
    where = location_of(raw, "subgraph")
    graph = ctx.load_subgraph(ctx.workflow_dir / path, where)
    stops = sorted(graph.interrupt_before | graph.interrupt_after
                   | {n.name for n in graph.nodes.values() if n.interrupt is not None})
    if stops:
        raise SchemaError(
            f"{what}: the subgraph {path} has interrupts ({', '.join(stops)}), and a subgraph cannot "
            "stop the run", where, hint="interrupt the run before or after this node instead",
        )
    given = raw.get("input")
    if given is not None and not isinstance(given, Mapping | str):
        raise SchemaError(f"{what}: 'input' must be a mapping of templates", location_of(raw, "input"))
    output = raw.get("output") if inherit else None
    if output is not None and not isinstance(output, str | Mapping):
        raise SchemaError(f"{what}: 'output' must be a key or a mapping", location_of(raw, "output"))
    return SubgraphBody(
        graph,
        compile_value(given, location_of(raw, "input")) if given is not None else None,
        compile_value(output, location_of(raw, "output")) if isinstance(output, Mapping) else output,
    )


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


def _dynamic_body(raw: Mapping[str, Any], ctx: BodyContext, what: str) -> FanOut:
    """The fan-out a ``type: dynamic_parallel`` node runs (its ``source`` is set by the caller)."""
    modes = [k for k in ("action", "steps", "subgraph") if k in raw]
    if len(modes) != 1:
        raise SchemaError(
            f"{what}: dynamic_parallel needs exactly one of action, steps, subgraph"
            + (f" (found {', '.join(modes)})" if modes else ""),
            location_of(raw, modes[1]) if len(modes) > 1 else location_of(raw),
        )
    if "items" not in raw:
        raise SchemaError(f"{what}: dynamic_parallel needs 'items'", location_of(raw))
    fan_in = require_str(raw, "fan_in", f"{what} (dynamic_parallel)")
    action = steps = subgraph = None
    mode = modes[0]
    if "input" in raw and mode != "subgraph":
        raise SchemaError(f"{what}: 'input' belongs to the subgraph mode of dynamic_parallel",
                          location_of(raw, "input"))
    if mode == "action":
        spec = raw["action"]
        if not isinstance(spec, Mapping):
            raise SchemaError(f"{what}: 'action' must be a mapping with uses:", location_of(raw, "action"))
        action = _action_body(spec, ctx, f"{what} action")
    elif mode == "steps":
        steps = _steps_body(raw["steps"], ctx, what, raw, "steps")
    else:
        subgraph = _subgraph_body(raw, ctx, what, inherit=False)
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
    each = ItemSpec(
        items=compile_value(raw["items"], location_of(raw, "items")),
        item_var=str(raw.get("item_var", "item")),
        index_var=str(raw.get("index_var", "index")),
        body=action or steps or subgraph,
        max_concurrency=compile_value(raw.get("max_concurrency"), location_of(raw, "max_concurrency")),
        fail_fast=raw.get("fail_fast"),
    )
    return FanOut(source="", fan_in=fan_in, config=config, each=each, location=location_of(raw))


def compile_node_body(
    raw: Mapping[str, Any], ctx: BodyContext, what: str
) -> tuple[Body | FanOut | None, str]:
    """The body of a node and its kind (for ``tea inspect``); a dynamic_parallel node's
    body is its ``FanOut``."""
    kind = raw.get("type")
    form = is_each_node(raw) if kind is None else None
    if form is not None:
        return each_fanout(raw, ctx, what, compile_simple_body), form
    if kind in ("while_loop", "dynamic_parallel") and "timeout_seconds" in raw:
        raise SchemaError(
            f"{what}: timeout_seconds does not apply to a {kind} node", location_of(raw, "timeout_seconds"),
            hint="put it on a step of the body (or, for a dynamic_parallel node's branches, under parallel:)",
        )
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
    for key in _LOOP_KEYS | (_DYNAMIC_KEYS - {"fan_in", "action", "steps", "subgraph", "input"}):
        if key in raw:
            raise SchemaError(
                f"{what}: '{key}' only applies to type: while_loop or dynamic_parallel",
                location_of(raw, key),
            )
    body = compile_simple_body(raw, ctx, what)
    if body is None:
        return None, "noop"
    named = body.body if isinstance(body, TimedBody) else body
    return body, type(named).__name__.removesuffix("Body").lower()


def read_nodes(
    nodes_raw: list[Any], ctx: BodyContext, problems: Problems, settings: Mapping[str, Any]
) -> dict[str, Node]:
    """The ``nodes`` list → nodes by name, in order; each problem is kept and the node skipped."""
    nodes: dict[str, Node] = {}
    for index, raw in enumerate(nodes_raw):
        try:
            name = _node_name(raw, nodes_raw, index, nodes)
        except LoadError as exc:
            problems.add(exc)
            continue
        try:
            raw = nodes_raw[index] = normalize_node(raw, f"node '{name}'", problems)  # the source ships it
            check_keys(raw, NODE_KEYS, f"node '{name}'")
            body, kind = compile_node_body(raw, ctx, f"node '{name}'")
            if isinstance(body, FanOut):
                node = Node(name=name, body=None, location=location_of(raw), kind=kind,
                            fanout=replace(body, source=name))
            else:
                node = Node(name=name, body=body, location=location_of(raw), kind=kind)
            _node_extras(node, raw, settings)
        except LoadError as exc:
            problems.add(exc)
            node = Node(name=name, body=None, location=location_of(raw))
        nodes[name] = node
        if isinstance(raw.get("fan_in"), str):
            problems.note(name, raw["fan_in"], location_of(raw, "fan_in"))
        node.route = read_goto(raw, name, problems)
    return nodes


def _node_name(raw: Any, nodes_raw: list[Any], index: int, seen: Mapping[str, Node]) -> str:
    where = location_of(nodes_raw, index)
    if not isinstance(raw, Mapping):
        raise SchemaError("each node must be a mapping with a 'name'", where)
    name = raw.get("name")
    if "name" in raw and not isinstance(name, str):
        raise SchemaError(f"a node name must be a string, not {type(name).__name__} ({name!r})",
                          location_of(raw, "name"), hint=f'quote it: name: "{name}"')
    if not isinstance(name, str) or not name:
        raise SchemaError("node without a 'name'", where, hint="add name: <unique name>")
    if name in seen:
        raise SchemaError(f"duplicate node name '{name}'", location_of(raw, "name"),
                          hint=f"first defined at line {seen[name].location.line}")
    if name in (START, END):
        raise SchemaError(f"'{name}' is reserved", location_of(raw, "name"))
    return name


def _node_extras(node: Node, raw: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
    interrupt = raw.get("interrupt")
    if interrupt is not None and interrupt not in ("before", "after"):
        raise SchemaError(f"node '{node.name}': interrupt must be 'before' or 'after'",
                          location_of(raw, "interrupt"))
    node.interrupt = interrupt
    fan_in = raw.get("fan_in")
    if node.fanout is None and fan_in is not None:
        if not isinstance(fan_in, bool):
            raise SchemaError(f"node '{node.name}': fan_in must be true or false here",
                              location_of(raw, "fan_in"),
                              hint="fan_in: <node> belongs on a parallel edge or a dynamic_parallel node")
        node.fan_in = fan_in
    node.error_policy = parse_node_policy(raw, settings, node.name)
