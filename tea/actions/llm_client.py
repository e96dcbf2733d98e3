"""A small chat client for Ollama's native API and OpenAI-compatible servers.

::

    ChatRequest ──► chat() ──► POST {api_base}/api/chat            (provider "ollama")
                      │        POST {api_base}/v1/chat/completions (provider "openai")
                      │
                      ├─ connection error, timeout, 429, 5xx ─► retry with backoff
                      │     (Retry-After honoured, capped at RetryPolicy.max_delay)
                      ├─ other 4xx, malformed body ──────────► LLMError at once
                      ▼
                  ChatReply(content, model, usage)

Built on httpx (imported on first call) and tenacity. Every ``LLMError`` names
the provider, the model, the URL and, when there was one, the HTTP status. The
API key travels only in the Authorization header and never appears in errors.
``chat`` keeps no state between calls and is safe to call from many threads.
"""

from __future__ import annotations

import email.utils
import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "DEFAULT_API_BASES",
    "PROVIDERS",
    "ChatReply",
    "ChatRequest",
    "LLMError",
    "RetryPolicy",
    "chat",
    "endpoint",
    "retry_after_seconds",
]

PROVIDERS = ("ollama", "openai")
DEFAULT_API_BASES = {"ollama": "http://localhost:11434", "openai": "https://api.openai.com/v1"}
_EXCERPT = 300
_VERSIONED = re.compile(r"/v\d+[a-z0-9]*$")


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to ask for; ``api_key`` is hidden from ``repr``."""

    provider: str
    model: str
    messages: list[dict[str, Any]]
    api_base: str
    api_key: str | None = field(default=None, repr=False)
    temperature: float | None = None
    max_tokens: int | None = None
    json_mode: bool = False
    timeout_seconds: float = 60.0


@dataclass(frozen=True)
class RetryPolicy:
    """Retries after the first attempt, and the exponential backoff bounds (seconds)."""

    max_retries: int = 3
    base_delay: float = 1.0
    max_delay: float = 30.0


@dataclass(frozen=True)
class ChatReply:
    """The assistant's text, the model that answered, and token counts."""

    content: str
    model: str
    usage: dict[str, int]


class LLMError(Exception):
    """A chat request that failed; ``retryable`` tells whether trying later could help."""

    def __init__(
        self, request: ChatRequest, url: str, detail: str, *, status: int | None = None,
        retryable: bool = False, retry_after: float | None = None,
    ) -> None:
        self.provider = request.provider
        self.model = request.model
        self.url = url
        self.detail = detail
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.attempts = 1
        super().__init__(self.message)

    @property
    def message(self) -> str:
        status = f" HTTP {self.status}:" if self.status is not None else ""
        tries = f" (gave up after {self.attempts} attempts)" if self.attempts > 1 else ""
        return f"{self.provider} model '{self.model}' at {self.url}:{status} {self.detail}{tries}"

    def __str__(self) -> str:
        return self.message


