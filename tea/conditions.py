"""Conditions for edges (``when:``), goto rules (``if:``) and while loops.

Forms, compiled once at load time:

* ``true`` / ``false`` (YAML booleans or the strings ``"true"``/``"false"``);
* a bare state key ``done`` (true when ``state["done"]`` is truthy) and ``!done``;
* a Jinja expression, with or without braces: ``state.count > 3`` or
  ``"{{ state.count > 3 }}"``; a string result is false when it is empty,
  ``false``, ``0``, ``no`` or ``none`` (case-insensitive);
* a Lua expression: ``{lua: "state.count > 3"}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tea.errors import Location, SchemaError, WorkflowSyntaxError
from tea.templates import Template, compile_expression

if TYPE_CHECKING:
    from tea.scope import Scope

__all__ = ["Condition", "compile_condition", "truthy"]

_IDENT = re.compile(r"^!?\s*[A-Za-z_][A-Za-z0-9_]*$")
_FALSE_TEXT = frozenset({"", "false", "0", "no", "none", "null"})


def truthy(value: Any) -> bool:
    """Truthiness of a condition's value; strings use the dialect's falsy words."""
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE_TEXT
    return bool(value)


class Condition:
    """A compiled condition; ``test(state, scope)`` returns a bool."""

    __slots__ = ("kind", "location", "negate", "source", "value")

    def __init__(self, kind: str, value: Any, source: Any, location: Location, negate: bool = False):
        self.kind = kind
        self.value = value
        self.source = source
        self.location = location
        self.negate = negate

    def evaluate(self, state: Mapping[str, Any], scope: Scope) -> Any:
        """The condition's raw value (used when ``when:`` is matched against it)."""
        if self.kind == "const":
            return self.value
        if self.kind == "key":
            value = state.get(self.value)
            return (not value) if self.negate else value
        if self.kind == "lua":
            return scope.lua().eval_condition(
                self.value, state, scope.variables, node=scope.current_node or "<condition>"
            )
        template: Template = self.value
        return template.render(scope.template_context(state))

    def test(self, state: Mapping[str, Any], scope: Scope) -> bool:
        return truthy(self.evaluate(state, scope))

    def describe(self) -> str:
        if self.kind == "lua":
            return f"lua: {self.value}"
        return str(self.source)


def compile_condition(raw: Any, location: Location) -> Condition:
    """Compile one condition; a syntax error is a load error at ``location``."""
    if isinstance(raw, bool):
        return Condition("const", raw, raw, location)
    if isinstance(raw, Mapping):
        if set(raw) != {"lua"} or not isinstance(raw["lua"], str):
            raise SchemaError(
                "a condition mapping must be {lua: \"<expression>\"}",
                location,
                hint='write a Jinja expression as a string, or a Lua one as {lua: "state.x > 1"}',
            )
        from tea.lua import LuaSyntaxError, check_syntax

        try:
            check_syntax(raw["lua"], expression=True)
        except LuaSyntaxError as exc:
            raise WorkflowSyntaxError(
                f"Lua syntax error in condition: {exc.message}", location
            ) from None
        return Condition("lua", raw["lua"], raw, location)
    if not isinstance(raw, str):
        raise SchemaError(
            f"a condition must be a string, a boolean or {{lua: ...}}, not {type(raw).__name__}",
            location,
        )
    text = raw.strip()
    if text.lower() in ("true", "false"):
        return Condition("const", text.lower() == "true", raw, location)
    if _IDENT.match(text):
        negate = text.startswith("!")
        return Condition("key", text.lstrip("!").strip(), raw, location, negate=negate)
    return Condition("expr", compile_expression(text, location), raw, location)
