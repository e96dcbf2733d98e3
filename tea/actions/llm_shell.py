"""``llm.call`` with ``provider: shell``: the answer of a command-line LLM tool.

As in the reference, ``shell_provider`` names a tool configuration; the
built-in ones run ``claude``, ``codex``, ``gemini``, ``qwen``, ``opencode`` and
``agent`` (Cursor), and ``settings.shell_providers`` / ``settings.llm.shell_providers``
add or replace configurations (``command``, ``args``, ``stdin_mode``,
``timeout``, ``env``). The conversation becomes one text (system and assistant
turns prefixed ``System:`` / ``Assistant:``), passed where an argument is
``{prompt}``, else on stdin (``stdin_mode: pipe``) or in a temporary file named
by ``{input_file}`` (``stdin_mode: file``). The program runs from an argument
list, never a shell, in its own process group, killed whole on timeout. The
result is ``{content, usage, model, provider, shell_provider}`` with
``content`` the tool's stdout, stripped; CLIs report no token counts, so
``usage`` is empty as in the reference.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tea.actions._common import ActionContext, fail, to_number

__all__ = ["DEFAULT_SHELL_PROVIDERS", "prompt_text", "run_shell_provider", "shell_providers"]

_LONG = 108000  # the reference's default: 1800 minutes
DEFAULT_SHELL_PROVIDERS: Mapping[str, Mapping[str, Any]] = {
    "claude": {"command": "claude", "args": ["-p", "{prompt}", "--dangerously-skip-permissions",
                                             "--no-session-persistence"], "timeout": _LONG},
    "codex": {"command": "codex", "args": ["--yolo", "exec", "-c", "model=gpt-5.5", "-c",
                                           "model_reasoning_effort=xhigh", "-"],
              "stdin_mode": "pipe", "timeout": _LONG},
    "gemini": {"command": "gemini", "args": ["prompt"], "stdin_mode": "pipe", "timeout": _LONG},
    "qwen": {"command": "qwen", "args": [], "stdin_mode": "pipe", "timeout": _LONG},
    "opencode": {"command": "opencode", "args": ["-p", "{prompt}", "-q"], "timeout": _LONG},
    "cursor": {"command": "agent", "args": ["-p", "{prompt}", "--output-format", "text"],
               "timeout": _LONG},
}
"""The reference's built-in tool configurations (version 0.9.105)."""

_INSTALL = {
    "claude": "install Claude Code: npm install -g @anthropic-ai/claude-code",
    "codex": "install the Codex CLI: npm install -g @openai/codex",
    "gemini": "install the Gemini CLI: npm install -g @google/gemini-cli",
    "qwen": "install Qwen Code: npm install -g @qwen-code/qwen-code",
    "opencode": "install OpenCode: npm install -g opencode-ai",
    "agent": "install the Cursor CLI: curl https://cursor.com/install -fsS | bash",
}
_MAX_ARG = 100_000  # a longer prompt goes to stdin, as in the reference (argv limits)
_TAIL = 2000
_ENV_VAR = re.compile(r"\$\{([^}]+)\}")


@dataclass(frozen=True)
class _Tool:
    name: str
    command: str
    args: list[str]
    stdin_mode: str
    timeout: Any
    env: dict[str, str]


