"""Example action module in the reference implementation's format.

``imports: [{path: actions/notes.py, namespace: notes}]`` makes these actions
``notes.add`` and ``notes.summary``. Each action is ``fn(state, **params)`` and
returns a mapping (merged into the state) or any value (stored under ``output:``).
"""

from __future__ import annotations

from typing import Any

__tea_actions__ = {"version": "1.0", "description": "keep a list of notes in the state"}


def add(state: dict[str, Any], text: str, tag: str = "general") -> dict[str, Any]:
    """Append a note; returns the new list as the ``notes`` update."""
    return {"notes": [*state.get("notes", []), {"text": text, "tag": tag}]}


def summary(state: dict[str, Any], tag: str | None = None) -> str:
    """One line per note (only ``tag`` when given)."""
    notes = [n for n in state.get("notes", []) if tag is None or n["tag"] == tag]
    return "\n".join(f"- {n['text']}" for n in notes)


def register_actions(registry: dict[str, Any], engine: Any) -> None:
    """The entry point tea (and the reference implementation) calls."""
    registry["add"] = add
    registry["summary"] = summary
