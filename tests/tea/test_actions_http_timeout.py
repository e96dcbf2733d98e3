"""http.get's ``timeout:`` (the reference's name) against a real, slow loopback server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tea.actions import ActionContext, ActionFailed, builtin_registry, call_action
from tea.actions import validate_action_params as validate
from tea.secrets import Secrets


def run(tmp_path: Path, action: str, params: dict[str, Any]) -> Any:
    ctx = ActionContext(node="fetch", workflow_dir=tmp_path, settings={},
                        secrets=Secrets({}), variables={})
    return call_action(builtin_registry(entry_points=False)[action], {}, params, ctx, name=action)


@pytest.fixture
def slow_server() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)

    def slow(request: Request) -> Response:
        time.sleep(0.6)
        return Response('{"late": true}', content_type="application/json")

    server.expect_request("/slow").respond_with_handler(slow)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.mark.parametrize("action", ["http.get", "http.post"])
def test_timeout_parameter_bounds_the_request(slow_server: HTTPServer, tmp_path, action):
    with pytest.raises(ActionFailed, match=r"no answer within 0.1s") as info:
        run(tmp_path, action, {"url": slow_server.url_for("/slow"), "timeout": 0.1})
    assert info.value.retryable


def test_a_long_enough_timeout_gets_the_body(slow_server: HTTPServer, tmp_path):
    assert run(tmp_path, "http.get", {"url": slow_server.url_for("/slow"), "timeout": 30}) == {
        "late": True}


def test_timeout_is_a_known_parameter_and_checked(tmp_path):
    assert validate("http.get", {"url": "http://localhost:1/x", "timeout": 5}) == []
    with pytest.raises(ActionFailed, match="timeout must be a number"):
        run(tmp_path, "http.get", {"url": "http://localhost:1/x", "timeout": "soon"})
    with pytest.raises(ActionFailed, match="give timeout or timeout_seconds, not both"):
        run(tmp_path, "http.get", {"url": "http://localhost:1/x", "timeout": 1,
                                   "timeout_seconds": 2})
