"""``llm.call`` and ``llm.chat``: a chat completion from Ollama or an OpenAI-compatible server.

Parameters come from ``with:`` over ``settings.llm`` (same names). The result is
``{"content", "usage", "model"}``; with ``response_format: json`` the reply is
parsed, so ``content`` is the decoded JSON value. ``provider: shell`` with
``shell_provider: claude|codex|gemini|...`` runs a command-line tool instead
(``tea.actions.llm_shell``). ``timeout`` is the reference's name for
``timeout_seconds``.

The API key is never read from state: it comes from ``api_key_secret`` (a name
in ``--secrets``), ``api_key_env`` (an environment variable), an ``api_key``
whose value is a secret or an environment variable (``"{{ secrets.key }}"``), or
by default the secret ``openai_api_key`` / the variable ``OPENAI_API_KEY`` for
the openai provider.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping
from typing import Any

from tea.actions._common import (
    Action,
    ActionContext,
    fail,
    is_template,
    takes_context,
    to_number,
    url_problem,
)
from tea.actions.llm_client import (
    DEFAULT_API_BASES,
    PROVIDERS,
    ChatRequest,
    LLMError,
    RetryPolicy,
    chat,
)
from tea.actions.llm_shell import run_shell_provider, shell_providers

__all__ = ["ACTIONS", "PARAMETERS", "SETTING_KEYS", "llm_call", "llm_chat"]

SETTING_KEYS = (
    "provider", "model", "api_base", "api_key", "api_key_secret", "api_key_env", "system",
    "temperature", "max_tokens", "timeout_seconds", "timeout", "response_format", "max_retries",
    "base_delay", "max_delay", "shell_provider", "shell_providers",
)
PARAMETERS = tuple(key for key in SETTING_KEYS if key not in ("system", "shell_providers"))
"""What actions built on ``llm.call`` forward to it besides the conversation."""
_KNOWN = (*PROVIDERS, "shell")
_BASE_ENV = {"ollama": ("OLLAMA_HOST",), "openai": ("OPENAI_BASE_URL", "OPENAI_API_BASE")}
_JSON_FORMATS = ("json", "json_object")
_KEY_HINT = ("use api_key_secret: NAME with --secrets, api_key_env: VAR, "
             "or api_key: '{{ secrets.NAME }}'")


def _merged(ctx: ActionContext, given: Mapping[str, Any]) -> dict[str, Any]:
    defaults = ctx.section("llm")
    out = {key: defaults[key] for key in SETTING_KEYS if defaults.get(key) is not None}
    if given.get("timeout") is not None or given.get("timeout_seconds") is not None:
        out.pop("timeout", None)  # the node's own timeout beats either name in settings
        out.pop("timeout_seconds", None)
    out.update({key: value for key, value in given.items() if value is not None})
    return out


def _provider(ctx: ActionContext, action: str, value: Any) -> str:
    name = str(value).strip().lower()
    if name not in _KNOWN:
        close = difflib.get_close_matches(name, _KNOWN, n=1, cutoff=0.5)
        tip = f"did you mean '{close[0]}'?" if close else None
        raise fail(ctx, action, f"unknown provider '{value}' (known: {', '.join(_KNOWN)})",
                   hint=tip)
    return name


def _api_base(ctx: ActionContext, action: str, provider: str, value: Any) -> str:
    if value is None:
        found = [os.environ[v] for v in _BASE_ENV[provider] if os.environ.get(v)]
        value = found[0] if found else DEFAULT_API_BASES[provider]
        if "://" not in value:  # OLLAMA_HOST is often host:port
            value = "http://" + value
    problem = url_problem("api_base", value)
    if problem:
        raise fail(ctx, action, problem)
    return str(value)


def _api_key(ctx: ActionContext, action: str, provider: str, opts: Mapping[str, Any]) -> str | None:
    if "api_key_secret" in opts:
        name = str(opts["api_key_secret"])
        if name not in ctx.secrets:
            raise fail(ctx, action, f"secret '{name}' is not set",
                       hint=f"pass it with --secrets '{{\"{name}\": \"...\"}}' or --secrets-env")
        return str(ctx.secrets[name])
    if "api_key_env" in opts:
        var = str(opts["api_key_env"])
        if not os.environ.get(var):
            raise fail(ctx, action, f"environment variable {var} is not set")
        return os.environ[var]
    if "api_key" in opts:
        key = opts["api_key"]
        from_env = isinstance(key, str) and key in os.environ.values()
        if not (ctx.secrets.is_secret_value(key) or from_env):
            raise fail(ctx, action, "api_key must come from secrets or the environment, "
                       "never from state or the workflow text", hint=_KEY_HINT)
        return str(key)
    if provider == "openai":
        if "openai_api_key" in ctx.secrets:
            return str(ctx.secrets["openai_api_key"])
        return os.environ.get("OPENAI_API_KEY") or None
    return None


def _messages(ctx: ActionContext, action: str, opts: Mapping[str, Any]) -> list[dict[str, Any]]:
    prompt, messages = opts.get("prompt"), opts.get("messages")
    if (prompt is None) == (messages is None):
        raise fail(ctx, action, "give exactly one of prompt (text) or messages (a list)")
    if prompt is not None:
        out = [{"role": "user", "content": prompt if isinstance(prompt, str) else
                json.dumps(prompt, default=str)}]
    else:
        if not isinstance(messages, list) or not messages:
            raise fail(ctx, action, "messages must be a non-empty list of {role, content}")
        out = []
        for i, message in enumerate(messages):
            if not (isinstance(message, Mapping) and isinstance(message.get("role"), str)
                    and "content" in message):
                raise fail(ctx, action, f"messages[{i}] must be a mapping with role and "
                           f"content, got {message!r}")
            out.append(dict(message))
    system = opts.get("system")
    if system is not None:
        out.insert(0, {"role": "system", "content": str(system)})
    return out


def _json_mode(ctx: ActionContext, action: str, value: Any) -> bool:
    kind = value.get("type") if isinstance(value, Mapping) else value
    if kind is None or kind == "text":
        return False
    if kind in _JSON_FORMATS:
        return True
    raise fail(ctx, action, f"response_format must be text or json, got {value!r}")


def _decode_json(ctx: ActionContext, action: str, request: ChatRequest, text: str) -> Any:
    body = text.strip()
    if body.startswith("```"):
        # Some models fence JSON even in JSON mode; the fence is not part of the value.
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0]
    try:
        return json.loads(body)
    except ValueError as exc:
        raise fail(ctx, action, f"{request.provider} model '{request.model}' replied with "
                   f"text that is not JSON ({exc}): {text[:200]}") from None


def _timeout(ctx: ActionContext, action: str, opts: Mapping[str, Any]) -> float | None:
    """``timeout_seconds`` or the reference's ``timeout`` as a number, else ``None``."""
    given = [key for key in ("timeout_seconds", "timeout") if key in opts]
    if len(given) == 2 and opts["timeout"] != opts["timeout_seconds"]:
        raise fail(ctx, action, "give timeout or timeout_seconds, not both")
    if not given:
        return None
    return to_number(ctx, action, given[0], opts[given[0]], minimum=0.001)


