"""http and llm steps against a real HTTP server on loopback."""

from __future__ import annotations

import json

from mission_helpers import RunMission
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response


def test_http_get_then_post_with_the_first_answer(run: RunMission, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/users/7", headers={"Authorization": "Bearer tok-12345"}).respond_with_json(
        {"name": "ana"}, headers={"X-Trace": "t1"})
    httpserver.expect_request("/notes", method="PUT", json={"for": "ana"}).respond_with_data("stored", status=201)
    result = run(f"""
        steps:
          - id: user
            step_type: http
            parameters:
              url: "{httpserver.url_for('/users')}/{{{{ context.user_id }}}}"
              headers: {{Authorization: "Bearer {{{{ secrets.token }}}}"}}
          - id: note
            step_type: http
            depends_on: [user]
            parameters: {{url: "{httpserver.url_for('/notes')}", method: put,
                         json: {{for: "{{{{ user.output.json.name }}}}"}}}}
    """, {"user_id": 7}, secrets={"token": "tok-12345"})
    assert result.status == "completed", result.to_json()
    user = result.step_results["user"].output
    assert user["status"] == 200 and user["json"] == {"name": "ana"} and user["headers"]["x-trace"] == "t1"
    assert json.loads(user["body"]) == {"name": "ana"}
    assert result.step_results["note"].output["status"] == 201
    assert result.step_results["note"].output["body"] == "stored" and result.step_results["note"].output["json"] is None


def test_http_error_status_fails_unless_checked_later(run: RunMission, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/missing").respond_with_data("nope", status=404)
    url = httpserver.url_for("/missing")
    result = run(f"""
        config: {{fail_fast: false}}
        steps:
          - {{id: strict, step_type: http, parameters: {{url: "{url}"}}}}
          - {{id: lenient, step_type: http, parameters: {{url: "{url}", check_status: false}}}}
    """)
    assert result.step_results["strict"].error == f"step 'strict' (http): GET {url} returned HTTP 404: nope"
    assert result.step_results["lenient"].output["status"] == 404


def test_http_retries_a_server_error(run: RunMission, httpserver: HTTPServer) -> None:
    calls: list[int] = []

    def flaky(request: Request) -> Response:
        calls.append(1)
        if len(calls) < 2:
            return Response("busy", status=503)
        return Response('{"ok": true}', content_type="application/json")

    httpserver.expect_request("/flaky").respond_with_handler(flaky)
    result = run(f"""
        config: {{retry_attempts: 2, retry_delay_ms: 5}}
        steps:
          - {{id: call, step_type: http, parameters: {{url: "{httpserver.url_for('/flaky')}"}}}}
    """)
    assert result.step_results["call"].output["json"] == {"ok": True} and result.step_results["call"].attempts == 2


def test_llm_step_calls_an_openai_compatible_server(run: RunMission, httpserver: HTTPServer) -> None:
    seen: list[dict[str, object]] = []

    def reply(request: Request) -> Response:
        seen.append({"body": request.get_json(), "auth": request.headers.get("Authorization")})
        body = {"model": "served", "choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"},
                                                "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_handler(reply)
    result = run(f"""
        settings: {{llm: {{provider: openai, api_base: "{httpserver.url_for('/')}"}}}}
        steps:
          - {{id: doc, step_type: create_file, parameters: {{path: d.txt, content: tea is good}}}}
          - id: ask
            step_type: llm
            depends_on: [doc]
            parameters:
              model: tiny
              system_message: be brief
              prompt: "Summarise: {{{{ doc.output.path }}}}"
              api_key_secret: key
              max_tokens: 20
    """, secrets={"key": "sk-test-key"})
    assert result.status == "completed", result.to_json()
    assert result.step_results["ask"].output == {
        "content": "fine", "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}, "model": "served"}
    body = seen[0]["body"]
    assert isinstance(body, dict) and body["messages"] == [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "Summarise: d.txt"}]
    assert seen[0]["auth"] == "Bearer sk-test-key"
