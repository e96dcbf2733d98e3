"""``input_schema`` and ``output_schema``: what a run takes and what it gives back.

Read at load (``parse_io_schema``), checked by ``tea.run``: the input before the
first node (``check_input``: defaults filled in, the reference's coercions made,
an ``InputError``, exit 2, naming every field at fault) and the final state after
the last node (``check_output``: a ``RunError``, exit 1).

The form is the reference's (``the_edge_agent.validation``): a mapping of field
name to ``{type, required, default, min_length, max_length, pattern, min, max,
choices, properties, items}`` with types ``str int float bool list dict``. The
JSON-Schema spellings of that subset are read too: ``{type: object, properties,
required: [...]}`` around the fields, types ``string integer number boolean array
object``, ``enum``, ``minimum``/``maximum``, ``minLength``/``maxLength``.
Keys of the state that the schema does not name pass unchecked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from tea.errors import InputError, Location, RunError, SchemaError
from tea.keys import check_keys, suggest
from tea.yamlsrc import location_of

__all__ = ["Field", "IOSchema", "check_input", "check_output", "is_check_form", "parse_io_schema"]

TYPES = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict}
_ALIASES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool",
            "array": "list", "object": "dict"}
_KEY_ALIASES = {"minLength": "min_length", "maxLength": "max_length", "minimum": "min",
                "maximum": "max", "enum": "choices"}
FIELD_KEYS = frozenset({"type", "required", "default", "min_length", "max_length", "pattern",
                        "min", "max", "choices", "properties", "items", "description", *_KEY_ALIASES})
_OBJECT_KEYS = frozenset({"type", "properties", "required", "description", "title", "$schema"})
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


@dataclass(frozen=True)
class Field:
    """One field of a schema, checked at load."""

    path: str
    type: str | None = None
    required: bool = False
    default: Any = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: re.Pattern[str] | None = None
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    properties: Mapping[str, Field] | None = None
    items: Field | None = None
    location: Location = field(default_factory=Location)


@dataclass(frozen=True)
class IOSchema:
    """``input_schema`` or ``output_schema`` (``key``) of a workflow."""

    key: str
    fields: Mapping[str, Field]
    location: Location = field(default_factory=Location)


def is_check_form(raw: Any) -> bool:
    """Whether ``raw`` declares fields to check (the reference's ``output_schema`` is more
    often a mapping of templates that shapes its ``invoke()`` return value)."""
    if not isinstance(raw, Mapping) or not raw:
        return False
    if raw.get("type") in ("object", "dict") and isinstance(raw.get("properties"), Mapping):
        return True
    return all(isinstance(spec, Mapping) and "value" not in spec
               and str(spec.get("type")) in (*TYPES, *_ALIASES) for spec in raw.values())


def parse_io_schema(raw: Any, key: str) -> IOSchema | None:
    """The schema written at ``key`` (``None`` when absent); ``SchemaError`` at its line."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise SchemaError(f"{key} must be a mapping of field: {{type, required, ...}}", location_of(raw))
    if raw.get("type") in ("object", "dict") and isinstance(raw.get("properties"), Mapping):
        check_keys(raw, _OBJECT_KEYS, key)
        required = _required_list(raw, key)
        fields = _fields(raw["properties"], key, required)
    else:
        fields = _fields(raw, key, frozenset())
    return IOSchema(key, fields, location_of(raw))