def _shell(ctx: ActionContext, action: str, opts: Mapping[str, Any]) -> dict[str, Any]:
    name = opts.get("shell_provider")
    if not isinstance(name, str) or not name.strip():
        raise fail(ctx, action, "provider: shell needs shell_provider (claude, codex, gemini, "
                   "or one of settings.llm.shell_providers)")
    model = opts.get("model")
    return run_shell_provider(ctx, name.strip(), _messages(ctx, action, opts),
                              _timeout(ctx, action, opts),
                              model if isinstance(model, str) else None)


def _run(ctx: ActionContext, action: str, given: Mapping[str, Any]) -> dict[str, Any]:
    opts = _merged(ctx, given)
    provider = _provider(ctx, action, opts.get("provider", "openai"))
    if provider == "shell":
        return _shell(ctx, action, opts)
    seconds = _timeout(ctx, action, opts)
    model = opts.get("model")
    if not isinstance(model, str) or not model.strip():
        raise fail(ctx, action, "no model given",
                   hint="set model: in with: or settings.llm.model (e.g. llama3.2)")
    request = ChatRequest(
        provider=provider,
        model=model,
        messages=_messages(ctx, action, opts),
        api_base=_api_base(ctx, action, provider, opts.get("api_base")),
        api_key=_api_key(ctx, action, provider, opts),
        temperature=(to_number(ctx, action, "temperature", opts["temperature"], minimum=0)
                     if "temperature" in opts else None),
        max_tokens=(int(to_number(ctx, action, "max_tokens", opts["max_tokens"], minimum=1,
                                  integer=True)) if "max_tokens" in opts else None),
        json_mode=_json_mode(ctx, action, opts.get("response_format")),
        timeout_seconds=60.0 if seconds is None else seconds,
    )
    policy = RetryPolicy(
        max_retries=int(to_number(ctx, action, "max_retries", opts.get("max_retries", 3),
                                  minimum=0, integer=True)),
        base_delay=to_number(ctx, action, "base_delay", opts.get("base_delay", 1.0), minimum=0),
        max_delay=to_number(ctx, action, "max_delay", opts.get("max_delay", 30.0), minimum=0),
    )
    try:
        reply = chat(request, policy)
    except LLMError as exc:
        raise fail(ctx, action, exc.message, retryable=exc.retryable) from exc
    content: Any = reply.content
    if request.json_mode:
        content = _decode_json(ctx, action, request, reply.content)
    return {"content": content, "usage": reply.usage, "model": reply.model}


