"""What the composite actions (reflection, reasoning, retry, validation) share.

They call other actions by name, run small inline Python snippets, ask the LLM
through ``llm.call`` and read JSON out of its replies. An action named inside
one of them is looked up in the engine's registry when the engine hands it over
(``ctx.actions``), else among the built-ins that never call back into a
composite action (data, file, http, llm, shell) and ``register_action``'s.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from tea.actions._common import ActionContext, fail
from tea.actions.data import ACTIONS as DATA_ACTIONS
from tea.actions.files import ACTIONS as FILE_ACTIONS
from tea.actions.http import ACTIONS as HTTP_ACTIONS
from tea.actions.llm import ACTIONS as LLM_ACTIONS
from tea.actions.llm import PARAMETERS as LLM_PARAMETERS
from tea.actions.llm import llm_call
from tea.actions.registry import Action, call_action, registered_actions
from tea.actions.shell import ACTIONS as SHELL_ACTIONS

__all__ = [
    "LLM_PARAMETERS",
    "ask_llm",
    "call_named",
    "llm_options",
    "lookup",
    "option_problems",
    "parse_json",
    "run_snippet",
]

_FENCED = re.compile(r"```(?:json)?\s*([\s\S]*?)```")
_OBJECT = re.compile(r"\{[\s\S]*\}")


def lookup(ctx: ActionContext, action: str, name: str,
           local: Mapping[str, Action] | None = None) -> Action:
    """The action called ``name``, for the composite ``action``; ``local`` adds the
    composite module's own actions to the built-ins searched."""
    if ctx.actions is not None and name in ctx.actions:
        return ctx.actions[name]
    known = {**DATA_ACTIONS, **FILE_ACTIONS, **HTTP_ACTIONS, **LLM_ACTIONS, **SHELL_ACTIONS,
             **(local or {}), **registered_actions()}
    if name not in known:
        raise fail(ctx, action, f"unknown action '{name}'",
                   hint="name a built-in or an action added with register_action")
    return known[name]


def call_named(ctx: ActionContext, action: str, name: str, state: dict[str, Any],
               params: Mapping[str, Any], local: Mapping[str, Action] | None = None) -> Any:
    """Call the action ``name`` with ``params`` on ``state`` for the composite ``action``."""
    return call_action(lookup(ctx, action, name, local), state, params, ctx, name=name)


def llm_options(ctx: ActionContext, action: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` checked to be ``llm.call`` parameters (model, provider, timeout...)."""
    unknown = sorted(set(given) - set(LLM_PARAMETERS))
    if unknown:
        raise fail(ctx, action, f"unknown parameter '{unknown[0]}' "
                   f"(known: the action's own and {', '.join(LLM_PARAMETERS)})")
    return {key: value for key, value in given.items() if value is not None}


def option_problems(params: Mapping[str, Any], own: tuple[str, ...]) -> list[str]:
    """Load-time findings: parameters that are neither the action's nor ``llm.call``'s."""
    return [f"unknown parameter '{key}' (known: {', '.join(own)} and llm.call's)"
            for key in params if key not in own and key not in LLM_PARAMETERS]


def ask_llm(ctx: ActionContext, messages: list[dict[str, Any]],
            options: Mapping[str, Any]) -> dict[str, Any]:
    """One ``llm.call`` with ``messages`` and ``options``; its result."""
    result: dict[str, Any] = llm_call({}, messages=messages, ctx=ctx, **options)
    return result


def parse_json(text: Any) -> Any:
    """The JSON value in an LLM reply: the whole text, a fenced block, or the first
    ``{...}``; ``ValueError`` when there is none. Non-text replies pass through."""
    if not isinstance(text, str):
        return text
    if not text.strip():
        raise ValueError("empty reply")
    candidates = [text]
    candidates += [m.group(1).strip() for m in _FENCED.finditer(text)]
    candidates += [m.group(0) for m in _OBJECT.finditer(text)]
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    raise ValueError(f"no JSON in the reply: {text[:200]}")


def run_snippet(ctx: ActionContext, action: str, code: Any, names: Mapping[str, Any]) -> Any:
    """Run inline Python ``code`` with ``names`` (plus ``json`` and ``re``) in scope; its
    value is what it assigned to ``result`` (else to ``output``), as in the reference."""
    if not isinstance(code, str):
        raise fail(ctx, action, f"run: must be Python code (text), got {type(code).__name__}")
    scope: dict[str, Any] = {**names, "json": json, "re": re}
    try:
        exec(compile(code, f"<{ctx.node}: {action}>", "exec"), scope)
    except SyntaxError as exc:
        raise fail(ctx, action, f"Python syntax error in run: line {exc.lineno}: {exc.msg}") from None
    if "result" in scope:
        return scope["result"]
    if scope.get("output") is not names.get("output"):
        return scope["output"]
    return None
