"""validate.extraction (probes against a real loopback LLM server), retry.loop, and memory.*."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

import tea
from tea.actions import ActionContext, ActionFailed, builtin_registry, call_action
from tea.secrets import Secrets

CHAT = "/v1/chat/completions"
SCHEMA = {"entities": {"required_fields": ["name", "type"]},
          "relationships": {"types": ["mother", "affair"], "required_fields": ["subject"],
                            "type_requirements": {"affair": ["start_date"]}}}


def reply(content: str) -> dict[str, Any]:
    return {"model": "served", "choices": [{"message": {"role": "assistant", "content": content}}]}


def run(tmp_path: Path, action: str, params: dict[str, Any], state: dict[str, Any] | None = None,
        server: HTTPServer | None = None) -> Any:
    settings = {"llm": {"provider": "openai", "model": "m1", "max_retries": 0,
                        "api_base": server.url_for("/v1") if server else "http://127.0.0.1:9/v1"}}
    ctx = ActionContext(node="check", workflow_dir=tmp_path, settings=settings,
                        secrets=Secrets({}), variables={})
    return call_action(builtin_registry(entry_points=False)[action], state or {}, params, ctx,
                       name=action)


def test_structural_errors_name_the_path(tmp_path):
    state = {"entities": [{"name": "Ann", "type": "person"}, {"name": "Bo"}],
             "relationships": [{"type": "sister", "subject": "Ann"},
                               {"type": "affair", "subject": "Bo"}]}
    result = run(tmp_path, "validate.extraction", {"schema": SCHEMA}, state)
    assert result["valid"] is False and result["validated_at"]
    assert [(e["type"], e["path"]) for e in result["errors"]] == [
        ("missing_required_field", "entities[1].type"),
        ("invalid_relationship_type", "relationships[0].type"),
        ("missing_type_specific_field", "relationships[1].start_date")]
    assert result["errors"][0]["entity"] == {"name": "Bo"}
    good = run(tmp_path, "validate.extraction",
               {"schema": SCHEMA, "entities": [{"name": "Ann", "type": "person"}],
                "relationships": []}, state)
    assert (good["valid"], good["errors"]) == (True, [])


def test_probes_ask_the_llm_yes_or_no(httpserver: HTTPServer, tmp_path):
    for answer in ("Yes.", "No, it is not."):
        httpserver.expect_ordered_request(CHAT, method="POST").respond_with_json(reply(answer))
    probes = [{"for_each": "entity", "where": "type == 'person'",
               "probe": "Is {{ name }} mentioned in: {{ text }}?", "on_fail": "reject"}]
    entities = [{"name": "Ann", "type": "person"}, {"name": "Oslo", "type": "city"},
                {"name": "Bo", "type": "person"}]
    result = run(tmp_path, "validate.extraction",
                 {"entities": entities, "probes": probes, "source_text": "Ann met Cy."},
                 server=httpserver)
    assert result["valid"] is False
    [error] = result["errors"]
    assert error["type"] == "semantic_probe_failed" and error["item"]["name"] == "Bo"
    bodies = [request.get_json() for request, _ in httpserver.log]
    assert [b["messages"][1]["content"] for b in bodies] == [
        "Is Ann mentioned in: Ann met Cy.?", "Is Bo mentioned in: Ann met Cy.?"]
    assert bodies[0]["max_tokens"] == 10
    assert bodies[0]["messages"][0]["content"] == (
        "You are a fact-checker. Answer with ONLY 'yes' or 'no'.")


def test_failures_are_logged_and_prolog_constraints_refused(tmp_path):
    logging = {"enabled": True, "log_path": "logs/failures.jsonl"}
    run(tmp_path, "validate.extraction",
        {"schema": SCHEMA, "entities": [{"name": "X"}], "logging": logging, "agent_name": "a1"})
    [line] = (tmp_path / "logs" / "failures.jsonl").read_text().splitlines()
    entry = json.loads(line)
    assert (entry["agent_name"], entry["failure_type"]) == ("a1", "schema")
    with pytest.raises(ActionFailed, match="Prolog validation constraints are not supported"):
        run(tmp_path, "validate.extraction", {"constraints": {"rules": "ok."}})


FIX = "result = {'entities': [{'name': e['name'], 'type': 'person'} for e in state['entities']]}"


def test_retry_loop_corrects_until_valid(tmp_path):
    state = {"entities": [{"name": "Ann"}], "keep": 1}
    result = run(tmp_path, "retry.loop", {
        "validate": "validate.extraction", "validate_args": {"schema": SCHEMA},
        "correct": {"run": FIX}, "max_retries": 2}, state)
    assert (result["valid"], result["_retry_count"], result["_retry_exhausted"]) == (True, 1, False)
    assert result["_retry_errors"] == [] and result["_retry_result"]["valid"] is True
    assert result["entities"] == [{"name": "Ann", "type": "person"}] and result["keep"] == 1


def test_retry_loop_gives_up_after_max_retries(tmp_path):
    result = run(tmp_path, "retry.loop", {
        "validate": "validate.extraction", "validate_args": {"schema": SCHEMA},
        "correct": {"run": "result = {'tries': state['_retry_count']}"}, "max_retries": 2},
        {"entities": [{"name": "Ann"}]})
    assert (result["valid"], result["_retry_count"], result["_retry_exhausted"]) == (
        False, 2, True)
    assert result["tries"] == 1 and result["_retry_errors"][0]["path"] == "entities[0].type"


def test_retry_loop_configuration_errors(tmp_path):
    with pytest.raises(ActionFailed, match=r"unknown action 'validate\.nope'"):
        run(tmp_path, "retry.loop", {"validate": "validate.nope", "correct": {"run": "x = 1"}})
    with pytest.raises(ActionFailed, match="cannot run the correction node 'fix'"):
        run(tmp_path, "retry.loop", {"validate": "validate.extraction",
                                     "validate_args": {"schema": SCHEMA}, "correct": "fix"},
            {"entities": [{"name": "A"}]})


def test_memory_store_and_retrieve_with_namespace_and_ttl(tmp_path):
    stored = run(tmp_path, "memory.store", {"key": "pref", "value": {"theme": "dark"},
                                            "namespace": "u1"})
    assert stored == {"stored": True, "key": "pref", "namespace": "u1"}
    assert run(tmp_path, "memory.retrieve", {"key": "pref", "namespace": "u1"}) == {
        "value": {"theme": "dark"}, "found": True, "key": "pref"}
    assert run(tmp_path, "memory.retrieve", {"key": "pref", "namespace": "u2", "default": 0}) == {
        "value": 0, "found": False, "key": "pref"}
    run(tmp_path, "memory.store", {"key": "brief", "value": 1, "ttl": 0.05, "namespace": "u1"})
    time.sleep(0.1)
    assert run(tmp_path, "memory.retrieve", {"key": "brief", "namespace": "u1"})["found"] is False


def test_memory_between_nodes_of_a_workflow(write_yaml):
    flow = write_yaml("""
        name: remember
        nodes:
          - name: keep
            uses: memory.store
            with: {key: visitor, value: "{{ state.name }}", namespace: wf-memory-test}
          - name: recall
            uses: memory.retrieve
            with: {key: visitor, namespace: wf-memory-test}
            output: recalled
        """)
    final = tea.load(flow).invoke({"name": "Ann"})
    assert final["stored"] is True and final["recalled"]["value"] == "Ann"


def test_memory_summarize_short_history_as_is_long_one_by_the_llm(httpserver, tmp_path):
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    short = run(tmp_path, "memory.summarize", {"messages_key": "history"}, {"history": history})
    assert short == {"summary": "user: hi\nassistant: hello", "original_count": 2,
                     "token_estimate": 6, "success": True}
    httpserver.expect_ordered_request(CHAT, method="POST").respond_with_json(reply("They met."))
    long = run(tmp_path, "memory.summarize", {"messages_key": "history", "max_tokens": 2,
                                              "model": "small"}, {"history": history},
               server=httpserver)
    assert long["summary"] == "They met." and long["original_count"] == 2
    [request] = [r.get_json() for r, _ in httpserver.log]
    assert request["model"] == "small" and request["temperature"] == 0.3
    assert "approximately 2 tokens" in request["messages"][0]["content"]
    with pytest.raises(ActionFailed, match="messages_key 'nope' is not in the state"):
        run(tmp_path, "memory.summarize", {"messages_key": "nope"})


RETRY_FLOW = """
name: extract
extraction_schema:
  entities: {required_fields: [name, type]}
nodes:
  - name: check
    uses: retry.loop
    with:
      validate: validate.extraction
      correct: fix
      max_retries: 2
  - name: fix
    run: |
      return {"entities": [{**e, "type": "person"} for e in state["entities"]]}
edges:
  - {from: __start__, to: check}
  - {from: check, to: __end__}
"""


def test_retry_loop_corrects_with_a_node_and_reads_the_top_level_schema(tmp_path):
    """The reference's form: ``correct:`` names a node, and validate.extraction reads the
    workflow's ``extraction_schema`` (the engine gives both to the action)."""
    flow = tmp_path / "flow.yaml"
    flow.write_text(RETRY_FLOW)
    final = tea.load(flow).invoke({"entities": [{"name": "Ann"}]})
    assert final["valid"] is True and final["_retry_count"] == 1
    assert final["entities"] == [{"name": "Ann", "type": "person"}]
    broken = RETRY_FLOW.replace("correct: fix", "correct: fxi")
    flow.write_text(broken)
    final = tea.load(flow).invoke({"entities": [{"name": "Ann"}]})
    assert final["valid"] is False and "no node named 'fxi'" in final["_retry_errors"][-1]["message"]
