"""A JSON Schema of tea's YAML: workflows and missions, for editors and CI.

``json_schema()`` returns a draft-07 schema (the draft yaml-language-server and most
editors read) that accepts a workflow (``nodes:``) or a mission (``steps:`` without
``nodes:``); ``json_schema("workflow")`` or ``("mission")`` one of them. ``tea schema``
prints it; an editor picks it up from a modeline on the first line of a file::

    # yaml-language-server: $schema=./tea.schema.json

The key lists come from the loader's own (``TOP_LEVEL_KEYS``, ``NODE_KEYS``,
``EDGE_KEYS``, ``PARALLEL_KEYS``, ``RETRY_KEYS``, the mission's keys and step types),
so a key the loader learns shows up here. The schema checks what the loader checks
about shapes (unknown keys, types, required keys, enumerations); what needs the
whole graph (a goto naming no node, a cycle, an unknown action) stays the loader's,
and a value that may be a template (``"{{ ... }}"``) is accepted as a string.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations
from typing import Any

from executors import known_strategies
from executors.retry import RETRY_KEYS
from tea.actions.llm import SETTING_KEYS as LLM_KEYS
from tea.dialect import IGNORED_EDGE_KEYS, IGNORED_NODE_KEYS, IGNORED_TOP_LEVEL, SEED_TOP_LEVEL
from tea.document import CONFIG_KEYS, TOP_LEVEL_KEYS
from tea.io_schema import FIELD_KEYS
from tea.matrix import MATRIX_KEYS
from tea.node_loader import NODE_KEYS, STEP_KEYS
from tea.parallel_settings import PARALLEL_KEYS
from tea.routes import EDGE_KEYS

__all__ = ["KINDS", "SCHEMA_ID", "json_schema"]

KINDS = ("all", "workflow", "mission")
SCHEMA_ID = "urn:tea-engine:schema:1"
Schema = dict[str, Any]

TEMPLATE: Schema = {"type": "string", "pattern": r"\{\{|\{%"}
"""A value known only at run time."""
_STRINGS: Schema = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
_NAME: Schema = {"type": "string", "minLength": 1, "not": {"enum": ["__start__", "__end__"]}}
_POSITIVE: Schema = {"type": "number", "exclusiveMinimum": 0}
_ANY: Schema = {}
_IGNORED: Schema = {"description": "the reference's; accepted and ignored (a warning at load)"}


def _obj(properties: Mapping[str, Schema], *, required: Sequence[str] = (), open_: bool = False,
         description: str | None = None, nullable: bool = False) -> Schema:
    """An object schema: only ``properties`` unless ``open_``."""
    schema: Schema = {"type": ["object", "null"] if nullable else "object", "properties": dict(properties)}
    if required:
        schema["required"] = list(required)
    if not open_:
        schema["additionalProperties"] = False
    if description:
        schema["description"] = description
    return schema


def _keys(names: Iterable[str], known: Mapping[str, Schema]) -> dict[str, Schema]:
    """``known`` schemas for ``names`` (any value for a name ``known`` lacks), sorted."""
    return {name: known.get(name, _ANY) for name in sorted(names)}


def _int(minimum: int) -> Schema:
    return {"type": "integer", "minimum": minimum}


def _number(minimum: float = 0) -> Schema:
    return {"type": "number", "minimum": minimum}


def _retry_block(extra: Mapping[str, Schema] | None = None) -> Schema:
    known = {
        "max_attempts": {**_int(1), "description": "tries in all, the first included"},
        "max_retries": {**_int(0), "description": "deprecated: retries after the first try"},
        "backoff_base_ms": {**_number(), "description": "wait before the second try (ms), doubling after"},
        "backoff_max_ms": _number(),
        "jitter": {"type": "boolean", "description": "each wait drawn between 0 and the backoff"},
        "retry_on": {**_STRINGS, "description": "error type names retried (default: every error)"},
        **(extra or {}),
    }
    return {**_obj(_keys([*RETRY_KEYS, "max_retries", *(extra or {})], known)),
            "not": {"required": ["max_attempts", "max_retries"]}}


def _parallel_values() -> dict[str, Schema]:
    return {
        "strategy": {"type": "string", "description": "where branches run",
                     "examples": known_strategies()},
        "max_workers": {"type": ["integer", "null"], "minimum": 1},
        "timeout_seconds": {"anyOf": [_POSITIVE, {"type": "null"}], "description": "per branch try"},
        "fail_fast": {"type": "boolean"},
        "on_branch_failure": {"enum": ["fail", "continue"]},
        "retry": _retry_block(),
        "circuit_breaker": {"anyOf": [{"type": ["boolean", "null"]}, _obj({
            "failure_threshold": _int(1), "reset_timeout_seconds": _POSITIVE})]},
        "max_branches": _int(1),
        **{name: {"type": "object", "description": f"options of the {name} strategy"}
           for name in known_strategies()},
    }


def _parallel_block() -> Schema:
    names = [*PARALLEL_KEYS, *known_strategies()]
    return _obj({**_keys(names, _parallel_values()), "streams": _IGNORED},
                description="how fan-outs run", nullable=True)


def _error_policy() -> Schema:
    extra: dict[str, Schema] = {"on_failure": {"enum": ["checkpoint_and_exit", "continue", "fallback"]},
                                "fallback": {"type": "string"}}
    return _retry_block(extra)


def _on_error() -> Schema:
    return _obj({
        "mode": {"enum": ["raise", "graceful", "retry"]}, "max_retries": _number(),
        "retry_delay": _number(), "backoff_multiplier": _number(1), "retryable_errors": _ANY,
        "fallback": _ANY, "capture_traceback": _ANY,
    }, description="the reference dialect's error handling")


def _settings() -> Schema:
    return _obj({
        "parallel": _parallel_block(),
        "lua": _obj({"sandbox": {"type": "boolean"}, "timeout_seconds": _POSITIVE,
                     "max_memory_mb": {"anyOf": [_POSITIVE, {"type": "null"}]}}, nullable=True),
        "shell": _obj({"enabled": {"type": "boolean"}}, open_=True),
        "files": {"type": "object"},
        "llm": _obj({key: _ANY for key in LLM_KEYS}, open_=True, description="defaults of llm actions"),
        "error_policy": _error_policy(),
        "recursion_limit": _int(1),
        "step_budget": _int(1),
    }, open_=True, nullable=True, description="engine settings (other keys are free: {{ settings.x }})")


def _run() -> Schema:
    lua = _obj({"type": {"const": "lua"}, "code": {"type": "string"}}, required=["type", "code"], open_=True)
    expression = _obj({"type": {"const": "expression"}, "value": {"type": "string", "minLength": 1},
                       "output_key": _ANY}, required=["type", "value"])
    return {"anyOf": [{"type": "string"}, lua, expression],
            "description": "inline Python (or Lua with language: lua), or {type: expression|lua}"}


def _body_values() -> dict[str, Schema]:
    return {
        "name": {"type": "string"}, "description": _ANY,
        "run": _run(), "script": _run(),
        "language": {"enum": ["python", "lua"]},
        "uses": {"type": "string", "minLength": 1, "description": "an action: llm.call, http.get, ..."},
        "action": {"anyOf": [{"type": "string", "minLength": 1}, {"$ref": "#/definitions/step"}]},
        "with": {"type": ["object", "null"], "description": "the action's parameters"},
        "output": {"type": ["string", "object", "null"]},
        "steps": {"type": "array", "minItems": 1, "items": {"$ref": "#/definitions/step"}},
        "subgraph": {"type": "string", "minLength": 1, "description": "a workflow file run as this body"},
        "input": {"type": ["object", "null"], "description": "the subgraph's input (templates)"},
        "timeout_seconds": _ANY,
    }


_BODIES = ("run", "script", "uses", "action", "steps", "subgraph")


def _one_body() -> Schema:
    """At most one of run, script, uses, action, steps, subgraph."""
    return {"not": {"anyOf": [{"required": list(pair)} for pair in combinations(_BODIES, 2)]}}


def _step() -> Schema:
    return {**_obj(_keys(STEP_KEYS, _body_values())),
            "anyOf": [{"required": [key]} for key in _BODIES], **_one_body()}


_TYPED_ONLY = ("max_iterations", "body", "items", "item_var", "index_var",
               "max_concurrency", "fail_fast", "parallel_strategy", "parallel")
_MATRIX: Schema = {"properties": {"strategy": {"type": "object", "required": ["matrix"]}}, "required": ["strategy"]}
_FANS_OUT: Schema = {"anyOf": [_MATRIX, {"required": ["parallel_each"]}]}


def _fan_out_values() -> dict[str, Schema]:
    """The keys of ``strategy: {matrix}`` and ``parallel_each`` nodes."""
    matrix = _obj(_keys(MATRIX_KEYS, {
        "matrix": {"type": "object", "minProperties": 1,
                   "additionalProperties": {"type": "array", "minItems": 1},
                   "description": "one branch per combination; the branch sees state.matrix"},
        "max_parallel": _int(1), "fail_fast": {"type": "boolean"},
    }), required=["matrix"])
    return {
        "strategy": {"if": {"type": "object", "required": ["matrix"]}, "then": matrix,
                     "description": "{matrix: {k: [...]}, max_parallel, fail_fast} (anything else is ignored)"},
        "parallel_each": {"anyOf": [TEMPLATE, {"type": "array"}],
                          "description": "one branch per item; the branch sees item and item_index"},
        "max_workers": _int(1),
    }


def _node(named: bool = True) -> Schema:
    values = {
        **_body_values(),
        **_fan_out_values(),
        "name": {**_NAME, "description": "unique; the first node is the entry"},
        "type": {"enum": ["while_loop", "dynamic_parallel"]},
        "goto": {"anyOf": [{"type": "string"}, {"type": "array", "items": _obj(
            {"if": _ANY, "to": {"type": "string"}}, required=["to"])}]},
        "interrupt": {"enum": ["before", "after"]},
        "error_policy": _error_policy(), "retry": _error_policy(), "on_error": _on_error(),
        "fallback": {"type": "string", "description": "the node to route to once retries run out"},
        "max_iterations": _int(1), "body": {"type": "array", "minItems": 1, "items": {"$ref": "#/definitions/step"}},
        "fan_in": {"type": ["string", "boolean"]},
        "max_concurrency": {"anyOf": [_int(1), TEMPLATE]},
        "subgraph": {"type": "string", "minLength": 1},
        "parallel_strategy": {"type": "string", "examples": known_strategies()},
        "parallel": _parallel_block(),
        "config": {"type": ["object", "null"], "description": "the seeds' spelling of with:"},
        **{key: _IGNORED for key in IGNORED_NODE_KEYS if key != "condition"},
    }
    loop = {"properties": {"type": {"const": "while_loop"}}, "required": ["type"]}
    dynamic = {"properties": {"type": {"const": "dynamic_parallel"}}, "required": ["type"]}
    fan_in: Schema = {"required": ["fan_in"], "properties": {"fan_in": {"type": "string", "minLength": 1}}}
    names = [*NODE_KEYS, "config", *IGNORED_NODE_KEYS]
    return {
        **_obj(_keys(names, values), required=["name"] if named else ()),
        "patternProperties": {"^_": _IGNORED},
        "allOf": [
            {"if": loop, "then": {"required": ["condition", "max_iterations", "body"]}},
            {"if": dynamic, "then": {**fan_in, "required": ["items", "fan_in"],
                                     "oneOf": [{"required": [key]} for key in ("action", "steps", "subgraph")]}},
            {"if": {"not": {"anyOf": [{"required": ["type"]}, _FANS_OUT]}}, "then": {
                "properties": {"fan_in": {"type": "boolean"}, "action": {"type": "string", "minLength": 1}},
                "allOf": [_one_body(), {"not": {"anyOf": [{"required": [key]} for key in _TYPED_ONLY]}},
                          {"not": {"required": ["config", "with"]}}]}},
            {"if": {**_FANS_OUT, "not": {"required": ["type"]}}, "then": {
                **fan_in, "anyOf": [{"required": [key]} for key in ("run", "script", "uses", "action", "steps")],
                "allOf": [_one_body(), {"not": {"required": ["strategy", "parallel_each"]}}]}},
        ],
    }


def _io_schema(which: str) -> Schema:
    field: Schema = {"$ref": "#/definitions/io_field"}
    json_form = _obj({"type": {"enum": ["object", "dict"]}, "required": {"type": "array", "items": {"type": "string"}},
                      "properties": {"type": "object", "additionalProperties": field},
                      "description": _ANY, "title": _ANY, "$schema": _ANY},
                     required=["type", "properties"])
    fields = {"type": "object", "additionalProperties": field}
    if which == "input":
        return {"anyOf": [{"type": "null"}, json_form, fields],
                "description": "the fields the input takes, checked before the first node"}
    return {"type": ["object", "null"], "description": "the fields the final state must have (checked "
            "after the last node); the reference's mapping of templates is accepted and ignored"}


def _io_field() -> Schema:
    types = {"enum": ["str", "int", "float", "bool", "list", "dict",
                      "string", "integer", "number", "boolean", "array", "object"]}
    known: dict[str, Schema] = {
             "type": types, "required": {"type": ["boolean", "array"]}, "pattern": {"type": "string"},
             "choices": {"type": "array"}, "enum": {"type": "array"},
             "properties": {"type": "object", "additionalProperties": {"$ref": "#/definitions/io_field"}},
             "items": {"$ref": "#/definitions/io_field"},
             **{key: {"type": "number"} for key in ("min", "max", "minimum", "maximum")},
             **{key: _int(0) for key in ("min_length", "max_length", "minLength", "maxLength")}}
    return _obj(_keys(FIELD_KEYS, known))


def _edge() -> Schema:
    values = {**_parallel_values(),
              "from": {"type": "string"}, "to": _STRINGS, "fan_in": {"type": "string"},
              "type": {"enum": ["parallel", "normal"]}, "parallel": {"type": "boolean"},
              "parallel_strategy": {"type": "string", "examples": known_strategies()},
              **{key: _IGNORED for key in IGNORED_EDGE_KEYS}}
    fan_out = {"anyOf": [{"properties": {"to": {"type": "array"}}, "required": ["to"]},
                         {"properties": {"type": {"const": "parallel"}}, "required": ["type"]},
                         {"properties": {"parallel": {"const": True}}, "required": ["parallel"]}]}
    return {**_obj(_keys([*EDGE_KEYS, *known_strategies(), *IGNORED_EDGE_KEYS], values), required=["from", "to"]),
            "if": fan_out, "then": {"required": ["fan_in"]}}


def _workflow() -> Schema:
    reducer = {"anyOf": [{"type": "string"}, _obj({"type": _ANY, "reducer": {"type": "string"}}, open_=True)]}
    values = {
        "name": _ANY, "description": _ANY, "version": _ANY,
        "variables": {"type": ["object", "null"]}, "data": {"type": ["object", "null"]},
        "initial_state": {"type": ["object", "null"]},
        "state_schema": {"type": ["object", "null"], "additionalProperties": reducer},
        "settings": _settings(),
        "config": _obj({**_keys(CONFIG_KEYS, {
            "interrupt_before": _STRINGS, "interrupt_after": _STRINGS,
            "checkpoint_interval_seconds": _number(), "recursion_limit": _int(1),
        }), "max_execution_time": _IGNORED}, nullable=True),
        "imports": {"type": ["array", "null"], "items": _obj({
            "path": {"type": "string"}, "package": {"type": "string"}, "namespace": {"type": "string"},
        }, open_=False)},
        "nodes": {"anyOf": [
            {"type": "array", "minItems": 1, "items": {"$ref": "#/definitions/node"}},
            {"type": "object", "minProperties": 1, "description": "the seeds' form: name → node",
             "additionalProperties": {"anyOf": [{"type": "null"}, {"$ref": "#/definitions/mapped_node"}]}},
        ]},
        "edges": {"type": ["array", "null"], "items": {"$ref": "#/definitions/edge"}},
        "input_schema": _io_schema("input"), "output_schema": _io_schema("output"),
        **{key: {"description": "read by the validate.extraction action"} for key in (
            "extraction_schema", "semantic_probes", "validation_logging", "validation_constraints")},
        "error_policy": {**_error_policy(), "description": "the seeds' spelling of settings.error_policy"},
        **{key: _IGNORED for key in IGNORED_TOP_LEVEL},
    }
    names = [*TOP_LEVEL_KEYS, *SEED_TOP_LEVEL, *IGNORED_TOP_LEVEL]
    return {**_obj(_keys(names, values), required=["nodes"], description="a tea workflow"),
            "not": {"required": ["error_policy", "settings"],
                    "properties": {"settings": {"required": ["error_policy"]}}}}


def json_schema(kind: str = "all") -> Schema:
    """The schema of ``kind``: ``all`` (a workflow or a mission), ``workflow`` or ``mission``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    from tea._schema_mission import mission_definitions  # reads the step types: only when asked

    definitions: Schema = {"workflow": _workflow(), "node": _node(), "mapped_node": _node(named=False),
                           "step": _step(), "edge": _edge(), "io_field": _io_field(), **mission_definitions()}
    root: Schema = {"$schema": "http://json-schema.org/draft-07/schema#", "$id": SCHEMA_ID,
                    "title": "tea workflow or mission", "definitions": definitions}
    if kind == "all":
        root["if"] = {"required": ["steps"], "not": {"required": ["nodes"]}}
        root["then"] = {"$ref": "#/definitions/mission"}
        root["else"] = {"$ref": "#/definitions/workflow"}
    else:
        root["title"] = f"tea {kind}"
        root["allOf"] = [{"$ref": f"#/definitions/{kind}"}]
    return root
