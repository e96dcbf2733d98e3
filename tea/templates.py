"""Sandboxed Jinja2 templates, compiled once at load time.

A string that is exactly one ``{{ expr }}`` evaluates to the native value of
``expr`` (a list stays a list); any other string with template syntax renders
to text; a string without ``{{``/``{%`` is returned as it is, at no cost.
Missing keys are empty (so ``| default(...)`` works) and ``state.items`` reads
the key ``items``, never the dict method. The context is built lazily: ``env``
reads ``os.environ`` only when a template asks for it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from tea.errors import Location, WorkflowSyntaxError

__all__ = ["Template", "TemplateError", "compile_template", "compile_value", "render_value"]

_SINGLE_EXPR = re.compile(r"^\s*\{\{(?P<expr>.*?)\}\}\s*$", re.DOTALL)


class Template:
    """A compiled template: ``render(context)`` returns text or a native value."""

    __slots__ = ("_fn", "native", "source")

    def __init__(self, source: str, fn: Callable[[Mapping[str, Any]], Any], native: bool) -> None:
        self.source = source
        self._fn = fn
        self.native = native

    def render(self, context: Mapping[str, Any]) -> Any:
        try:
            return self._fn(context)
        except Exception as exc:
            from tea._jinja import SecurityError, UndefinedError

            if isinstance(exc, UndefinedError):
                raise TemplateError(f"template '{self.source}': {exc.message}") from exc
            if isinstance(exc, SecurityError):
                raise TemplateError(f"template '{self.source}' was refused: {exc}") from exc
            # an expression failing on the data, e.g. list + int
            raise TemplateError(f"template '{self.source}': {type(exc).__name__}: {exc}") from exc

    def __reduce__(self) -> tuple[Any, ...]:
        return (compile_template, (self.source,))


class TemplateError(Exception):
    """A template failed while rendering; the runner turns it into a NodeError."""


def has_template(text: str) -> bool:
    return "{{" in text or "{%" in text


def compile_template(source: str, location: Location | None = None) -> Template:
    """Compile ``source``; a Jinja syntax error is a load error at ``location``."""
    from tea._jinja import TemplateSyntaxError, environment, undefined_to_none

    try:
        match = _SINGLE_EXPR.match(source)
        if match and "{{" not in match.group("expr") and "}}" not in match.group("expr"):
            expr = environment.compile_expression(match.group("expr"), undefined_to_none=False)
            return Template(source, lambda ctx: undefined_to_none(expr(**ctx)), True)
        template = environment.from_string(source)
        return Template(source, lambda ctx: template.render(ctx), False)
    except TemplateSyntaxError as exc:
        line = location.line + exc.lineno - 1 if location and location.line else None
        # Jinja gives no column: the template's own start is exact only on its first line.
        column = location.column if location and exc.lineno == 1 else None
        raise WorkflowSyntaxError(
            f"Jinja syntax error: {exc.message}",
            Location(location.file if location else None, line, column),
            hint="check the braces and the expression inside {{ }} or {% %}",
        ) from None


def compile_expression(source: str, location: Location | None = None) -> Template:
    """Compile a bare Jinja expression (a condition written without braces)."""
    text = source.strip()
    if text.startswith("{{") and text.endswith("}}"):
        text = text[2:-2]
    return compile_template("{{ " + text + " }}", location)


def compile_value(value: Any, location: Location | None = None) -> Any:
    """Compile every template string inside ``value`` (dicts and lists recursively)."""
    if isinstance(value, str):
        return compile_template(value, location) if has_template(value) else value
    if isinstance(value, Mapping):
        getloc = getattr(value, "value_loc", None)
        return {
            k: compile_value(v, getloc(k) if getloc else location) for k, v in value.items()
        }
    if isinstance(value, list):
        getloc = getattr(value, "item_loc", None)
        return [compile_value(v, getloc(i) if getloc else location) for i, v in enumerate(value)]
    return value


def is_static(value: Any) -> bool:
    """True when ``compile_value`` left nothing to render."""
    if isinstance(value, Template):
        return False
    if isinstance(value, dict):
        return all(is_static(v) for v in value.values())
    if isinstance(value, list):
        return all(is_static(v) for v in value)
    return True


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Render a value produced by ``compile_value``."""
    if isinstance(value, Template):
        return value.render(context)
    if isinstance(value, dict):
        return {k: render_value(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context) for v in value]
    return value


class EnvironProxy(Mapping[str, str]):
    """``env`` in templates: a live, read-only view of ``os.environ`` (never copied)."""

    def __getitem__(self, key: str) -> str:
        return os.environ[key]

    def __iter__(self) -> Any:
        return iter(os.environ)

    def __len__(self) -> int:
        return len(os.environ)