@takes_context
def llm_call(
    state: dict[str, Any], prompt: Any = None, messages: list[dict[str, Any]] | None = None,
    model: str | None = None, provider: str | None = None, api_base: str | None = None,
    system: str | None = None, temperature: float | None = None, max_tokens: int | None = None,
    timeout_seconds: float | None = None, response_format: Any = None,
    api_key: str | None = None, api_key_secret: str | None = None,
    api_key_env: str | None = None, max_retries: int | None = None,
    base_delay: float | None = None, max_delay: float | None = None, timeout: float | None = None,
    shell_provider: str | None = None, *, ctx: ActionContext,
) -> dict[str, Any]:
    """One completion for ``prompt`` (or ``messages``); returns ``{content, usage, model}``."""
    given = dict(locals())
    del given["state"], given["ctx"]
    return _run(ctx, "llm.call", given)


@takes_context
def llm_chat(
    state: dict[str, Any], messages: list[dict[str, Any]], model: str | None = None,
    provider: str | None = None, api_base: str | None = None, system: str | None = None,
    temperature: float | None = None, max_tokens: int | None = None,
    timeout_seconds: float | None = None, response_format: Any = None,
    api_key: str | None = None, api_key_secret: str | None = None,
    api_key_env: str | None = None, max_retries: int | None = None,
    base_delay: float | None = None, max_delay: float | None = None, timeout: float | None = None,
    shell_provider: str | None = None, *, ctx: ActionContext,
) -> dict[str, Any]:
    """The next assistant turn after ``messages``; returns ``{content, usage, model}``."""
    given = dict(locals())
    del given["state"], given["ctx"]
    return _run(ctx, "llm.chat", given)


def _shell_problems(opts: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    name = opts.get("shell_provider")
    if name is None:
        return ["provider: shell needs shell_provider (claude, codex, gemini, ...)"]
    known = shell_providers(settings)
    if is_template(name) or name in known:
        return []
    return [f"shell provider '{name}' is not configured (known: {', '.join(sorted(known))})"]


def _check(params: Mapping[str, Any], settings: Mapping[str, Any],
           *, needs_prompt: bool) -> list[str]:
    section = settings.get("llm")
    defaults: Mapping[str, Any] = section if isinstance(section, Mapping) else {}
    opts = {**{k: v for k, v in defaults.items() if k in SETTING_KEYS}, **params}
    literal = {k: v for k, v in opts.items() if v is not None and not is_template(v)}
    problems = []
    provider = str(literal.get("provider", "openai")).lower()
    if provider == "shell":
        problems.extend(_shell_problems(opts, settings))
    elif "model" not in opts:
        problems.append("no model given: set model: in with: or settings.llm.model")
    if "provider" in literal and provider not in _KNOWN:
        problems.append(f"unknown provider '{literal['provider']}' (known: {', '.join(_KNOWN)})")
    if "api_base" in literal:
        problem = url_problem("api_base", literal["api_base"])
        if problem:
            problems.append(problem)
    if "api_key" in literal:
        problems.append("api_key must not be written in the workflow; " + _KEY_HINT)
    if needs_prompt and ("prompt" in params) == ("messages" in params):
        problems.append("give exactly one of prompt (text) or messages (a list)")
    return problems


llm_call.__tea_validate__ = lambda p, s: _check(p, s, needs_prompt=True)  # type: ignore[attr-defined]
llm_chat.__tea_validate__ = lambda p, s: _check(p, s, needs_prompt=False)  # type: ignore[attr-defined]

ACTIONS: dict[str, Action] = {
    "llm.call": llm_call,
    "actions.llm_call": llm_call,
    "llm.chat": llm_chat,
}
