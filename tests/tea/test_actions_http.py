"""http.get and http.post against a real HTTP server on loopback."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tea.actions import ActionContext, ActionFailed, builtin_registry, call_action
from tea.secrets import Secrets

ACTIONS = builtin_registry(entry_points=False)


def run(tmp_path: Path, action: str, params: dict[str, Any],
        secrets: dict[str, Any] | None = None) -> Any:
    ctx = ActionContext(node="fetch", workflow_dir=tmp_path, settings={},
                        secrets=Secrets(secrets or {}), variables={})
    return call_action(ACTIONS[action], {}, params, ctx, name=action)


def test_get_returns_parsed_json_with_headers_and_query(httpserver: HTTPServer, tmp_path):
    httpserver.expect_request("/items", query_string="page=2",
                              headers={"X-Token": "abc"}).respond_with_json({"items": [1]})
    result = run(tmp_path, "http.get", {"url": httpserver.url_for("/items"),
                                        "params": {"page": 2}, "headers": {"X-Token": "abc"}})
    assert result == {"items": [1]}


def test_get_text_body_and_full_response(httpserver: HTTPServer, tmp_path):
    httpserver.expect_request("/t").respond_with_data("plain text", headers={"X-A": "1"})
    url = httpserver.url_for("/t")
    assert run(tmp_path, "http.get", {"url": url}) == "plain text"
    full = run(tmp_path, "http.get", {"url": url, "full_response": True})
    assert full["status"] == 200 and full["body"] == "plain text"
    assert full["headers"]["x-a"] == "1"


def test_post_sends_json_body(httpserver: HTTPServer, tmp_path):
    httpserver.expect_request("/p", method="POST", json={"q": "tea"}).respond_with_json(
        {"ok": True}, status=201)
    assert run(tmp_path, "http.post", {"url": httpserver.url_for("/p"), "json": {"q": "tea"}}) == {
        "ok": True}


def test_post_form_and_text_bodies(httpserver: HTTPServer, tmp_path):
    httpserver.expect_ordered_request("/f", method="POST", data="a=1").respond_with_data("f")
    httpserver.expect_ordered_request("/t", method="POST", data="raw").respond_with_data("t")
    assert run(tmp_path, "http.post", {"url": httpserver.url_for("/f"), "data": {"a": 1}}) == "f"
    assert run(tmp_path, "http.post", {"url": httpserver.url_for("/t"), "data": "raw"}) == "t"


def test_error_status_fails_unless_check_status_is_off(httpserver: HTTPServer, tmp_path):
    httpserver.expect_request("/missing").respond_with_data("no such thing", status=404)
    httpserver.expect_request("/down").respond_with_data("try later", status=503)
    url = httpserver.url_for("/missing")
    with pytest.raises(ActionFailed, match=r"GET .*/missing returned HTTP 404: no such thing") as e:
        run(tmp_path, "http.get", {"url": url})
    assert e.value.node == "fetch" and not e.value.retryable
    with pytest.raises(ActionFailed) as e:
        run(tmp_path, "http.get", {"url": httpserver.url_for("/down")})
    assert e.value.retryable
    assert run(tmp_path, "http.get", {"url": url, "check_status": False,
                                      "full_response": True})["status"] == 404


def test_timeout(tmp_path):
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)

    def slow(request: Request) -> Response:
        time.sleep(0.6)
        return Response("late")

    server.expect_request("/slow").respond_with_handler(slow)
    server.start()
    try:
        with pytest.raises(ActionFailed, match=r"no answer within 0.1s") as info:
            run(tmp_path, "http.get", {"url": server.url_for("/slow"), "timeout_seconds": 0.1})
        assert info.value.retryable
    finally:
        server.clear()
        server.stop()


@pytest.mark.parametrize(("params", "message"), [
    ({"url": "file:///etc/passwd"}, r"url 'file:///etc/passwd' is not an http\(s\) URL"),
    ({"url": "http://x", "headers": ["a"]}, "headers must be a mapping"),
    ({"url": "http://x", "timeout_seconds": "soon"}, "timeout_seconds must be a number"),
])
def test_bad_input(tmp_path, params, message):
    with pytest.raises(ActionFailed, match=message):
        run(tmp_path, "http.get", params)


def test_secrets_in_urls_are_redacted_from_errors(httpserver: HTTPServer, tmp_path):
    httpserver.expect_request("/hook").respond_with_data("denied", status=403)
    url = httpserver.url_for("/hook") + "?token=tok-98765"
    with pytest.raises(ActionFailed) as info:
        run(tmp_path, "http.get", {"url": url}, {"t": "tok-98765"})
    assert "tok-98765" not in str(info.value) and "token=***" in str(info.value)
