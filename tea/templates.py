"""Sandboxed Jinja2 templates, compiled once at load time.

A string that is exactly one ``{{ expr }}`` evaluates to the native value of
``expr`` (a list stays a list); any other string with template syntax renders
to text; a string without ``{{``/``{%`` is returned as it is, at no cost.
Missing keys are empty (so ``| default(...)`` works) and ``state.items`` reads
the key ``items``, never the dict method. The context is built lazily: ``env``
reads ``os.environ`` only when a template asks for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import ChainableUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tea.errors import Location, WorkflowSyntaxError

__all__ = ["Template", "compile_template", "compile_value", "environment", "render_value"]

_SINGLE_EXPR = re.compile(r"^\s*\{\{(?P<expr>.*?)\}\}\s*$", re.DOTALL)


def _fromjson(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _tojson(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent, default=_json_default)


def _json_default(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return str(value)


def _sha256(value: Any) -> str:
    data = value if isinstance(value, bytes) else str(value).encode()
    return hashlib.sha256(data).hexdigest()


class _Environment(ImmutableSandboxedEnvironment):
    """Prefers keys over attributes on mappings (``state.items`` is the key)."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        return super().getattr(obj, attribute)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        # Jinja returns an Undefined here, which a native {{ expr }} would turn into None:
        # refuse at once instead, so an unsafe access never passes silently.
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe"
        )


def _make_environment() -> _Environment:
    env = _Environment(undefined=ChainableUndefined, keep_trailing_newline=True, autoescape=False)
    env.filters.update(
        tojson=_tojson, json=_tojson, fromjson=_fromjson, sha256=_sha256
    )
    return env


environment = _make_environment()


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
        except UndefinedError as exc:
            raise TemplateError(f"template '{self.source}': {exc.message}") from exc
        except SecurityError as exc:
            raise TemplateError(f"template '{self.source}' was refused: {exc}") from exc
        except Exception as exc:  # an expression failing on the data, e.g. list + int
            raise TemplateError(f"template '{self.source}': {type(exc).__name__}: {exc}") from exc

    def __reduce__(self) -> tuple[Any, ...]:
        return (compile_template, (self.source,))


class TemplateError(Exception):
    """A template failed while rendering; the runner turns it into a NodeError."""


def _undefined_to_none(value: Any) -> Any:
    if isinstance(value, ChainableUndefined):
        return None
    return value


def has_template(text: str) -> bool:
    return "{{" in text or "{%" in text


def compile_template(source: str, location: Location | None = None) -> Template:
    """Compile ``source``; a Jinja syntax error is a load error at ``location``."""
    try:
        match = _SINGLE_EXPR.match(source)
        if match and "{{" not in match.group("expr") and "}}" not in match.group("expr"):
            expr = environment.compile_expression(match.group("expr"), undefined_to_none=False)
            return Template(source, lambda ctx: _undefined_to_none(expr(**ctx)), True)
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


def referenced_names(source: str) -> set[str]:
    """Top-level names a template reads (for load-time checks)."""
    try:
        ast = environment.parse(source)
    except TemplateSyntaxError:
        return set()
    return {n.name for n in ast.find_all(nodes.Name)}
