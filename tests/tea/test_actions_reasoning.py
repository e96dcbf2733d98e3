"""reason.cot, reason.react, reason.self_correct and reflection.loop against a real loopback
OpenAI-compatible server that answers with scripted replies, in order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

import tea
from tea.actions import ActionContext, ActionFailed, builtin_registry, call_action
from tea.actions import validate_action_params as validate
from tea.secrets import Secrets

CHAT = "/v1/chat/completions"


def reply(content: str) -> dict[str, Any]:
    return {"model": "served", "choices": [{"message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}}


def script(server: HTTPServer, *contents: Any) -> None:
    for content in contents:
        text = content if isinstance(content, str) else json.dumps(content)
        server.expect_ordered_request(CHAT, method="POST").respond_with_json(reply(text))


def sent(server: HTTPServer) -> list[dict[str, Any]]:
    return [request.get_json() for request, _ in server.log]


def run(server: HTTPServer, tmp_path: Path, action: str, params: dict[str, Any],
        state: dict[str, Any] | None = None) -> Any:
    settings = {"llm": {"provider": "openai", "api_base": server.url_for("/v1"), "model": "m1",
                        "max_retries": 0}}
    ctx = ActionContext(node="think", workflow_dir=tmp_path, settings=settings,
                        secrets=Secrets({}), variables={})
    return call_action(builtin_registry(entry_points=False)[action], state or {}, params, ctx,
                       name=action)


def test_cot_asks_for_json_and_returns_thinking_and_answer(httpserver: HTTPServer, tmp_path):
    script(httpserver, '```json\n{"thinking": "2 and 2 make 4", "answer": 4}\n```')
    result = run(httpserver, tmp_path, "reason.cot",
                 {"problem": "What is 2+2?", "thinking_format": "pros_cons", "model": "big",
                  "few_shot_examples": [{"problem": "1+1", "thinking": "one and one",
                                         "answer": 2}]})
    assert (result["thinking"], result["answer"]) == ("2 and 2 make 4", 4)
    assert (result["reasoning_thinking"], result["reasoning_answer"]) == ("2 and 2 make 4", 4)
    assert (result["model"], result["thinking_format"]) == ("big", "pros_cons")
    assert [step["step"] for step in result["reasoning_trace"]] == ["cot_request", "cot_response"]
    [body] = sent(httpserver)
    assert body["model"] == "big" and "temperature" not in body
    system, user = body["messages"]
    assert "pros and cons" in system["content"] and "Example 1:\nProblem: 1+1" in system["content"]
    assert user == {"role": "user", "content": "Problem: What is 2+2?"}


def test_cot_reply_without_json_fails_the_node(httpserver: HTTPServer, tmp_path):
    script(httpserver, "I think it is four.")
    with pytest.raises(ActionFailed, match=r"reason\.cot: the model.s reply is not the JSON"):
        run(httpserver, tmp_path, "reason.cot", {"problem": "2+2?"})


def test_react_calls_a_tool_feeds_the_observation_back_and_answers(httpserver, tmp_path):
    script(httpserver,
           {"thought": "parse it", "action": "json.parse", "action_input": {"text": '{"a": 1}'}},
           "not json at all",
           {"thought": "done", "action": "final_answer", "action_input": {"answer": "a is 1"}})
    result = run(httpserver, tmp_path, "reason.react",
                 {"goal": "What is a?", "tools": ["json.parse"], "max_steps": 5})
    assert result["final_answer"] == "a is 1" and result["reasoning_answer"] == "a is 1"
    assert result["total_steps"] == 3 and result["react_steps"] == result["steps"]
    first, last = result["steps"]
    assert (first["action"], first["observation"]) == (
        "json.parse", json.dumps({"data": {"a": 1}, "success": True}))
    assert last["observation"] == "Goal achieved."
    bodies = sent(httpserver)
    assert "- json.parse: Parse JSON" in bodies[0]["messages"][0]["content"]
    assert bodies[1]["messages"][-1]["content"].startswith("Observation: ")
    assert "not valid JSON" in bodies[2]["messages"][-1]["content"]


def test_react_tools_include_the_workflows_own_actions(httpserver: HTTPServer, tmp_path):
    """A tool from the workflow's imports: (not a built-in, not registered globally) is
    found and called: composite actions see the run's actions."""
    (tmp_path / "mine.py").write_text(
        "def shout(state, text):\n"
        "    \"Shout the text.\"\n"
        "    return {'shout': text.upper()}\n\n"
        "def register_actions(registry, engine):\n"
        "    registry['shout'] = shout\n"
    )
    script(httpserver,
           {"thought": "shout it", "action": "my.shout", "action_input": {"text": "hi"}},
           {"thought": "done", "action": "final_answer", "action_input": {"answer": "HI"}})
    flow = tmp_path / "flow.yaml"
    flow.write_text(json.dumps({
        "imports": [{"path": "mine.py", "namespace": "my"}],
        "settings": {"llm": {"provider": "openai", "api_base": httpserver.url_for("/v1"), "model": "m1",
                             "max_retries": 0}},
        "nodes": [{"name": "think", "uses": "reason.react", "output": "r",
                   "with": {"goal": "shout hi", "tools": ["my.shout"], "max_steps": 3}}],
    }))
    result = tea.load(flow).invoke({})["r"]
    assert result["final_answer"] == "HI"
    assert result["steps"][0]["observation"] == json.dumps({"shout": "HI"})
    assert "- my.shout: Shout the text." in sent(httpserver)[0]["messages"][0]["content"]


