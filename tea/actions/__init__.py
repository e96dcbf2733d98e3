"""Actions: what a ``uses:`` node calls.

``builtin_registry()`` gives a fresh registry holding the built-ins (``llm.call``,
``llm.chat``, ``http.get``, ``http.post``, ``file.read``, ``file.write``,
``json.parse``, ``json.stringify``, ``yaml.parse``, ``log``, ``shell.run``), the
``tea.actions`` entry points and whatever ``register_action`` added;
``load_imports`` adds a workflow's ``imports:``; ``call_action`` runs one action
for one node. Importing this package is cheap: httpx, tenacity and yaml are
imported by the actions that use them, on first call.

Imports run one way::

    tea.actions ─► builtin ─► data, files, http, llm, shell ─► _common ─► registry
                      └─────► imports ───────────────────────────────────┘
"""

from tea.actions.builtin import builtin_registry, validate_action_params
from tea.actions.imports import load_entry_points, load_imports
from tea.actions.registry import (
    ActionContext,
    ActionFailed,
    ActionRegistry,
    UnknownAction,
    call_action,
    parameter_problems,
    register_action,
    takes_context,
)

__all__ = [
    "ActionContext",
    "ActionFailed",
    "ActionRegistry",
    "UnknownAction",
    "builtin_registry",
    "call_action",
    "load_entry_points",
    "load_imports",
    "parameter_problems",
    "register_action",
    "takes_context",
    "validate_action_params",
]
