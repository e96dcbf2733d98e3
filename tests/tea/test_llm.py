"""llm.call and llm.chat against a real loopback HTTP server speaking the Ollama and OpenAI APIs."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tea.actions import ActionContext, ActionFailed, builtin_registry, call_action
from tea.actions import validate_action_params as validate
from tea.actions.llm_client import ChatRequest, LLMError, RetryPolicy, chat, endpoint
from tea.errors import NodeError
from tea.secrets import Secrets

OPENAI = "/v1/chat/completions"
OLLAMA = "/api/chat"
FAST = {"base_delay": 0, "max_delay": 0}


def openai_reply(content: str, model: str = "served-model") -> dict[str, Any]:
    return {
        "id": "x", "object": "chat.completion", "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16},
    }


def ollama_reply(content: str, model: str = "llama3.2") -> dict[str, Any]:
    return {"model": model, "created_at": "2024-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": content}, "done": True,
            "prompt_eval_count": 7, "eval_count": 3}


@pytest.fixture(scope="module")
def llm_server() -> Iterator[HTTPServer]:
    # threaded, so a handler that sleeps (the timeout test) does not stall the next test
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def server(llm_server: HTTPServer) -> Iterator[HTTPServer]:
    llm_server.clear()
    yield llm_server
    llm_server.clear()


def make_ctx(tmp_path: Path, settings: dict[str, Any] | None = None,
             secrets: dict[str, Any] | None = None) -> ActionContext:
    return ActionContext(node="ask", workflow_dir=tmp_path, settings=settings or {},
                         secrets=Secrets(secrets or {}), variables={})


def run(action: str, params: dict[str, Any], ctx: ActionContext) -> Any:
    return call_action(builtin_registry(entry_points=False)[action], {}, params, ctx, name=action)


def base(server: HTTPServer) -> str:
    return server.url_for("/").rstrip("/")


def test_openai_call_sends_request_and_returns_content_usage_model(server, tmp_path):
    server.expect_ordered_request(OPENAI, method="POST").respond_with_json(openai_reply("Hi!"))
    ctx = make_ctx(tmp_path, secrets={"openai": "sk-test-123456"})
    result = run("llm.call", {
        "provider": "openai", "api_base": base(server) + "/v1", "model": "m1",
        "prompt": "Say hi", "system": "Be brief.", "temperature": 0.2, "max_tokens": 20,
        "api_key_secret": "openai",
    }, ctx)
    assert result == {"content": "Hi!", "model": "served-model",
                      "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}}
    request, _ = server.log[0]
    assert request.headers["Authorization"] == "Bearer sk-test-123456"
    assert request.get_json() == {
        "model": "m1", "temperature": 0.2, "max_tokens": 20,
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "Say hi"}],
    }


def test_ollama_call_uses_native_api_chat(server, tmp_path):
    server.expect_ordered_request(OLLAMA, method="POST").respond_with_json(ollama_reply("Yo"))
    result = run("llm.call", {"provider": "ollama", "api_base": base(server), "model": "llama3.2",
                              "prompt": "hello", "temperature": 0, "max_tokens": 8},
                 make_ctx(tmp_path))
    assert result == {"content": "Yo", "model": "llama3.2",
                      "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}
    request, _ = server.log[0]
    assert "Authorization" not in request.headers
    assert request.get_json() == {"model": "llama3.2", "stream": False,
                                  "messages": [{"role": "user", "content": "hello"}],
                                  "options": {"temperature": 0, "num_predict": 8}}


def test_llm_chat_sends_the_message_list(server, tmp_path):
    server.expect_ordered_request(OLLAMA).respond_with_json(ollama_reply("4"))
    history = [{"role": "user", "content": "2+2?"}]
    result = run("llm.chat", {"provider": "ollama", "api_base": base(server), "model": "q",
                              "messages": history}, make_ctx(tmp_path))
    assert result["content"] == "4"
    assert server.log[0][0].get_json()["messages"] == history


@pytest.mark.parametrize(("provider", "path", "field", "value"), [
    ("openai", OPENAI, "response_format", {"type": "json_object"}),
    ("ollama", OLLAMA, "format", "json"),
])
def test_json_mode_parses_the_reply(server, tmp_path, provider, path, field, value):
    text = '{"title": "Tea", "tags": ["a", "b"]}'
    reply = openai_reply(text) if provider == "openai" else ollama_reply(text)
    server.expect_ordered_request(path).respond_with_json(reply)
    result = run("llm.call", {"provider": provider, "api_base": base(server), "model": "m",
                              "prompt": "json please", "response_format": "json"},
                 make_ctx(tmp_path))
    assert result["content"] == {"title": "Tea", "tags": ["a", "b"]}
    assert server.log[0][0].get_json()[field] == value


def test_json_mode_reply_that_is_not_json_fails_clearly(server, tmp_path):
    server.expect_ordered_request(OPENAI).respond_with_json(openai_reply("sure! {oops"))
    with pytest.raises(ActionFailed, match=r"model 'm' replied with text that is not JSON"):
        run("llm.call", {"api_base": base(server), "model": "m", "prompt": "x",
                         "response_format": "json"}, make_ctx(tmp_path))


def test_429_then_success_retries(server, tmp_path):
    server.expect_ordered_request(OPENAI).respond_with_response(
        Response("slow down", status=429, headers={"Retry-After": "0"}))
    server.expect_ordered_request(OPENAI).respond_with_json(openai_reply("done"))
    result = run("llm.call", {"api_base": base(server), "model": "m", "prompt": "x", **FAST},
                 make_ctx(tmp_path))
    assert result["content"] == "done"
    assert len(server.log) == 2


@pytest.mark.parametrize(("header", "max_delay", "expected"), [("7", 30.0, 7.0), ("90", 2.0, 2.0)])
def test_retry_after_is_honoured_and_capped(server, header, max_delay, expected):
    server.expect_ordered_request(OPENAI).respond_with_response(
        Response("busy", status=429, headers={"Retry-After": header}))
    server.expect_ordered_request(OPENAI).respond_with_json(openai_reply("ok"))
    waits: list[float] = []
    request = ChatRequest("openai", "m", [{"role": "user", "content": "x"}], base(server))
    reply = chat(request, RetryPolicy(max_retries=2, base_delay=0.5, max_delay=max_delay),
                 sleep=waits.append)
    assert reply.content == "ok"
    assert waits == [expected]


def test_500_until_retries_run_out(server, tmp_path):
    server.expect_request(OPENAI).respond_with_data("upstream exploded", status=500)
    with pytest.raises(ActionFailed) as info:
        run("llm.call", {"api_base": base(server), "model": "gpt-x", "prompt": "x",
                         "max_retries": 2, **FAST}, make_ctx(tmp_path))
    err = info.value
    assert len(server.log) == 3
    assert err.node == "ask" and err.retryable
    for part in ("openai", "model 'gpt-x'", "HTTP 500", "upstream exploded", "after 3 attempts"):
        assert part in str(err)


def test_other_4xx_is_not_retried(server, tmp_path):
    server.expect_request(OLLAMA).respond_with_json({"error": "model 'nope' not found"},
                                                    status=404)
    with pytest.raises(ActionFailed, match=r"ollama model 'nope' .*HTTP 404.*not found") as info:
        run("llm.call", {"provider": "ollama", "api_base": base(server), "model": "nope",
                         "prompt": "x", **FAST}, make_ctx(tmp_path))
    assert len(server.log) == 1
    assert not info.value.retryable


def test_timeout_names_the_limit_and_is_retryable(server, tmp_path):
    def slow(request: Request) -> Response:
        time.sleep(1.0)
        return Response(json.dumps(openai_reply("late")), content_type="application/json")

    server.expect_request(OPENAI).respond_with_handler(slow)
    with pytest.raises(ActionFailed, match=r"no answer within 0.2s") as info:
        run("llm.call", {"api_base": base(server), "model": "m", "prompt": "x",
                         "timeout_seconds": 0.2, "max_retries": 0}, make_ctx(tmp_path))
    assert info.value.retryable


@pytest.mark.parametrize("body", ["<html>gateway</html>", '{"choices": []}', '{"message": 3}'])
def test_malformed_body_fails_without_retry(server, tmp_path, body):
    server.expect_request(OPENAI).respond_with_data(body, content_type="application/json")
    with pytest.raises(ActionFailed, match=r"malformed reply \(not a openai chat response\)"):
        run("llm.call", {"api_base": base(server), "model": "m", "prompt": "x", **FAST},
            make_ctx(tmp_path))
    assert len(server.log) == 1


def test_connection_refused_is_retried_then_reported(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ActionFailed, match=r"cannot connect.*after 2 attempts") as info:
        run("llm.call", {"api_base": f"http://127.0.0.1:{port}", "model": "m", "prompt": "x",
                         "max_retries": 1, **FAST}, make_ctx(tmp_path))
    assert info.value.retryable


def test_settings_llm_supplies_defaults_and_with_overrides(server, tmp_path):
    server.expect_ordered_request(OLLAMA).respond_with_json(ollama_reply("ok", model="big"))
    settings = {"llm": {"provider": "ollama", "api_base": base(server), "model": "small",
                        "temperature": 0.9, "unrelated": True}}
    result = run("llm.call", {"model": "big", "prompt": "x"}, make_ctx(tmp_path, settings))
    assert result["model"] == "big"
    sent = server.log[0][0].get_json()
    assert sent["model"] == "big" and sent["options"] == {"temperature": 0.9}


def test_api_key_from_a_secret_template_value_or_environment(server, tmp_path, monkeypatch):
    server.expect_request(OPENAI).respond_with_json(openai_reply("ok"))
    ctx = make_ctx(tmp_path, secrets={"k": "secret-key-1"})
    run("llm.call", {"api_base": base(server), "model": "m", "prompt": "x",
                     "api_key": "secret-key-1"}, ctx)
    monkeypatch.setenv("MY_LLM_KEY", "env-key-2")
    run("llm.call", {"api_base": base(server), "model": "m", "prompt": "x",
                     "api_key_env": "MY_LLM_KEY"}, ctx)
    monkeypatch.setenv("OPENAI_API_KEY", "env-key-3")
    run("llm.call", {"api_base": base(server), "model": "m", "prompt": "x"}, make_ctx(tmp_path))
    sent = [request.headers.get("Authorization") for request, _ in server.log]
    assert sent == ["Bearer secret-key-1", "Bearer env-key-2", "Bearer env-key-3"]


def test_error_messages_never_contain_secret_values(server, tmp_path):
    server.expect_request(OPENAI).respond_with_data("bad key secret-key-1 rejected", status=401)
    ctx = make_ctx(tmp_path, secrets={"k": "secret-key-1"})
    with pytest.raises(ActionFailed) as info:
        run("llm.call", {"api_base": base(server), "model": "m", "prompt": "x",
                         "api_key_secret": "k"}, ctx)
    assert "secret-key-1" not in str(info.value)
    assert "bad key *** rejected" in str(info.value)


@pytest.mark.parametrize(("params", "message"), [
    ({"prompt": "x"}, "no model given"),
    ({"model": "m", "prompt": "x", "provider": "olama"}, "unknown provider 'olama'"),
    ({"model": "m", "prompt": "x", "api_base": "localhost:11434"}, r"is not an http\(s\) URL"),
    ({"model": "m", "prompt": "x", "api_key": "from-state-value"}, "must come from secrets"),
    ({"model": "m", "prompt": "x", "api_key_secret": "missing"}, "secret 'missing' is not set"),
    ({"model": "m", "prompt": "x", "messages": []}, "exactly one of prompt"),
    ({"model": "m", "messages": [{"text": "hi"}]}, r"messages\[0\] must be a mapping"),
    ({"model": "m", "prompt": "x", "response_format": "xml"}, "response_format must be"),
    ({"model": "m", "promt": "x"}, "unknown parameter 'promt' \\(did you mean 'prompt'\\?\\)"),
])
def test_bad_input_names_the_node(tmp_path, params, message):
    with pytest.raises(NodeError, match=message) as info:
        run("llm.call", params, make_ctx(tmp_path))
    assert info.value.node == "ask"
    assert str(info.value).startswith("node 'ask': ")


def test_unknown_provider_suggests_the_close_one(tmp_path):
    with pytest.raises(ActionFailed) as info:
        run("llm.call", {"model": "m", "prompt": "x", "provider": "olama"}, make_ctx(tmp_path))
    assert info.value.hint == "did you mean 'ollama'?"


@pytest.mark.parametrize(("provider", "api_base", "url"), [
    ("openai", "http://h:8080/v1", "http://h:8080/v1/chat/completions"),
    ("openai", "http://h:8080", "http://h:8080/v1/chat/completions"),
    ("openai", "https://api.groq.com/openai/v1/", "https://api.groq.com/openai/v1/chat/completions"),
    ("openai", "http://h/v1/chat/completions", "http://h/v1/chat/completions"),
    ("ollama", "http://localhost:11434", "http://localhost:11434/api/chat"),
    ("ollama", "http://localhost:11434/api", "http://localhost:11434/api/chat"),
])
def test_endpoint(provider, api_base, url):
    assert endpoint(provider, api_base) == url


def test_llm_error_repr_hides_the_key():
    request = ChatRequest("openai", "m", [], "http://h", api_key="sk-hidden")
    assert "sk-hidden" not in repr(request)
    assert "sk-hidden" not in str(LLMError(request, "http://h", "boom", status=500))


def test_load_time_validation_of_llm_params():
    assert validate("llm.call", {"model": "m", "prompt": "{{ state.q }}"}) == []
    problems = validate("llm.call", {"prompt": "x", "provider": "azure",
                                     "api_base": "nowhere", "api_key": "sk-literal"})
    assert any("no model given" in p for p in problems)
    assert any("unknown provider 'azure'" in p for p in problems)
    assert any("api_base 'nowhere'" in p for p in problems)
    assert any("api_key must not be written in the workflow" in p for p in problems)
    assert validate("llm.call", {"prompt": "x"}, settings={"llm": {"model": "m"}}) == []
    assert validate("llm.chat", {"messages": "{{ state.history }}", "model": "m"}) == []