def test_react_stops_after_max_steps(httpserver: HTTPServer, tmp_path):
    script(httpserver, {"thought": "hmm", "action": "guess", "action_input": {}})
    result = run(httpserver, tmp_path, "reason.react", {"goal": "x", "max_steps": 1})
    assert result["final_answer"] is None and result["total_steps"] == 1
    assert result["steps"][0]["observation"] == "Unknown action: guess. Available: []"
    assert "Max steps (1)" in result["warning"]


def test_self_correct_generates_then_improves(httpserver: HTTPServer, tmp_path):
    script(httpserver,
           {"output": "draft", "confidence": 0.4, "potential_issues": ["short"]},
           {"issues": ["too short"], "suggestions": ["expand"], "improved_output": "better",
            "improvement_score": 0.7},
           "unparseable critique")
    result = run(httpserver, tmp_path, "reason.self_correct",
                 {"task": "Write a haiku", "generator_model": "gen", "critic_prompt": "Be harsh."})
    assert result["output"] == "better" and result["reasoning_answer"] == "better"
    assert [h["type"] for h in result["improvement_history"]] == ["initial", "improvement"]
    assert result["improvement_history"][1]["issues_found"] == ["too short"]
    assert (result["generator_model"], result["critic_model"], result["rounds_completed"]) == (
        "gen", "m1", 2)
    bodies = sent(httpserver)
    assert [b["model"] for b in bodies] == ["gen", "m1", "m1"]
    assert "Be harsh." in bodies[1]["messages"][0]["content"]
    assert bodies[2]["messages"][1]["content"] == "Task: Write a haiku\n\nCurrent output:\nbetter"


def test_unknown_parameters_are_load_time_problems():
    assert validate("reason.cot", {"problem": "x", "model": "m", "timeout": 5}) == []
    [problem] = validate("reason.cot", {"problem": "x", "modle": "m"})
    assert "unknown parameter 'modle'" in problem
    assert validate("reason.react", {}) == ["missing parameter 'goal'"]


SCHEMA = {"type": "object", "required": ["title", "summary"],
          "properties": {"title": {"type": "string"}, "summary": {"type": "string"}}}
GENERATOR = """
if state.get("needs_summary"):
    result = {"title": "T", "summary": "S"}
else:
    result = {"title": "T"}
"""
CORRECTOR = """
result = {"needs_summary": any("summary" in e["message"] for e in reflection_errors)}
"""


def test_reflection_schema_evaluator_and_python_corrector(httpserver, tmp_path):
    result = run(httpserver, tmp_path, "reflection.loop",
                 {"generator": {"run": GENERATOR}, "corrector": {"run": CORRECTOR},
                  "evaluator": {"type": "schema", "schema": SCHEMA}})
    assert result["success"] is result["valid"] is True
    assert result["reflection_iteration"] == 2
    assert result["reflection_output"] == {"title": "T", "summary": "S"}
    assert (result["title"], result["summary"]) == ("T", "S")
    first = result["reflection_history"][0]
    assert (first["valid"], first["score"]) == (False, 0.0)
    assert first["errors"][0]["message"] == "'summary' is a required property"


