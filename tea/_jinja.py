"""The sandboxed Jinja2 environment behind ``tea.templates`` (imported on first use)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from jinja2 import ChainableUndefined, TemplateSyntaxError, Undefined, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["SecurityError", "TemplateSyntaxError", "UndefinedError", "environment", "nodes", "undefined_to_none"]


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
    if isinstance(value, Undefined):  # a missing key is null, as the reference's None is
        return None
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


def undefined_to_none(value: Any) -> Any:
    return None if isinstance(value, ChainableUndefined) else value
