"""``memory.store``, ``memory.retrieve``: a key-value memory with namespaces and TTL;
``memory.summarize``: a conversation shortened by ``llm.call``.

As the reference's default in-memory backend: values live in the tea process
(so for one ``tea run``, or as long as the Python program that runs workflows),
per ``namespace`` (default ``"default"``), until their ``ttl`` (seconds)
passes. Branches on the thread strategy share it; a process or remote branch
has its own. Results are the reference's: ``{stored, key, namespace}`` and
``{value, found, key}`` (``value`` is ``default`` when the key is missing or
expired), and ``{summary, original_count, token_estimate, success}``.
"""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

from tea.actions._common import Action, ActionContext, fail, takes_context, to_number
from tea.actions._nested import ask_llm, llm_options, option_problems

__all__ = ["ACTIONS", "clear_memory", "memory_retrieve", "memory_store", "memory_summarize"]

_lock = threading.Lock()
_values: dict[tuple[str, str], tuple[Any, float | None]] = {}


def clear_memory() -> None:
    """Forget every stored value (for programs that run unrelated workflows in turn)."""
    with _lock:
        _values.clear()


@takes_context
def memory_store(state: dict[str, Any], key: Any, value: Any, ttl: float | None = None,
                 namespace: str = "default", *, ctx: ActionContext) -> dict[str, Any]:
    """Keep ``value`` under ``key`` in ``namespace`` (for ``ttl`` seconds, else for good)."""
    if key is None:
        raise fail(ctx, "memory.store", "key is required")
    expires = None
    if ttl is not None:
        expires = time.monotonic() + to_number(ctx, "memory.store", "ttl", ttl, minimum=0)
    with _lock:
        # A copy, so a later change to the state's object does not change the memory.
        _values[(str(namespace), str(key))] = (copy.deepcopy(value), expires)
    return {"stored": True, "key": str(key), "namespace": str(namespace)}


@takes_context
def memory_retrieve(state: dict[str, Any], key: Any, default: Any = None,
                    namespace: str = "default", *, ctx: ActionContext) -> dict[str, Any]:
    """The value under ``key`` in ``namespace``: ``{value, found, key}``."""
    if key is None:
        raise fail(ctx, "memory.retrieve", "key is required")
    slot = (str(namespace), str(key))
    with _lock:
        entry = _values.get(slot)
        if entry is not None and entry[1] is not None and entry[1] <= time.monotonic():
            del _values[slot]
            entry = None
    if entry is None:
        return {"value": default, "found": False, "key": str(key)}
    return {"value": copy.deepcopy(entry[0]), "found": True, "key": str(key)}


def _transcript(messages: list[Any]) -> str:
    lines = []
    for message in messages:
        if isinstance(message, dict):
            lines.append(f"{message.get('role', 'user')}: {message.get('content', message)}")
        else:
            lines.append(str(message))
    return "\n".join(lines)


@takes_context
def memory_summarize(state: dict[str, Any], messages_key: str, max_tokens: int = 1000, *,
                     ctx: ActionContext, **llm: Any) -> dict[str, Any]:
    """``state[messages_key]`` as text, summarised by the LLM when it is over ``max_tokens``
    (estimated at four characters a token); other ``with:`` keys go to ``llm.call``."""
    messages = state.get(messages_key)
    if not isinstance(messages, list):
        problem = "is not in the state" if messages is None else "must be a list"
        raise fail(ctx, "memory.summarize", f"messages_key '{messages_key}' {problem}")
    limit = int(to_number(ctx, "memory.summarize", "max_tokens", max_tokens, minimum=1,
                          integer=True))
    text = _transcript(messages)
    if len(text) // 4 <= limit:
        return {"summary": text, "original_count": len(messages),
                "token_estimate": len(text) // 4, "success": True}
    options = llm_options(ctx, "memory.summarize", {"temperature": 0.3, **llm})
    ask = [{"role": "system", "content": f"Summarize the following conversation in "
            f"approximately {limit} tokens or less. Preserve key information, decisions, and "
            "context needed for continuation."}, {"role": "user", "content": text}]
    summary = str(ask_llm(ctx, ask, options)["content"])
    return {"summary": summary, "original_count": len(messages),
            "token_estimate": len(summary) // 4, "success": True}


memory_summarize.__tea_validate__ = lambda p, s: option_problems(  # type: ignore[attr-defined]
    p, ("messages_key", "max_tokens"))

ACTIONS: dict[str, Action] = {
    "memory.store": memory_store,
    "actions.memory_store": memory_store,
    "memory.retrieve": memory_retrieve,
    "actions.memory_retrieve": memory_retrieve,
    "memory.summarize": memory_summarize,
    "actions.memory_summarize": memory_summarize,
}
