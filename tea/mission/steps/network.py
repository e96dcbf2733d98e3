"""Network steps: ``http`` (httpx) and ``llm`` (tea's ``llm.call`` action).

``http`` answers with status, headers, body text and the body parsed as JSON when
it is JSON. A status of 400 or more fails the step unless ``check_status: false``.
``llm`` is tea's ``llm.call`` action with the same parameters (and its key rules:
an API key comes from ``--secrets`` or the environment, never from the mission
text), so ``settings.llm`` gives the defaults. tea's actions and httpx are imported
where a step checks or runs, so loading a mission that has none stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tea.errors import NodeError
from tea.mission.steps.base import Param, StepContext, StepType, is_template
from tea.mission.steps.files import as_text

__all__ = ["STEP_TYPES"]

_EXCERPT = 300
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def _timeout(ctx: StepContext, given: float) -> float:
    remaining = ctx.remaining()
    return given if remaining is None else max(0.001, min(given, remaining))


def _request_body(ctx: StepContext, p: dict[str, Any]) -> dict[str, Any]:
    if p["json"] is not None and p["body"] is not None:
        raise ctx.fail("give either json or body, not both", retryable=False)
    if p["json"] is not None:
        return {"json": p["json"]}
    if p["body"] is None:
        return {}
    if isinstance(p["body"], Mapping):
        return {"data": {str(k): as_text(v) for k, v in p["body"].items()}}
    return {"content": as_text(p["body"]).encode()}


def http(ctx: StepContext, p: dict[str, Any]) -> dict[str, Any]:
    """One HTTP request."""
    import httpx

    from tea.actions._common import url_problem

    problem = url_problem("url", p["url"])
    if problem:
        raise ctx.fail(problem, retryable=False)
    method = str(p["method"]).upper()
    headers = {str(k): as_text(v) for k, v in (p["headers"] or {}).items()}
    timeout = _timeout(ctx, float(p["timeout_seconds"]))
    try:
        with httpx.Client(timeout=timeout, follow_redirects=p["follow_redirects"]) as client:
            response = client.request(method, p["url"], headers=headers, params=p["params"],
                                      **_request_body(ctx, p))
    except httpx.TimeoutException:
        if ctx.remaining() == 0:
            raise ctx.out_of_time(f"{method} {p['url']}") from None
        raise ctx.fail(f"{method} {p['url']}: no answer within {timeout:g}s") from None
    except httpx.TransportError as exc:
        raise ctx.fail(f"{method} {p['url']}: cannot connect ({exc})") from None
    status = response.status_code
    if status >= 400 and p["check_status"]:
        raise ctx.fail(f"{method} {p['url']} returned HTTP {status}: {response.text[:_EXCERPT]}",
                       retryable=status == 429 or status >= 500,
                       hint="set check_status: false to handle error statuses in later steps")
    try:
        parsed = json.loads(response.text) if response.text.strip() else None
    except ValueError:
        parsed = None
    return {"status": status, "headers": dict(response.headers), "body": response.text, "json": parsed}


def llm(ctx: StepContext, p: dict[str, Any]) -> dict[str, Any]:
    """One chat completion through the ``llm.call`` action."""
    from tea.actions import ActionFailed, call_action
    from tea.actions.llm import llm_call

    given = {k: v for k, v in p.items() if v is not None}
    if "system_message" in given:
        given.setdefault("system", given.pop("system_message"))
    if "timeout_seconds" in given or ctx.deadline is not None:
        given["timeout_seconds"] = _timeout(ctx, float(given.get("timeout_seconds", 60.0)))
    try:
        out = call_action(llm_call, {}, given, ctx.action, name="llm.call")
    except ActionFailed as exc:
        message = exc.message.split(": ", 1)[-1]
        raise ctx.fail(message, retryable=exc.retryable, hint=exc.hint) from None
    except NodeError as exc:
        raise ctx.fail(exc.message, retryable=False) from None
    return dict(out)


def _http_check(params: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    from tea.actions._common import url_problem

    problems = []
    url = params.get("url")
    if isinstance(url, str) and not is_template(url):
        problem = url_problem("url", url)
        if problem:
            problems.append(problem)
    method = params.get("method")
    if isinstance(method, str) and not is_template(method) and method.upper() not in _METHODS:
        problems.append(f"method must be one of {', '.join(_METHODS)}, got '{method}'")
    return problems


def _llm_check(params: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    from tea.actions import validate_action_params

    given = dict(params)
    if "system_message" in given:
        given["system"] = given.pop("system_message")
    return [p for p in validate_action_params("llm.call", given, settings=settings)
            if not p.startswith("unknown parameter")]


_LLM_PARAMS = (
    Param("prompt", "any", doc="the user message (or give messages)"),
    Param("messages", "list", doc="[{role, content}] instead of prompt"),
    Param("model", doc="the model (or settings.llm.model)"),
    Param("provider", doc="openai (any OpenAI-compatible server) or ollama"),
    Param("api_base", doc="the server's base URL"),
    Param("system", doc="a system message"), Param("system_message", doc="the seed's name for system"),
    Param("temperature", "number", minimum=0, doc="sampling temperature"),
    Param("max_tokens", "int", minimum=1, doc="the longest reply, in tokens"),
    Param("timeout_seconds", "number", minimum=0.001, doc="per request"),
    Param("response_format", "any", doc="text or json (the reply is parsed)"),
    Param("api_key_secret", doc="the name of a --secrets entry holding the key"),
    Param("api_key_env", doc="an environment variable holding the key"),
    Param("api_key", doc="'{{ secrets.NAME }}' (never the key itself)"),
    Param("max_retries", "int", minimum=0, doc="the action's own retries of a failed request (3)"),
    Param("base_delay", "number", minimum=0, doc="seconds before its first retry (1)"),
    Param("max_delay", "number", minimum=0, doc="longest wait between its retries (30)"),
)

STEP_TYPES = (
    StepType("http", "network", "one HTTP request",
             (Param("url", required=True, doc="an http(s) URL"),
              Param("method", default="GET", doc=", ".join(_METHODS)),
              Param("headers", "mapping", doc="request headers"),
              Param("params", "mapping", doc="query parameters"),
              Param("json", "any", doc="a JSON body"),
              Param("body", "any", doc="a text body (a mapping is sent as a form)"),
              Param("timeout_seconds", "number", default=30.0, minimum=0.001, doc="per request"),
              Param("check_status", "bool", default=True, doc="fail on HTTP 400 and above"),
              Param("follow_redirects", "bool", default=True, doc="follow 3xx answers")),
             {"status": "the HTTP status", "headers": "response headers (lower-case names)",
              "body": "the body as text", "json": "the body parsed as JSON, or null"},
             http, _http_check),
    StepType("llm", "network", "one chat completion (tea's llm.call action)", _LLM_PARAMS,
             {"content": "the reply (parsed with response_format: json)", "usage": "token counts",
              "model": "the model that answered"}, llm, _llm_check),
)
