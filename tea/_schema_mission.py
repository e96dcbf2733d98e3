"""The mission half of ``tea.schema``: the ``mission`` definition and one per step type.

Built from the mission loader's own lists (``tea.mission.schema``'s keys, the
``settings`` keys, each ``StepType``'s parameters with their kinds, choices and
minimums), so a step type or a parameter added there shows up here. A step's
``parameters`` are checked against its ``step_type``; a value that is a template
(``"{{ fetch.output.body }}"``) is accepted for any parameter, as the loader does.
"""

from __future__ import annotations

from typing import Any

from executors import known_strategies
from tea.actions.llm import SETTING_KEYS as LLM_KEYS
from tea.mission.model import CONFIG_DEFAULTS
from tea.mission.schema import ID_PATTERN, RESERVED_NAMES, SETTINGS_KEYS, STEP_KEYS, TOP_KEYS
from tea.mission.steps import STEP_TYPES
from tea.mission.steps.base import Param, StepType

__all__ = ["mission_definitions"]

Schema = dict[str, Any]

_TEMPLATE: Schema = {"type": "string", "pattern": r"\{\{|\{%"}
_TEXT: Schema = {"type": ["string", "number"]}
_INT_TEXT = r"^\s*[-+]?\d[\d_]*\s*$"
_NUMBER_TEXT = (r"^\s*[-+]?(\d[\d_]*(\.[\d_]*)?|\.\d[\d_]*)([eE][-+]?\d+)?\s*$"
                r"|^\s*[-+]?([iI][nN][fF]([iI][nN][iI][tT][yY])?|[nN][aA][nN])\s*$")
_KINDS: dict[str, Schema] = {
    "text": _TEXT,
    # a number may be written as text ("3", as Python's int() and float() read it), or be a template
    "int": {"anyOf": [{"type": "number"}, {"type": "string", "pattern": _INT_TEXT}, _TEMPLATE]},
    "number": {"anyOf": [{"type": "number"}, {"type": "string", "pattern": _NUMBER_TEXT}, _TEMPLATE]},
    "bool": {"anyOf": [{"type": ["boolean", "string"]}, {"enum": [0, 1]}]},
    "list": {"anyOf": [{"type": "array"}, _TEMPLATE]},
    "mapping": {"anyOf": [{"type": "object"}, _TEMPLATE]},
    "strings": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    "command": {"anyOf": [{"type": "string"},
                          {"type": "array", "minItems": 1, "items": {"type": ["string", "number"]}}]},
    "any": {},
}


def _param(param: Param) -> Schema:
    schema: Schema = dict(_KINDS.get(param.kind, {}))
    if param.choices:
        schema = {"anyOf": [{"enum": list(param.choices)}, _TEMPLATE]}
    elif param.minimum is not None and param.kind in ("int", "number"):
        text = _INT_TEXT if param.kind == "int" else _NUMBER_TEXT
        schema = {"anyOf": [{"type": "number", "minimum": param.minimum},
                            {"type": "string", "pattern": text}, _TEMPLATE]}
    schema = {"anyOf": [schema, {"type": "null"}]} if schema else schema
    if param.doc:
        schema["description"] = param.doc
    if param.default is not None:
        schema["default"] = param.default
    return schema


def _step_type(stype: StepType) -> Schema:
    parameters: Schema = {
        "type": ["object", "null"],
        "properties": {p.name: _param(p) for p in stype.params},
        "additionalProperties": False,
    }
    required = [p.name for p in stype.params if p.required]
    if required:
        parameters["type"] = "object"
        parameters["required"] = required
    then: Schema = {"properties": {"parameters": parameters}}
    if required:
        then["required"] = ["parameters"]
    return {"if": {"properties": {"step_type": {"const": stype.name}}, "required": ["step_type"]},
            "then": then}


def _step() -> Schema:
    values: Schema = {
        "id": {"type": "string", "pattern": ID_PATTERN.pattern, "not": {"enum": sorted(RESERVED_NAMES)},
               "description": "letters, digits, _ (templates read {{ id.output }})"},
        "name": {"type": "string"},
        "step_type": {"enum": sorted(STEP_TYPES), "description": "what the step does"},
        "depends_on": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        "timeout_seconds": {"type": "number", "exclusiveMinimum": 0},
        "continue_on_error": {"type": "boolean"},
        "parameters": {"type": ["object", "null"]},
        "retry_attempts": {"type": "integer", "minimum": 0},
        "retry_delay_ms": {"type": "number", "minimum": 0},
    }
    return {
        "type": "object",
        "properties": {key: values.get(key, {}) for key in STEP_KEYS},
        "required": ["id", "step_type"],
        "additionalProperties": False,
        "allOf": [_step_type(stype) for stype in STEP_TYPES.values()],
    }


def _settings() -> Schema:
    strategies = known_strategies()
    parallel: Schema = {
        "type": "object",
        "properties": {
            "strategy": {"enum": strategies}, "max_workers": {"type": "integer", "minimum": 1},
            **{name: {"type": "object"} for name in strategies},
        },
        "additionalProperties": False,
    }
    sections: Schema = {
        "parallel": parallel,
        "shell": {"type": "object", "properties": {"enabled": {"type": "boolean"}}, "additionalProperties": False},
        "files": {"type": "object", "properties": {"root": {"type": "string"}}, "additionalProperties": False},
        "llm": {"type": "object", "properties": {k: {} for k in LLM_KEYS}, "additionalProperties": False},
    }
    return {"type": ["object", "null"], "properties": {k: sections.get(k, {}) for k in SETTINGS_KEYS},
            "additionalProperties": False}


def _config() -> Schema:
    values: Schema = {
        "timeout_seconds": {"type": "number", "exclusiveMinimum": 0},
        "fail_fast": {"type": "boolean"},
        "max_concurrent_steps": {"type": "integer", "minimum": 1},
        "retry_attempts": {"type": "integer", "minimum": 0},
        "retry_delay_ms": {"type": "number", "minimum": 0},
    }
    return {"type": ["object", "null"], "properties": {k: values.get(k, {}) for k in CONFIG_DEFAULTS},
            "additionalProperties": False}


def mission_definitions() -> Schema:
    """``mission`` and ``mission_step``, for ``tea.schema``'s ``definitions``."""
    top: Schema = {
        "name": {"type": "string"}, "version": _TEXT, "description": {"type": "string"},
        "config": _config(), "settings": _settings(),
        "steps": {"type": "array", "minItems": 1, "items": {"$ref": "#/definitions/mission_step"}},
    }
    mission = {
        "type": "object", "description": "a tea mission: a dependency graph of typed steps",
        "properties": {k: top.get(k, {}) for k in TOP_KEYS},
        "required": ["steps"], "additionalProperties": False,
    }
    return {"mission": mission, "mission_step": _step()}