def _required_list(raw: Mapping[str, Any], path: str) -> frozenset[str]:
    names = raw.get("required", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise SchemaError(f"{path}.required must be a list of field names", location_of(raw, "required"))
    return frozenset(names)


def _fields(raw: Mapping[str, Any], path: str, required: frozenset[str]) -> dict[str, Field]:
    out = {}
    for name, spec in raw.items():
        where = f"{path}.{name}"
        if not isinstance(spec, Mapping):
            raise SchemaError(f"{where} must be a mapping such as {{type: str, required: true}}",
                              location_of(raw, name))
        out[str(name)] = _field(spec, where, str(name) in required, location_of(raw, name))
    return out


def _field(spec: Mapping[str, Any], path: str, required: bool, where: Location) -> Field:
    for key in spec:
        if key not in FIELD_KEYS:
            raise SchemaError(f"{path}: unknown key '{key}'", location_of(spec, key),
                              hint=suggest(str(key), FIELD_KEYS) or f"known: {', '.join(sorted(FIELD_KEYS))}")
    values = {_KEY_ALIASES.get(k, k): v for k, v in spec.items()}
    kind = values.get("type")
    if kind is not None:
        kind = _ALIASES.get(str(kind), str(kind))
        if kind not in TYPES:
            raise SchemaError(f"{path}: unknown type {values['type']!r}", location_of(spec, "type"),
                              hint=f"one of {', '.join(TYPES)}")
    nested_required: frozenset[str] = frozenset()
    own_required = values.get("required", False)
    if isinstance(own_required, list):  # JSON Schema: the nested fields that are required
        nested_required, own_required = _required_list(spec, path), False
    return Field(
        path=path.split(".", 1)[1], type=kind, required=required or own_required is True,
        default=values.get("default"),
        min_length=_number(values, spec, "min_length", path, int),
        max_length=_number(values, spec, "max_length", path, int),
        pattern=_pattern(values.get("pattern"), spec, path),
        min=_number(values, spec, "min", path, float), max=_number(values, spec, "max", path, float),
        choices=_choices(values.get("choices"), spec, path),
        properties=_fields(values["properties"], path, nested_required)
        if isinstance(values.get("properties"), Mapping) else None,
        items=_field(values["items"], f"{path}[]", False, location_of(spec, "items"))
        if isinstance(values.get("items"), Mapping) else None,
        location=where,
    )


def _number(values: Mapping[str, Any], spec: Mapping[str, Any], key: str, path: str, kind: type) -> Any:
    value = values.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and value != int(value)):
        written = next((k for k, v in _KEY_ALIASES.items() if v == key and k in spec), key)
        raise SchemaError(f"{path}.{written} must be a {'whole ' if kind is int else ''}number",
                          location_of(spec, written))
    return kind(value)


def _pattern(value: Any, spec: Mapping[str, Any], path: str) -> re.Pattern[str] | None:
    if value is None:
        return None
    try:
        return re.compile(str(value))
    except re.error as exc:
        raise SchemaError(f"{path}.pattern is not a valid regular expression: {exc}",
                          location_of(spec, "pattern")) from None