def shell_providers(settings: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Every known tool configuration: the built-ins, then ``settings.shell_providers``,
    then ``settings.llm.shell_providers`` (later ones win, as in the reference)."""
    out: dict[str, Mapping[str, Any]] = dict(DEFAULT_SHELL_PROVIDERS)
    llm = settings.get("llm")
    for source in (settings.get("shell_providers"),
                   llm.get("shell_providers") if isinstance(llm, Mapping) else None):
        if isinstance(source, Mapping):
            out.update({str(k): v for k, v in source.items() if isinstance(v, Mapping)})
    return out


def prompt_text(messages: list[dict[str, Any]]) -> str:
    """The conversation as one text, the way the reference hands it to a CLI."""
    parts = []
    for message in messages:
        role, content = message.get("role", "user"), message.get("content", "")
        prefix = {"system": "System: ", "assistant": "Assistant: "}.get(role, "")
        parts.append(f"{prefix}{content}")
    return "\n\n".join(parts)


def _expand(value: str) -> str:
    return _ENV_VAR.sub(lambda m: os.environ.get(m.group(1), ""), value)


def _tool(ctx: ActionContext, name: str) -> _Tool:
    known = shell_providers(ctx.settings)
    if name not in known:
        raise fail(ctx, "llm.call", f"shell provider '{name}' is not configured "
                   f"(known: {', '.join(sorted(known))})",
                   hint="add it under settings.llm.shell_providers with command: and args:")
    config = known[name]
    args = config.get("args", [])
    if not isinstance(args, list):
        raise fail(ctx, "llm.call", f"shell provider '{name}': args must be a list, got {args!r}")
    env = config.get("env") or {}
    if not isinstance(env, Mapping):
        raise fail(ctx, "llm.call", f"shell provider '{name}': env must be a mapping")
    mode = str(config.get("stdin_mode", "pipe"))
    if mode not in ("pipe", "file"):
        raise fail(ctx, "llm.call", f"shell provider '{name}': stdin_mode must be pipe or "
                   f"file, got {mode!r}")
    return _Tool(name, _expand(str(config.get("command", name))),
                 [_expand(a) if isinstance(a, str) else str(a) for a in args], mode,
                 config.get("timeout", 300), {str(k): _expand(str(v)) for k, v in env.items()})


def _program(ctx: ActionContext, tool: _Tool) -> str:
    found = shutil.which(tool.command)
    if found is None:
        hint = _INSTALL.get(os.path.basename(tool.command),
                           f"install '{tool.command}' or set settings.llm.shell_providers."
                           f"{tool.name}.command to its path")
        raise fail(ctx, "llm.call", f"shell provider '{tool.name}' needs the program "
                   f"'{tool.command}', which is not on PATH", hint=hint)
    return found


def _argv(tool: _Tool, program: str, text: str, input_file: str | None) -> tuple[list[str], str | None]:
    """The argument list and what goes to stdin (``None``: nothing)."""
    in_args = any("{prompt}" in a for a in tool.args) and len(text) <= _MAX_ARG
    if in_args:
        return [program, *(a.replace("{prompt}", text) for a in tool.args)], None
    args = [a for a in tool.args if "{prompt}" not in a]
    if input_file is not None:
        return [program, *(a.replace("{input_file}", input_file) for a in args)], None
    return [program, *args], text


def _kill(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=5)


def _execute(ctx: ActionContext, tool: _Tool, argv: list[str], stdin: str | None,
             timeout: float) -> str:
    try:
        proc = subprocess.Popen(
            argv, env={**os.environ, **tool.env}, text=True, start_new_session=True,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
    except OSError as exc:
        raise fail(ctx, "llm.call", f"cannot start '{argv[0]}': {exc.strerror or exc}") from None
    try:
        stdout, stderr = proc.communicate(input=stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise fail(ctx, "llm.call", f"shell provider '{tool.name}' did not answer within "
                   f"{timeout:g}s", retryable=True) from None
    if proc.returncode != 0:
        raise fail(ctx, "llm.call", f"shell provider '{tool.name}' ('{tool.command}') exited "
                   f"with status {proc.returncode}: {stderr[-_TAIL:].strip()}",
                   exit_status=proc.returncode)
    return stdout


def run_shell_provider(ctx: ActionContext, name: str, messages: list[dict[str, Any]],
                       timeout: float | None, model: str | None) -> dict[str, Any]:
    """Ask the tool configured as ``name``; ``timeout`` (seconds) overrides its own."""
    tool = _tool(ctx, name)
    program = _program(ctx, tool)
    seconds = to_number(ctx, "llm.call", "timeout", tool.timeout if timeout is None else timeout,
                        minimum=0.001)
    text = prompt_text(messages)
    with contextlib.ExitStack() as stack:
        input_file = None
        if tool.stdin_mode == "file":
            handle = stack.enter_context(tempfile.NamedTemporaryFile(
                "w", suffix=".txt", prefix="tea-prompt-", encoding="utf-8"))
            handle.write(text)
            handle.flush()
            input_file = handle.name
        argv, stdin = _argv(tool, program, text, input_file)
        stdout = _execute(ctx, tool, argv, stdin, seconds)
    return {"content": stdout.strip(), "usage": {}, "model": model or tool.command,
            "provider": "shell", "shell_provider": name}
