"""The built-in actions, collected: fresh registries and load-time parameter checks.

The one module that imports every built-in action module; they import only
``_common`` (and so the registry), never this module; the composite ones
(reason, reflection, validation) also import ``_nested``, which calls the plain
ones (data, files, http, llm, shell). So the dependency runs one way:
``builtin`` → composites → ``_nested`` → plain built-ins → ``_common`` → ``registry``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tea.actions.data import ACTIONS as DATA_ACTIONS
from tea.actions.files import ACTIONS as FILE_ACTIONS
from tea.actions.http import ACTIONS as HTTP_ACTIONS
from tea.actions.imports import load_entry_points
from tea.actions.llm import ACTIONS as LLM_ACTIONS
from tea.actions.memory import ACTIONS as MEMORY_ACTIONS
from tea.actions.reason import ACTIONS as REASON_ACTIONS
from tea.actions.reflection import ACTIONS as REFLECTION_ACTIONS
from tea.actions.registry import Action, ActionRegistry, parameter_problems, registered_actions
from tea.actions.shell import ACTIONS as SHELL_ACTIONS
from tea.actions.validation import ACTIONS as VALIDATION_ACTIONS

__all__ = ["BUILTIN_ACTIONS", "builtin_registry", "validate_action_params"]

BUILTIN_ACTIONS: Mapping[str, Action] = {
    **DATA_ACTIONS, **FILE_ACTIONS, **HTTP_ACTIONS, **LLM_ACTIONS, **SHELL_ACTIONS,
    **MEMORY_ACTIONS, **REASON_ACTIONS, **REFLECTION_ACTIONS, **VALIDATION_ACTIONS,
}
"""Every built-in action by its ``uses:`` name."""


def builtin_registry(*, entry_points: bool = True) -> ActionRegistry:
    """A fresh registry: built-ins, then the ``tea.actions`` entry points, then
    ``register_action`` registrations (later sources win)."""
    registry = ActionRegistry(BUILTIN_ACTIONS)
    if entry_points:
        load_entry_points(registry)
    registry.update(registered_actions())
    return registry


def validate_action_params(
    name: str, params: Mapping[str, Any], *, registry: Mapping[str, Action] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> list[str]:
    """Load-time problems with ``uses: name`` + ``with: params`` (empty when fine).

    Checks parameter names against the action's signature and, for built-ins,
    the values that are not templates (a provider name, a URL, a command list).
    An unknown action gives no problems here: ``resolve`` reports it.
    """
    actions = registry if registry is not None else builtin_registry(entry_points=False)
    fn = actions.get(name)
    if fn is None:
        return []
    problems = parameter_problems(fn, params)
    check = getattr(fn, "__tea_validate__", None)
    if check is not None:
        problems.extend(check(params, settings or {}))
    return problems
