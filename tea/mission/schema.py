"""The keys of the mission format and the checks of their values, shared by the loader's parts.

Every check records its problem (a ``SchemaError`` at the key's file and line)
in the caller's list and returns ``None`` for a bad value, so one pass over a
mission finds every problem, not only the first.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from tea.errors import LoadError, SchemaError
from tea.keys import suggest
from tea.yamlsrc import location_of

__all__ = [
    "ID_PATTERN",
    "RESERVED_NAMES",
    "STEP_KEYS",
    "TOP_KEYS",
    "boolean",
    "number",
    "text_field",
    "unknown_keys",
]

TOP_KEYS = ("name", "version", "description", "config", "settings", "steps")
STEP_KEYS = (
    "id", "name", "step_type", "depends_on", "timeout_seconds", "continue_on_error", "parameters",
    "retry_attempts", "retry_delay_ms",
)
ID_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
"""Step ids are names a template can read: ``{{ fetch_data.output.body }}``."""
RESERVED_NAMES = frozenset({"env", "context", "config", "secrets"})
"""What templates read besides step ids, so no step may be called so."""


def unknown_keys(raw: Mapping[str, Any], allowed: Collection[str], where: str,
                 errors: list[LoadError], hint: str | None = None) -> None:
    """Record every key of ``raw`` not in ``allowed``, with the nearest allowed one."""
    for key in raw:
        if key not in allowed:
            errors.append(SchemaError(
                f"unknown key '{key}' in {where}", location_of(raw, key),
                hint=suggest(str(key), allowed) or hint or f"allowed keys: {', '.join(allowed)}",
            ))


def number(raw: Mapping[str, Any], key: str, errors: list[LoadError], where: str, *,
           integer: bool = False, minimum: float = 0, above: bool = False) -> Any:
    """``raw[key]`` checked as a number (``None`` when absent or wrong, the problem recorded)."""
    value = raw.get(key)
    if value is None:
        return None
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, int if integer else int | float) and not isinstance(value, bool)
    in_range = ok_type and (value > minimum if above else value >= minimum)
    if not in_range:
        bound = f"greater than {minimum:g}" if above else f"at least {minimum:g}"
        errors.append(SchemaError(f"{where}.{key} must be {kind} {bound}, got {value!r}",
                                  location_of(raw, key)))
        return None
    return value


def boolean(raw: Mapping[str, Any], key: str, errors: list[LoadError], where: str) -> bool | None:
    """``raw[key]`` checked as true/false (``None`` when absent or wrong)."""
    value = raw.get(key)
    if value is None or isinstance(value, bool):
        return value
    errors.append(SchemaError(f"{where}.{key} must be true or false, got {value!r}", location_of(raw, key)))
    return None


def text_field(raw: Mapping[str, Any], key: str, errors: list[LoadError], where: str, *,
         numbers: bool = False) -> str | None:
    """``raw[key]`` checked as text (numbers accepted with ``numbers``, as for ``version: 1.0``)."""
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, str) or (numbers and isinstance(value, int | float) and not isinstance(value, bool)):
        return str(value)
    errors.append(SchemaError(f"{where}{key} must be text, not {type(value).__name__}", location_of(raw, key)))
    return None
