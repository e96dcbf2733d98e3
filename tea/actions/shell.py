"""``shell.run``: run one program with an argument list, never through a shell.

Disabled unless the workflow sets ``settings.shell.enabled: true``, because a
workflow that runs programs is a different kind of trust than one that only
transforms data. The command is a list (``[git, status, --short]``); a string is
refused rather than split, so no value from state can inject shell syntax.

The program runs in its own session and process group with a mark in its
environment; on timeout, on an exception while waiting (Ctrl-C in a script), and
for commands still running when the interpreter exits (tea stopped by a signal),
``executors._sync.kill_tree`` kills the group, every descendant, and whatever
carries the mark: a program that left with ``setsid`` and lost its parent too.
Its pipes are then read only for a moment: a holder that escaped every net
cannot keep the node waiting.
"""

from __future__ import annotations

import atexit
import os
import secrets
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from executors._sync import MARK_VARIABLE, at_hard_stop, kill_tree
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


_DRAIN_SECONDS = 1.0
_running: dict[int, str] = {}
"""pid → mark of every command running now, for the exit hook."""
_running_lock = threading.Lock()


def _kill(proc: subprocess.Popen[str], mark: str) -> str:
    """Kill the program and all it started; what it wrote to stderr so far."""
    kill_tree([proc.pid], mark=mark)
    try:
        return proc.communicate(timeout=_DRAIN_SECONDS)[1] or ""
    except subprocess.TimeoutExpired:
        # Something out of reach (another user's setuid program) holds the pipes: close our ends.
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.kill()
        proc.wait()
        return ""


@at_hard_stop
@atexit.register
def _kill_running() -> None:
    """At interpreter exit (a run stopped by a signal leaves its nodes behind): kill
    every command still running, and what it started."""
    with _running_lock:
        running = dict(_running)
    for pid, mark in running.items():
        kill_tree([pid], mark=mark)


def _start(argv: list[str], workdir: Path, environ: dict[str, str], stdin: bool,
           mark: str) -> subprocess.Popen[str]:
    """Start the program in a new session, registered for the exit hook."""
    proc = subprocess.Popen(
        argv, cwd=workdir, env=environ, text=True, start_new_session=True,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    with _running_lock:
        _running[proc.pid] = mark
    return proc


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
    mark = secrets.token_hex(16)
    # Appended to an outer mark: a tea run inside a command is still found by the outer one.
    environ[MARK_VARIABLE] = ":".join(filter(None, (environ.get(MARK_VARIABLE), mark)))
    try:
        proc = _start(argv, workdir, environ, input is not None, mark)
    except FileNotFoundError:
        raise fail(ctx, "shell.run", f"program '{argv[0]}' not found",
                   hint="give the full path or check PATH") from None
    except PermissionError:
        raise fail(ctx, "shell.run", f"program '{argv[0]}' is not executable") from None
    try:
        stdout, stderr = proc.communicate(input=None if input is None else str(input),
                                          timeout=timeout)
    except subprocess.TimeoutExpired:
        stderr = _kill(proc, mark)
        raise fail(ctx, "shell.run", f"'{argv[0]}' did not finish within {timeout:g}s",
                   retryable=True, stderr_tail=_tail(stderr)) from None
    except BaseException:
        _kill(proc, mark)
        raise
    finally:
        with _running_lock:
            _running.pop(proc.pid, None)
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
