"""Checking the keys of a YAML mapping: unknown keys are errors that suggest the near miss."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from tea.errors import SchemaError
from tea.yamlsrc import location_of

__all__ = ["check_keys", "suggest"]


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """``did you mean 'x'?`` for the closest of ``choices``, else ``None``."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{match[0]}'?" if match else None


def check_keys(raw: Mapping[str, Any], allowed: Collection[str], what: str) -> None:
    """Raise ``SchemaError`` at the first key of ``raw`` not in ``allowed``."""
    for key in raw:
        if key not in allowed:
            raise SchemaError(
                f"unknown key '{key}' in {what}",
                location_of(raw, key),
                hint=suggest(str(key), allowed) or f"allowed keys: {', '.join(sorted(allowed))}",
            )
