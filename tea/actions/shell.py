"""``shell.run``: run one program with an argument list, never through a shell.

Disabled unless the workflow sets ``settings.shell.enabled: true``, because a
workflow that runs programs is a different kind of trust than one that only
transforms data. The command is a list (``[git, status, --short]``); a string is
refused rather than split, so no value from state can inject shell syntax. The
program runs in its own process group, which is killed whole on timeout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping
from typing import Any

from tea.actions._common import (
    Action,
    ActionContext,
    confine,
    fail,
    files_root,
    is_template,
    takes_context,
    to_bool,
    to_number,
)

__all__ = ["ACTIONS", "shell_run"]

_TAIL = 2000
_DISABLED_HINT = "add `settings: {shell: {enabled: true}}` to the workflow to allow it"


def _tail(text: str) -> str:
    return text[-_TAIL:]


def _argv(ctx: ActionContext, command: Any) -> list[str]:
    if isinstance(command, str):
        raise fail(ctx, "shell.run", "command must be an argument list, not a shell string",
                   hint=f"write command: {command.split()!r}, one item per argument")
    if not isinstance(command, list | tuple) or not command:
        raise fail(ctx, "shell.run", f"command must be a non-empty list, got {command!r}")
    bad = [item for item in command if not isinstance(item, str | int | float)
           or isinstance(item, bool)]
    if bad:
        raise fail(ctx, "shell.run", f"command items must be strings or numbers, got {bad[0]!r}")
    return [str(item) for item in command]


def _kill(proc: subprocess.Popen[str]) -> str:
    """Kill the whole process group; what the program wrote to stderr so far."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        return proc.communicate(timeout=5)[1] or ""
    except subprocess.TimeoutExpired:
        # A descendant left the group and still holds the pipes; stop waiting for it.
        proc.kill()
        return ""


@takes_context
def shell_run(state: dict[str, Any], command: list[str], timeout_seconds: float = 60.0,
              cwd: str | None = None, env: Mapping[str, Any] | None = None,
              input: str | None = None, check: bool = False, *,
              ctx: ActionContext) -> dict[str, Any]:
    """Run ``command``; returns ``{"stdout", "stderr", "exit_code"}``.

    ``cwd`` is confined like the file actions (default: their root); ``env`` adds
    variables to the inherited environment; ``input`` is sent to stdin; with
    ``check: true`` a non-zero exit code fails the node.
    """
    if not to_bool(ctx, "shell.run", "settings.shell.enabled",
                   ctx.section("shell").get("enabled", False)):
        raise fail(ctx, "shell.run", "running programs is disabled for this workflow",
                   hint=_DISABLED_HINT)
    argv = _argv(ctx, command)
    timeout = to_number(ctx, "shell.run", "timeout_seconds", timeout_seconds, minimum=0.001)
    workdir = confine(ctx, "shell.run", cwd, name="cwd") if cwd is not None else files_root(ctx)
    if env is not None and not isinstance(env, Mapping):
        raise fail(ctx, "shell.run", f"env must be a mapping, got {type(env).__name__}")
    environ = {**os.environ, **{str(k): str(v) for k, v in (env or {}).items()}}
    try:
        proc = subprocess.Popen(
            argv, cwd=workdir, env=environ, text=True, start_new_session=True,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
    except FileNotFoundError:
        raise fail(ctx, "shell.run", f"program '{argv[0]}' not found",
                   hint="give the full path or check PATH") from None
    except PermissionError:
        raise fail(ctx, "shell.run", f"program '{argv[0]}' is not executable") from None
    try:
        stdout, stderr = proc.communicate(input=None if input is None else str(input),
                                          timeout=timeout)
    except subprocess.TimeoutExpired:
        stderr = _kill(proc)
        raise fail(ctx, "shell.run", f"'{argv[0]}' did not finish within {timeout:g}s",
                   retryable=True, stderr_tail=_tail(stderr)) from None
    result = {"stdout": stdout, "stderr": stderr, "exit_code": proc.returncode}
    if proc.returncode != 0 and to_bool(ctx, "shell.run", "check", check):
        raise fail(ctx, "shell.run", f"'{argv[0]}' exited with status {proc.returncode}",
                   exit_status=proc.returncode, stderr_tail=_tail(stderr))
    return result


def _check(params: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    problems = []
    shell = settings.get("shell")
    enabled = shell.get("enabled", False) if isinstance(shell, Mapping) else False
    if not isinstance(enabled, bool):
        problems.append(f"settings.shell.enabled must be true or false, not {enabled!r}")
    elif not enabled:
        problems.append("shell.run is disabled for this workflow; " + _DISABLED_HINT)
    command = params.get("command")
    if isinstance(command, str) and not is_template(command):
        problems.append("command must be an argument list, not a shell string")
    return problems


shell_run.__tea_validate__ = _check  # type: ignore[attr-defined]

ACTIONS: dict[str, Action] = {"shell.run": shell_run}
