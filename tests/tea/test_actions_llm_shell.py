"""llm.call with provider: shell runs real programs found on PATH.

Each test writes small ``claude``/``codex``/``gemini`` executables (Python
scripts) into a directory put first on PATH: that is the mechanism itself (the
tool is whatever program of that name PATH finds). Each records the argv and
stdin it received in a JSON file and prints an answer.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from tea.actions import ActionContext, ActionFailed, builtin_registry, call_action
from tea.actions import validate_action_params as validate
from tea.secrets import Secrets

FAKE = """#!{python}
import json, os, sys, time
data = sys.stdin.read() if not sys.stdin.isatty() else ""
files = [a for a in sys.argv[1:] if a.startswith(os.sep) and os.path.isfile(a)]
record = {{"argv": sys.argv[1:], "stdin": data,
          "file": open(files[0]).read() if files else None, "env": os.environ.get("FAKE_FLAG")}}
with open(os.path.join(os.path.dirname(sys.argv[0]), sys.argv[0].rsplit("/", 1)[-1] + ".json"),
          "w") as out:
    json.dump(record, out)
if os.environ.get("FAKE_SLEEP"):
    time.sleep(float(os.environ["FAKE_SLEEP"]))
if os.environ.get("FAKE_FAIL"):
    sys.stderr.write("quota exceeded\\n")
    sys.exit(3)
print("  answer from " + sys.argv[0].rsplit("/", 1)[-1] + "  ")
"""


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("claude", "codex", "gemini", "mytool"):
        path = bin_dir / name
        path.write_text(FAKE.format(python=sys.executable))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return bin_dir


def received(bin_dir: Path, name: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((bin_dir / f"{name}.json").read_text())
    return record


def ask(tmp_path: Path, params: dict[str, Any], settings: dict[str, Any] | None = None) -> Any:
    ctx = ActionContext(node="ask", workflow_dir=tmp_path, settings=settings or {},
                        secrets=Secrets({}), variables={})
    fn = builtin_registry(entry_points=False)["llm.call"]
    return call_action(fn, {}, params, ctx, name="llm.call")


def test_claude_gets_the_prompt_as_an_argument(tools, tmp_path):
    result = ask(tmp_path, {"provider": "shell", "shell_provider": "claude",
                            "prompt": "Say hi; rm -rf / $(x)", "system": "Be brief."})
    assert result == {"content": "answer from claude", "usage": {}, "model": "claude",
                      "provider": "shell", "shell_provider": "claude"}
    got = received(tools, "claude")
    assert got["argv"] == ["-p", "System: Be brief.\n\nSay hi; rm -rf / $(x)",
                           "--dangerously-skip-permissions", "--no-session-persistence"]
    assert got["stdin"] == ""


def test_codex_and_gemini_read_the_conversation_on_stdin(tools, tmp_path):
    messages = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"},
                {"role": "user", "content": "and 3+3?"}]
    for name in ("codex", "gemini"):
        result = ask(tmp_path, {"provider": "shell", "shell_provider": name,
                                "messages": messages})
        assert result["content"] == f"answer from {name}"
        assert received(tools, name)["stdin"] == "2+2?\n\nAssistant: 4\n\nand 3+3?"
    assert received(tools, "codex")["argv"] == [
        "--yolo", "exec", "-c", "model=gpt-5.5", "-c", "model_reasoning_effort=xhigh", "-"]
    assert received(tools, "gemini")["argv"] == ["prompt"]


def test_settings_define_a_tool_and_llm_settings_pick_it(tools, tmp_path, monkeypatch):
    monkeypatch.setenv("TEA_TEST_MODE", "fast")
    settings = {
        "shell_providers": {"mine": {"command": "mytool", "args": ["--mode", "${TEA_TEST_MODE}"],
                                     "env": {"FAKE_FLAG": "on"}}},
        "llm": {"provider": "shell", "shell_provider": "mine"},
    }
    assert validate("llm.call", {"prompt": "hi"}, settings=settings) == []
    result = ask(tmp_path, {"prompt": "hello"}, settings)
    assert result["shell_provider"] == "mine"
    got = received(tools, "mytool")
    assert (got["argv"], got["stdin"], got["env"]) == (["--mode", "fast"], "hello", "on")


def test_stdin_mode_file_passes_a_temporary_file(tools, tmp_path):
    settings = {"llm": {"shell_providers": {"filed": {
        "command": "mytool", "args": ["--input", "{input_file}"], "stdin_mode": "file"}}}}
    ask(tmp_path, {"provider": "shell", "shell_provider": "filed", "prompt": "long text"},
        settings)
    got = received(tools, "mytool")
    assert got["argv"][0] == "--input" and got["file"] == "long text"
    assert not Path(got["argv"][1]).exists()


def test_missing_program_names_it_and_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ActionFailed) as err:
        ask(tmp_path, {"provider": "shell", "shell_provider": "codex", "prompt": "x"})
    message = str(err.value)
    assert "'codex'" in message and "not on PATH" in message
    assert "npm install -g @openai/codex" in message


def test_failing_program_fails_the_node_with_its_stderr(tools, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "1")
    with pytest.raises(ActionFailed) as err:
        ask(tmp_path, {"provider": "shell", "shell_provider": "gemini", "prompt": "x"})
    assert "exited with status 3" in str(err.value) and "quota exceeded" in str(err.value)


def test_timeout_kills_the_program(tools, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_SLEEP", "30")
    with pytest.raises(ActionFailed) as err:
        ask(tmp_path, {"provider": "shell", "shell_provider": "claude", "prompt": "x",
                       "timeout": 0.5})
    assert "did not answer within 0.5s" in str(err.value)
    assert err.value.retryable


def test_load_time_checks(tmp_path):
    assert validate("llm.call", {"provider": "shell", "prompt": "x"}) == [
        "provider: shell needs shell_provider (claude, codex, gemini, ...)"]
    [problem] = validate("llm.call", {"provider": "shell", "shell_provider": "clade",
                                      "prompt": "x"})
    assert "shell provider 'clade' is not configured" in problem
    assert validate("llm.call", {"provider": "shell", "shell_provider": "claude",
                                 "prompt": "x", "timeout": 5}) == []


def test_unknown_shell_provider_at_run_time(tools, tmp_path):
    with pytest.raises(ActionFailed, match="shell provider 'nope' is not configured"):
        ask(tmp_path, {"provider": "shell", "shell_provider": "nope", "prompt": "x"})


def test_shell_provider_in_a_workflow(tools, run_tea, write_yaml):
    flow = write_yaml("""
        name: cli-llm
        nodes:
          - name: ask
            uses: llm.call
            with:
              provider: shell
              shell_provider: claude
              prompt: "Summarise {{ state.topic }}"
              timeout: 60
            output: reply
        """)
    out = flow.parent / "final.json"
    done = run_tea("run", flow, "-q", "-i", '{"topic": "tea"}', "-o", out)
    assert done.returncode == 0, done.stderr
    assert received(tools, "claude")["argv"][1] == "Summarise tea"
    assert json.loads(out.read_text())["reply"]["content"] == "answer from claude"
