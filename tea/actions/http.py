"""HTTP built-ins: ``http.get`` and ``http.post`` (httpx, imported on first use).

Like the reference, the result is the response body: parsed JSON when the body
is JSON, otherwise the text. ``full_response: true`` returns
``{"status", "headers", "body"}`` instead. A status of 400 or more fails the node
unless ``check_status: false``; 429, 5xx, timeouts and connection errors are
marked retryable for ``on_error``. ``timeout`` is the reference's name for
``timeout_seconds`` (either may be given).
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Mapping
from typing import Any

from tea.actions._common import (
    Action,
    ActionContext,
    fail,
    is_template,
    takes_context,
    to_bool,
    to_number,
    url_problem,
)

__all__ = ["ACTIONS", "http_get", "http_post"]

_EXCERPT = 300


def _body(text: str) -> Any:
    if not text.strip():
        return text
    try:
        return jsonlib.loads(text)
    except ValueError:
        return text


def _request(
    ctx: ActionContext, action: str, method: str, url: Any, *,
    headers: Any, params: Any, timeout_seconds: Any, timeout: Any, check_status: Any,
    full_response: Any, body: dict[str, Any],
) -> Any:
    import httpx

    problem = url_problem("url", url)
    if problem:
        raise fail(ctx, action, problem)
    for name, value in (("headers", headers), ("params", params)):
        if value is not None and not isinstance(value, Mapping):
            raise fail(ctx, action, f"{name} must be a mapping, got {type(value).__name__}")
    if timeout is not None and timeout_seconds is not None and timeout != timeout_seconds:
        raise fail(ctx, action, "give timeout or timeout_seconds, not both")
    name, value = (("timeout_seconds", timeout_seconds) if timeout_seconds is not None
                   else ("timeout", 30.0 if timeout is None else timeout))
    seconds = to_number(ctx, action, name, value, minimum=0.001)
    header_map = {str(k): str(v) for k, v in (headers or {}).items()}
    try:
        with httpx.Client(timeout=seconds, follow_redirects=True) as client:
            response = client.request(method, url, headers=header_map, params=params, **body)
    except httpx.TimeoutException:
        raise fail(ctx, action, f"{method} {url}: no answer within {seconds:g}s",
                   retryable=True) from None
    except httpx.TransportError as exc:
        raise fail(ctx, action, f"{method} {url}: cannot connect ({exc})",
                   retryable=True) from None
    status = response.status_code
    if status >= 400 and to_bool(ctx, action, "check_status", check_status):
        excerpt = response.text[:_EXCERPT]
        raise fail(ctx, action, f"{method} {url} returned HTTP {status}: {excerpt}",
                   retryable=status == 429 or status >= 500,
                   hint="set check_status: false to handle error statuses in the workflow")
    content = _body(response.text)
    if to_bool(ctx, action, "full_response", full_response):
        return {"status": status, "headers": dict(response.headers), "body": content}
    return content


@takes_context
def http_get(state: dict[str, Any], url: str, headers: Mapping[str, Any] | None = None,
             params: Mapping[str, Any] | None = None, timeout_seconds: float | None = None,
             check_status: bool = True, full_response: bool = False,
             timeout: float | None = None, *,
             ctx: ActionContext) -> Any:
    """GET ``url`` (with query ``params`` and ``headers``); returns the body."""
    return _request(ctx, "http.get", "GET", url, headers=headers, params=params,
                    timeout_seconds=timeout_seconds, timeout=timeout, check_status=check_status,
                    full_response=full_response, body={})


@takes_context
def http_post(state: dict[str, Any], url: str, json: Any = None, data: Any = None,
              headers: Mapping[str, Any] | None = None,
              params: Mapping[str, Any] | None = None, timeout_seconds: float | None = None,
              check_status: bool = True, full_response: bool = False,
              timeout: float | None = None, *,
              ctx: ActionContext) -> Any:
    """POST ``json`` (a JSON body) or ``data`` (text, or a mapping sent as a form)."""
    if json is not None and data is not None:
        raise fail(ctx, "http.post", "give either json or data, not both")
    body: dict[str, Any] = {}
    if json is not None:
        body["json"] = json
    elif isinstance(data, Mapping):
        body["data"] = dict(data)
    elif data is not None:
        body["content"] = str(data).encode()
    return _request(ctx, "http.post", "POST", url, headers=headers, params=params,
                    timeout_seconds=timeout_seconds, timeout=timeout, check_status=check_status,
                    full_response=full_response, body=body)


def _check(params: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    url = params.get("url")
    if url is None or is_template(url):
        return []
    problem = url_problem("url", url)
    return [problem] if problem else []


http_get.__tea_validate__ = _check  # type: ignore[attr-defined]
http_post.__tea_validate__ = _check  # type: ignore[attr-defined]

ACTIONS: dict[str, Action] = {
    "http.get": http_get,
    "actions.http_get": http_get,
    "http.post": http_post,
    "actions.http_post": http_post,
}
