"""shell.run: disabled by default, argument lists only, real processes with timeouts."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tea.actions import ActionContext, ActionFailed, builtin_registry, call_action
from tea.actions import validate_action_params as validate
from tea.secrets import Secrets

ACTIONS = builtin_registry(entry_points=False)
ENABLED = {"shell": {"enabled": True}}
PY = sys.executable


def run(tmp_path: Path, params: dict[str, Any], settings: dict[str, Any] | None = ENABLED,
        secrets: dict[str, Any] | None = None) -> Any:
    ctx = ActionContext(node="cmd", workflow_dir=tmp_path, settings=settings or {},
                        secrets=Secrets(secrets or {}), variables={})
    return call_action(ACTIONS["shell.run"], {}, params, ctx, name="shell.run")


def test_disabled_unless_settings_enable_it(tmp_path):
    for settings in ({}, {"shell": {"enabled": False}}, {"shell": "yes please"}):
        with pytest.raises(ActionFailed, match="running programs is disabled") as info:
            run(tmp_path, {"command": ["true"]}, settings)
        assert info.value.node == "cmd"
        assert "settings: {shell: {enabled: true}}" in (info.value.hint or "")


def test_runs_an_argument_list_and_returns_output(tmp_path):
    result = run(tmp_path, {"command": [PY, "-c", "import sys, os; print(sys.argv[1:], "
                                        "os.getcwd()); sys.stderr.write('warn')",
                                        "a b", "$(rm -rf x)", 3]})
    assert result == {"stdout": f"['a b', '$(rm -rf x)', '3'] {tmp_path.resolve()}\n",
                      "stderr": "warn", "exit_code": 0}


def test_stdin_env_and_cwd(tmp_path):
    (tmp_path / "sub").mkdir()
    code = "import os, sys; print(sys.stdin.read(), os.environ['GREETING'], os.getcwd())"
    result = run(tmp_path, {"command": [PY, "-c", code], "input": "in", "cwd": "sub",
                            "env": {"GREETING": "hi"}})
    assert result["stdout"] == f"in hi {(tmp_path / 'sub').resolve()}\n"


def test_non_zero_exit_is_returned_or_fails_with_check(tmp_path):
    command = [PY, "-c", "import sys; sys.stderr.write('bad thing'); sys.exit(3)"]
    assert run(tmp_path, {"command": command})["exit_code"] == 3
    with pytest.raises(ActionFailed, match="exited with status 3") as info:
        run(tmp_path, {"command": command, "check": True})
    assert info.value.exit_status == 3 and info.value.stderr_tail == "bad thing"


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def test_timeout_kills_the_process_group(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    script = tmp_path / "spawn.py"
    script.write_text(
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    with pytest.raises(ActionFailed, match=r"did not finish within 2s") as info:
        run(tmp_path, {"command": [PY, str(script)], "timeout_seconds": 2})
    assert info.value.retryable
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while not _gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(grandchild)


@pytest.mark.parametrize(("params", "message"), [
    ({"command": "ls -l | wc"}, "argument list, not a shell string"),
    ({"command": []}, "non-empty list"),
    ({"command": ["echo", {"a": 1}]}, "items must be strings or numbers"),
    ({"command": ["tea-no-such-program-xyz"]}, "program 'tea-no-such-program-xyz' not found"),
    ({"command": ["ls"], "cwd": "../.."}, "cwd '../..' is outside the allowed directory"),
])
def test_bad_input(tmp_path, params, message):
    with pytest.raises(ActionFailed, match=message):
        run(tmp_path, params)


def test_shell_string_hint_shows_the_list_form(tmp_path):
    with pytest.raises(ActionFailed) as info:
        run(tmp_path, {"command": "git status"})
    assert info.value.hint == "write command: ['git', 'status'], one item per argument"


def test_secrets_in_stderr_are_redacted(tmp_path):
    command = [PY, "-c", "import sys; sys.stderr.write('pw=hunter2222'); sys.exit(1)"]
    with pytest.raises(ActionFailed) as info:
        run(tmp_path, {"command": command, "check": True}, secrets={"p": "hunter2222"})
    assert info.value.stderr_tail == "pw=***"


def test_load_time_validation():
    assert validate("shell.run", {"command": ["ls"]}, settings=ENABLED) == []
    problems = validate("shell.run", {"command": "ls -l"}, settings={})
    assert problems == [
        "shell.run is disabled for this workflow; add `settings: {shell: {enabled: true}}` "
        "to the workflow to allow it",
        "command must be an argument list, not a shell string"]