def endpoint(provider: str, api_base: str) -> str:
    """The chat URL for ``provider`` under ``api_base``.

    Ollama: ``{base}/api/chat``. OpenAI-compatible: ``{base}/chat/completions``
    when ``base`` already ends in a version (``.../v1``), else
    ``{base}/v1/chat/completions``. A base that already is the full URL is kept.
    """
    base = api_base.rstrip("/")
    if provider == "ollama":
        if base.endswith("/api/chat"):
            return base
        return base + ("/chat" if base.endswith("/api") else "/api/chat")
    if base.endswith("/chat/completions"):
        return base
    return base + ("/chat/completions" if _VERSIONED.search(base) else "/v1/chat/completions")


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now (delta-seconds or an HTTP date), or ``None``."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _body(request: ChatRequest) -> dict[str, Any]:
    body: dict[str, Any] = {"model": request.model, "messages": request.messages}
    if request.provider == "ollama":
        options: dict[str, Any] = {}
        if request.temperature is not None:
            options["temperature"] = request.temperature
        if request.max_tokens is not None:
            options["num_predict"] = request.max_tokens
        body["stream"] = False
        if options:
            body["options"] = options
        if request.json_mode:
            body["format"] = "json"
        return body
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.json_mode:
        body["response_format"] = {"type": "json_object"}
    return body


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _reply(request: ChatRequest, payload: Any) -> ChatReply:
    """Pick content, model and usage out of a decoded body; ``KeyError``/``TypeError``
    /``IndexError`` mean the body is not the provider's shape."""
    if request.provider == "ollama":
        content = payload["message"]["content"]
        prompt, completion = _count(payload.get("prompt_eval_count")), _count(
            payload.get("eval_count"))
        usage = {"prompt_tokens": prompt, "completion_tokens": completion,
                 "total_tokens": prompt + completion}
    else:
        content = payload["choices"][0]["message"]["content"]
        raw = payload.get("usage") or {}
        usage = {key: _count(raw.get(key))
                 for key in ("prompt_tokens", "completion_tokens", "total_tokens")}
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise TypeError("content is not text")
    model = payload.get("model")
    return ChatReply(content, model if isinstance(model, str) and model else request.model, usage)


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text[:_EXCERPT] + ("..." if len(text) > _EXCERPT else "")


def _attempt(client: Any, request: ChatRequest, url: str, headers: dict[str, str]) -> ChatReply:
    import httpx

    try:
        response = client.post(url, json=_body(request), headers=headers)
    except httpx.TimeoutException:
        raise LLMError(request, url, f"no answer within {request.timeout_seconds:g}s",
                       retryable=True) from None
    except httpx.TransportError as exc:
        raise LLMError(request, url, f"cannot connect: {exc}", retryable=True) from None
    status = response.status_code
    if status == 429 or status >= 500:
        raise LLMError(request, url, _excerpt(response.text) or response.reason_phrase,
                       status=status, retryable=True,
                       retry_after=retry_after_seconds(response.headers.get("Retry-After")))
    if status >= 400:
        raise LLMError(request, url, _excerpt(response.text) or response.reason_phrase,
                       status=status)
    try:
        return _reply(request, json.loads(response.text))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        raise LLMError(request, url, f"malformed reply (not a {request.provider} chat "
                       f"response): {_excerpt(response.text) or '<empty body>'}",
                       status=status) from None


def _wait(policy: RetryPolicy) -> Callable[[Any], float]:
    def wait(retry_state: Any) -> float:
        error = retry_state.outcome.exception()
        hinted = getattr(error, "retry_after", None)
        if hinted is not None:
            return float(min(hinted, policy.max_delay))
        backoff = min(policy.max_delay, policy.base_delay * 2 ** (retry_state.attempt_number - 1))
        # Jitter keeps parallel branches that failed together from retrying together.
        return float(backoff * random.uniform(0.5, 1.0))

    return wait


def chat(
    request: ChatRequest, retry: RetryPolicy | None = None, *,
    sleep: Callable[[float], None] = time.sleep,
) -> ChatReply:
    """Send ``request``, retrying transient failures; raises ``LLMError``.

    ``sleep`` is how the backoff waits (tests pass a recorder to see the delays).
    """
    import httpx
    import tenacity

    policy = retry or RetryPolicy()
    url = endpoint(request.provider, request.api_base)
    headers = {"Accept": "application/json"}
    if request.api_key:
        headers["Authorization"] = f"Bearer {request.api_key}"
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(max(0, policy.max_retries) + 1),
        wait=_wait(policy),
        retry=tenacity.retry_if_exception(lambda exc: getattr(exc, "retryable", False)),
        sleep=sleep,
        reraise=True,
    )
    with httpx.Client(timeout=request.timeout_seconds) as client:
        try:
            reply: ChatReply = retrying(_attempt, client, request, url, headers)
        except LLMError as exc:
            exc.attempts = retrying.statistics.get("attempt_number", 1)
            raise
    return reply