def _choices(value: Any, spec: Mapping[str, Any], path: str) -> tuple[Any, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        key = "enum" if "enum" in spec else "choices"
        raise SchemaError(f"{path}.{key} must be a list of values", location_of(spec, key))
    return tuple(value)


def check_input(schema: IOSchema, state: Mapping[str, Any]) -> dict[str, Any]:
    """``state`` with defaults filled in and values coerced (``"3"`` for an ``int`` field
    is 3, as the reference does); ``InputError`` naming every field at fault."""
    out = dict(state)
    problems: list[tuple[Location, str]] = []
    for name, spec in schema.fields.items():
        _check(spec, out, name, problems, coerce=True)
    if problems:
        raise InputError(_message("the input", schema, problems), problems[0][0],
                         hint=f"{schema.key} (line {schema.location.line}) declares what the input takes; "
                         "give the fields with --input or initial_state")
    return out


def check_output(schema: IOSchema, state: Mapping[str, Any]) -> None:
    """``RunError`` naming every field of the final ``state`` that ``schema`` refuses."""
    problems: list[tuple[Location, str]] = []
    for name, spec in schema.fields.items():
        _check(spec, dict(state), name, problems, coerce=False)
    if problems:
        raise RunError(_message("the final state", schema, problems),
                       hint=f"{schema.key} (line {schema.location.line}) declares what the run must give back")


def _message(what: str, schema: IOSchema, problems: list[tuple[Location, str]]) -> str:
    return f"{what} does not match {schema.key}: " + "; ".join(text for _, text in problems)


def _check(spec: Field, holder: dict[Any, Any], key: Any, problems: list[tuple[Location, str]], *,
           coerce: bool) -> None:
    """Check ``holder[key]`` against ``spec``; with ``coerce``, fix it in place (defaults,
    coercions) in copies of the containers it goes into."""
    value = holder.get(key)
    if value is None:
        if spec.required:
            _say(problems, spec, "is required and missing")
        elif spec.default is not None and coerce:
            holder[key] = spec.default
        return
    if spec.type is not None:
        typed, ok = _typed(value, spec.type, coerce)
        if not ok:
            _say(problems, spec, f"must be {spec.type}, got {type(value).__name__} {_short(value)}")
            return
        if typed is not value:
            holder[key] = value = typed
    _constraints(spec, value, problems)
    if isinstance(value, dict) and spec.properties is not None:
        if coerce:
            value = holder[key] = dict(value)
        for name, sub in spec.properties.items():
            _check(sub, value, name, problems, coerce=coerce)
    if isinstance(value, list) and spec.items is not None:
        if coerce:
            value = holder[key] = list(value)
        slots = _ListSlots(value)
        for index in range(len(value)):
            _check(replace(spec.items, path=f"{spec.path}[{index}]"), slots, index, problems, coerce=coerce)


def _typed(value: Any, kind: str, coerce: bool) -> tuple[Any, bool]:
    """``value`` as ``kind`` (the reference's coercions when ``coerce``), and whether it is."""
    target = TYPES[kind]
    if isinstance(value, target) and not (isinstance(value, bool) and kind in ("int", "float")):
        return value, True
    if not coerce or (isinstance(value, bool) and kind in ("int", "float")):
        return value, kind == "float" and isinstance(value, int) and not isinstance(value, bool)
    try:
        if kind == "int" and (isinstance(value, str) or (isinstance(value, float) and value == int(value))):
            return int(value), True
        if kind == "float" and isinstance(value, int | str):
            return float(value), True
    except ValueError:
        return value, False
    if kind == "bool" and isinstance(value, str) and value.lower() in (*_TRUE, *_FALSE):
        return value.lower() in _TRUE, True
    if kind == "str" and isinstance(value, int | float):
        return str(value), True
    return value, False


def _constraints(spec: Field, value: Any, problems: list[tuple[Location, str]]) -> None:
    if isinstance(value, str):
        if spec.min_length is not None and len(value) < spec.min_length:
            _say(problems, spec, f"must have at least {spec.min_length} character(s)")
        if spec.max_length is not None and len(value) > spec.max_length:
            _say(problems, spec, f"must have at most {spec.max_length} character(s)")
        if spec.pattern is not None and not spec.pattern.match(value):
            _say(problems, spec, f"must match the pattern {spec.pattern.pattern!r}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if spec.min is not None and value < spec.min:
            _say(problems, spec, f"must be at least {_num(spec.min)}, got {value}")
        if spec.max is not None and value > spec.max:
            _say(problems, spec, f"must be at most {_num(spec.max)}, got {value}")
    if spec.choices is not None and value not in spec.choices:
        _say(problems, spec, f"must be one of {list(spec.choices)}, got {_short(value)}")


class _ListSlots(dict[int, Any]):
    """A list seen as ``index → item`` so ``_check`` can fix an item in place."""

    def __init__(self, items: list[Any]) -> None:
        super().__init__(enumerate(items))
        self.target = items

    def __setitem__(self, index: int, value: Any) -> None:
        super().__setitem__(index, value)
        self.target[index] = value


def _say(problems: list[tuple[Location, str]], spec: Field, text: str) -> None:
    """Note that the value of ``spec`` ``text`` (at the field's line in the workflow)."""
    problems.append((spec.location, f"'{spec.path}' {text}"))


def _num(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
