"""Actions inside whole workflows: the LLM example end to end (API and CLI), imports, secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

import tea
from tea.errors import LoadError, RunError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "llm_summarize.yaml"
TEA = Path(sys.executable).parent / "tea"
CHAT = "/v1/chat/completions"


def reply(content: str) -> dict[str, Any]:
    return {"model": "served", "choices": [{"message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}}


@pytest.fixture
def llm(httpserver: HTTPServer) -> Iterator[HTTPServer]:
    httpserver.expect_ordered_request(CHAT, method="POST").respond_with_json(
        reply("Tea runs workflows at the edge."))
    httpserver.expect_ordered_request(CHAT, method="POST").respond_with_json(
        reply('{"title": "Edge tea", "keywords": ["edge", "yaml"]}'))
    yield httpserver


def test_llm_example_runs_through_the_api(llm: HTTPServer):
    final = tea.load(EXAMPLE).invoke({"text": "Some text.", "api_base": llm.url_for("/v1")})
    assert final["summary"] == "Tea runs workflows at the edge."
    assert final["tokens_used"] == 9
    assert final["title"] == "Edge tea" and final["keywords"] == ["edge", "yaml"]
    first, second = (request.get_json() for request, _ in llm.log)
    assert first["model"] == "llama3.2" and first["temperature"] == 0.2
    assert first["messages"][1] == {"role": "user", "content": "Summarize this text:\n\nSome text."}
    assert second["response_format"] == {"type": "json_object"}
    assert second["messages"][1]["content"] == "Tea runs workflows at the edge."


def test_llm_example_runs_through_the_cli_with_a_secret_key(llm: HTTPServer, tmp_path):
    out = tmp_path / "final.json"
    key = "sk-local-test-key"
    proc = subprocess.run(
        [str(TEA), "run", str(EXAMPLE), "-q", "-o", str(out),
         "-i", json.dumps({"text": "Some text.", "api_base": llm.url_for("/v1")}),
         "--secrets", json.dumps({"openai_api_key": key})],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    final = json.loads(out.read_text())
    assert final["title"] == "Edge tea"
    assert [r.headers["Authorization"] for r, _ in llm.log] == [f"Bearer {key}"] * 2
    assert key not in proc.stdout + proc.stderr + out.read_text()


def test_custom_actions_example():
    final = tea.load(ROOT / "examples" / "custom_actions.yaml").invoke({"idea": "ship it"})
    assert final["notes"] == [{"text": "ship it", "tag": "todo"},
                              {"text": "tea is ready", "tag": "general"}]
    assert final["todo"] == "- ship it"


def write_flow(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "flow.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_imports_files_and_data_actions_in_one_workflow(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "words.py").write_text(textwrap.dedent("""
        def count_words(state, text):
            return {"words": len(text.split())}

        def register_actions(registry, engine):
            registry["count"] = count_words
    """))
    (tmp_path / "input.json").write_text('{"sentence": "tea is a workflow engine"}')
    flow = write_flow(tmp_path, """
        name: imported
        imports:
          - path: lib/words.py
            namespace: words
        nodes:
          - name: read
            uses: file.read
            with: {path: input.json}
            output: raw
          - name: parse
            uses: json.parse
            with: {text: "{{ state.raw.content }}"}
            output:
              sentence: "{{ result.data.sentence }}"
          - name: count
            uses: words.count
            with: {text: "{{ state.sentence }}"}
          - name: save
            uses: file.write
            with: {path: out/count.txt, content: "{{ state.words }}"}
            output: saved
    """)
    final = tea.load(flow).invoke({})
    assert final["words"] == 5
    assert (tmp_path / "out" / "count.txt").read_text() == "5"


def test_imported_and_llm_actions_run_in_process_branches(httpserver: HTTPServer, tmp_path):
    httpserver.expect_request(CHAT).respond_with_json(reply("from the llm"))
    (tmp_path / "mine.py").write_text(textwrap.dedent("""
        import os

        def where(state, tag):
            return {"tag": tag, "pid": os.getpid()}

        def register_actions(registry, engine):
            registry["where"] = where
    """))
    flow = write_flow(tmp_path, """
        imports:
          - {path: mine.py, namespace: mine}
        settings:
          parallel: {strategy: process, max_workers: 2}
        nodes:
          - name: start
            run: "return {}"
          - name: local
            uses: mine.where
            with: {tag: imported}
          - name: ask
            uses: llm.call
            with:
              api_base: "{{ state.base }}"
              model: m
              prompt: hi
              api_key_secret: k
            output: answer
          - name: join
            fan_in: true
            run: |
              return {"tag": parallel_results[0]["tag"], "pid": parallel_results[0]["pid"],
                      "answer": parallel_results[1]["answer"]["content"]}
        edges:
          - from: start
            to: [local, ask]
            parallel: true
            fan_in: join
    """)
    final = tea.load(flow).invoke({"base": httpserver.url_for("/")}, secrets={"k": "sk-proc-1"})
    assert final["tag"] == "imported" and final["answer"] == "from the llm"
    assert final["pid"] != os.getpid()
    assert httpserver.log[0][0].headers["Authorization"] == "Bearer sk-proc-1"


def test_unknown_action_is_a_located_load_error_with_a_suggestion(tmp_path):
    flow = write_flow(tmp_path, """
        nodes:
          - name: ask
            uses: llm.cal
            with: {model: m, prompt: hi}
    """)
    with pytest.raises(LoadError) as info:
        tea.load(flow)
    assert info.value.location.line == 4
    assert "llm.cal" in str(info.value) and "llm.call" in str(info.value)


def test_api_key_from_a_secrets_template_reaches_the_server(httpserver: HTTPServer, tmp_path):
    httpserver.expect_request(CHAT).respond_with_json(reply("ok"))
    flow = write_flow(tmp_path, """
        nodes:
          - name: ask
            uses: llm.call
            with:
              api_base: "{{ state.base }}"
              model: m
              prompt: hi
              api_key: "{{ secrets.llm_key }}"
            output: answer
    """)
    final = tea.load(flow).invoke({"base": httpserver.url_for("/")},
                                  secrets={"llm_key": "sk-from-secrets"})
    assert final["answer"]["content"] == "ok"
    assert httpserver.log[0][0].headers["Authorization"] == "Bearer sk-from-secrets"
    assert "sk-from-secrets" not in json.dumps(final)


def test_api_key_from_state_is_refused_naming_the_node(httpserver: HTTPServer, tmp_path):
    flow = write_flow(tmp_path, """
        config: {raise_exceptions: true}
        nodes:
          - name: ask
            uses: llm.call
            with:
              api_base: "{{ state.base }}"
              model: m
              prompt: hi
              api_key: "{{ state.key }}"
    """)
    with pytest.raises(RunError, match="api_key must come from secrets") as info:
        tea.load(flow).invoke({"base": httpserver.url_for("/"), "key": "sk-in-state"})
    assert info.value.node == "ask"
    assert httpserver.log == []