def test_reflection_with_llm_generator_and_llm_judge(httpserver: HTTPServer, tmp_path):
    script(httpserver, "short draft", {"valid": False, "score": 0.3, "reason": "too short"},
           "a longer, better text", '{"pass": true, "score": 0.9}')
    result = run(httpserver, tmp_path, "reflection.loop", {
        "generator": {"action": "llm.call", "prompt": "Write about tea"},
        "evaluator": {"type": "llm", "prompt": "Is it long enough?", "model": "judge"},
        "max_iterations": 3})
    assert result["success"] and result["reflection_iteration"] == 2
    assert result["content"] == "a longer, better text"
    assert result["reflection_best_score"] == 0.9
    assert result["reflection_history"][0]["errors"] == [{"message": "too short"}]
    bodies = sent(httpserver)
    assert [b["model"] for b in bodies] == ["m1", "judge", "m1", "judge"]
    assert bodies[1]["messages"][-1]["content"] == (
        "Is it long enough?\n\nOutput to evaluate:\n"
        + json.dumps({"content": "short draft", "usage": reply("")["usage"], "model": "served"}))


def test_reflection_exhausted_returns_best_or_raises(httpserver, tmp_path):
    scores = "result = {0: 0.2, 1: 0.4, 2: 0.3}[len(state['reflection_history'])]"
    loop = {"generator": {"run": "result = 'try %d' % state['reflection_iteration']"},
            "evaluator": {"type": "custom", "run": scores}, "max_iterations": 3}
    best = run(httpserver, tmp_path, "reflection.loop", loop)
    assert best["exhausted"] and not best["success"]
    assert (best["reflection_output"], best["result"], best["reflection_best_score"]) == (
        "try 2", "try 2", 0.4)
    last = run(httpserver, tmp_path, "reflection.loop", {**loop, "on_failure": "return_last"})
    assert last["reflection_output"] == "try 3"
    with pytest.raises(ActionFailed, match="no valid output after 3 iterations"):
        run(httpserver, tmp_path, "reflection.loop", {**loop, "on_failure": "raise"})


def test_reflection_in_a_workflow(httpserver: HTTPServer, write_yaml):
    flow = write_yaml(f"""
        name: reflect
        nodes:
          - name: draft
            uses: reflection.loop
            with:
              generator:
                run: |
                  result = {{"title": state["topic"], "summary": "about " + state["topic"]}}
              evaluator:
                type: schema
                schema: {json.dumps(SCHEMA)}
          - name: done
            run: |
              return {{"article": state["reflection_output"], "tries": state["reflection_iteration"]}}
        """)
    final = tea.load(flow).invoke({"topic": "tea"})
    assert final["article"] == {"title": "tea", "summary": "about tea"} and final["tries"] == 1


def test_composite_actions_import_one_way():
    """The shell provider sees only ``_common``; the composites reach the plain built-ins
    through ``_nested`` and never the collecting ``builtin`` module (no cycle)."""
    import ast

    package = Path(tea.__file__).parent / "actions"

    def tea_imports(name: str) -> set[str]:
        tree = ast.parse((package / f"{name}.py").read_text(encoding="utf-8"))
        found = {node.module for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
        return {module for module in found if module.startswith("tea.")}

    assert tea_imports("llm_shell") == {"tea.actions._common"}
    assert "tea.actions.builtin" not in tea_imports("_nested")
    for name in ("reason", "reflection", "validation"):
        assert tea_imports(name) - {"tea.templates"} == {"tea.actions._common",
                                                          "tea.actions._nested"}, name
    assert tea_imports("memory") == {"tea.actions._common", "tea.actions._nested"}


def test_reflection_generator_parameters_under_with(httpserver: HTTPServer, tmp_path):
    result = run(httpserver, tmp_path, "reflection.loop", {
        "generator": {"action": "json.parse", "with": {"text": '{"a": 1}'}},
        "evaluator": {"type": "custom", "run": "result = output['data'] == {'a': 1}"}})
    assert result["success"] and result["data"] == {"a": 1}
