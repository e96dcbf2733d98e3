"""Steps that run programs: ``command`` and the ``git_*`` steps.

Programs get an argument list and never a shell: a ``command`` string is split
with ``shlex`` the way a shell would split words, but quotes, ``$VAR``, pipes and
globs mean nothing more. Each program leads a process group of its own, killed
whole when the step runs out of time or is cancelled. They run only when the
mission sets ``settings.shell.enabled: true`` (running programs is a different
trust than moving data; ``git`` runs hooks and configured helpers too).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tea.mission.steps.base import Param, StepContext, StepType

__all__ = ["STEP_TYPES", "run_program", "shell_problem", "tail"]

_POLL_SECONDS = 0.02
_TAIL_LINES = 20
_TAIL_CHARS = 2000
SHELL_HINT = "add `settings: {shell: {enabled: true}}` to the mission to allow it"


def shell_problem(settings: Mapping[str, Any], step_type: str) -> str | None:
    """Why ``step_type`` may not run programs under ``settings``, or ``None``."""
    shell = settings.get("shell")
    enabled = shell.get("enabled", False) if isinstance(shell, Mapping) else False
    if enabled is True:
        return None
    return f"{step_type} runs programs, which this mission does not allow; {SHELL_HINT}"


def tail(text: str) -> str:
    """The last lines of ``text`` (what an error shows of a program's stderr)."""
    lines = text.rstrip().splitlines()[-_TAIL_LINES:]
    return "\n".join(lines)[-_TAIL_CHARS:]


def _kill(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Kill the program's whole process group; what it wrote so far."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        out, err = proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        # A descendant left the group and still holds the pipes: stop waiting for it.
        proc.kill()
        return "", ""
    return out or "", err or ""


def run_program(
    ctx: StepContext, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None,
    stdin: str | None = None,
) -> tuple[int, str, str]:
    """Run ``argv`` to its end, or kill it at the step's deadline or cancel; returns
    (exit code, stdout, stderr). Raises ``StepFailed`` when it cannot start."""
    environ = {**os.environ, **(env or {})}
    try:
        proc = subprocess.Popen(
            list(argv), cwd=cwd, env=environ, text=True, start_new_session=True,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
    except FileNotFoundError:
        raise ctx.fail(f"program '{argv[0]}' not found", retryable=False,
                       hint="give the full path or check PATH") from None
    except (PermissionError, NotADirectoryError) as exc:
        raise ctx.fail(f"program '{argv[0]}' cannot be run: {exc.strerror}", retryable=False) from None
    pending = stdin
    while True:
        remaining = ctx.remaining()
        wait = _POLL_SECONDS if remaining is None else min(_POLL_SECONDS, remaining)
        try:
            out, err = proc.communicate(input=pending, timeout=wait)
            return proc.returncode, out, err
        except subprocess.TimeoutExpired:
            pending = None  # communicate() keeps feeding what it was given first
        remaining = ctx.remaining()
        if ctx.stopped() or (remaining is not None and remaining <= 0):
            _, err = _kill(proc)
            error = ctx.out_of_time(f"'{argv[0]}' (pid {proc.pid})")
            if err:
                error.stderr_tail = ctx.redact(tail(err))
            raise error


def _argv(ctx: StepContext, command: Any, args: list[Any] | None) -> list[str]:
    if isinstance(command, str):
        try:
            words = shlex.split(command)
        except ValueError as exc:
            raise ctx.fail(f"command cannot be split into words: {exc}", retryable=False) from None
    else:
        words = list(command)
    words += [str(a) for a in args or []]
    if not words:
        raise ctx.fail("command is empty", retryable=False)
    return words


def _env(ctx: StepContext, env: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k): "" if v is None else str(v) for k, v in (env or {}).items()}


def _cwd(ctx: StepContext, cwd: str | None) -> Path:
    return ctx.confine(cwd, "cwd") if cwd is not None else ctx.root


def run_command(ctx: StepContext, p: dict[str, Any]) -> dict[str, Any]:
    """Run one program; fails unless its exit code is in ``ok_exit_codes``."""
    argv = _argv(ctx, p["command"], p["args"])
    code, out, err = run_program(ctx, argv, cwd=_cwd(ctx, p["cwd"]), env=_env(ctx, p["env"]),
                                 stdin=p["input"])
    allowed = [int(c) for c in p["ok_exit_codes"]]
    if code not in allowed:
        raise ctx.fail(f"'{argv[0]}' exited with status {code}", exit_status=code,
                       stderr_tail=tail(err) or None)
    return {"stdout": out, "stderr": err, "exit_code": code}


def _git(ctx: StepContext, repo: str, *args: str, ok: tuple[int, ...] = (0,),
         env: Mapping[str, str] | None = None) -> str:
    argv = ["git", "-C", str(ctx.confine(repo, "repo")), *args]
    code, out, err = run_program(ctx, argv, cwd=ctx.root, env={"GIT_TERMINAL_PROMPT": "0", **(env or {})})
    if code not in ok:
        raise ctx.fail(f"git {args[0]} exited with status {code}", exit_status=code,
                       stderr_tail=tail(err) or None)
    return out


def git_status(ctx: StepContext, p: dict[str, Any]) -> dict[str, Any]:
    """The working tree's state, from ``git status --porcelain=v1 --branch``."""
    text = _git(ctx, p["repo"], "status", "--porcelain=v1", "--branch", "--untracked-files=all")
    lines = text.splitlines()
    branch = None
    if lines and lines[0].startswith("## "):
        branch = lines.pop(0)[3:].split("...", 1)[0]
        if branch.startswith("No commits yet on "):
            branch = branch[len("No commits yet on "):]
    entries = [{"status": line[:2].strip(), "path": line[3:]} for line in lines if line]
    return {"branch": branch, "clean": not entries, "entries": entries}


def git_diff(ctx: StepContext, p: dict[str, Any]) -> dict[str, Any]:
    """``git diff`` of the working tree (or the index with ``staged``, or against ``ref``)."""
    base = ["--cached"] if p["staged"] else []
    if p["ref"]:
        base.append(str(p["ref"]))
    paths = ["--", *p["paths"]] if p["paths"] else []
    diff = _git(ctx, p["repo"], "diff", "--no-color", "--no-ext-diff", *base, *paths)
    names = _git(ctx, p["repo"], "diff", "--name-only", *base, *paths)
    return {"diff": diff, "files": [n for n in names.splitlines() if n]}


def git_commit(ctx: StepContext, p: dict[str, Any]) -> dict[str, Any]:
    """Stage ``add`` (paths, or every change with ``all``) and commit with ``message``."""
    repo = p["repo"]
    if p["all"]:
        _git(ctx, repo, "add", "--all")
    elif p["add"]:
        _git(ctx, repo, "add", "--", *p["add"])
    identity: dict[str, str] = {}
    if p["author_name"]:
        identity |= {"GIT_AUTHOR_NAME": p["author_name"], "GIT_COMMITTER_NAME": p["author_name"]}
    if p["author_email"]:
        identity |= {"GIT_AUTHOR_EMAIL": p["author_email"], "GIT_COMMITTER_EMAIL": p["author_email"]}
    extra = ["--allow-empty"] if p["allow_empty"] else []
    _git(ctx, repo, "commit", "--quiet", "-m", p["message"], *extra, env=identity)
    sha = _git(ctx, repo, "rev-parse", "HEAD").strip()
    return {"commit": sha, "message": p["message"]}


def _needs_shell(step_type: str) -> Any:
    def check(params: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
        problem = shell_problem(settings, step_type)
        return [problem] if problem else []
    return check


_REPO = Param("repo", default=".", doc="the repository's directory, under the files root")

STEP_TYPES = (
    StepType(
        "command", "programs", "run one program with arguments (no shell)",
        (
            Param("command", "command", required=True,
                  doc="an argument list, or a string split into words with shlex (no shell)"),
            Param("args", "list", default=None, doc="more arguments, appended"),
            Param("cwd", doc="working directory under the files root (default: the root)"),
            Param("env", "mapping", doc="variables added to the inherited environment"),
            Param("input", doc="text sent to the program's stdin"),
            Param("ok_exit_codes", "list", default=[0], doc="exit codes that count as success"),
        ),
        {"stdout": "what the program wrote to stdout", "stderr": "what it wrote to stderr",
         "exit_code": "its exit status"},
        run_command, _needs_shell("command"), needs_shell=True,
    ),
    StepType(
        "git_status", "git", "the repository's branch and changed files", (_REPO,),
        {"branch": "the current branch", "clean": "true when nothing changed",
         "entries": "[{status, path}] from git status --porcelain"},
        git_status, _needs_shell("git_status"), needs_shell=True,
    ),
    StepType(
        "git_diff", "git", "the diff of the working tree, the index or a ref",
        (_REPO, Param("staged", "bool", default=False, doc="diff the index (git diff --cached)"),
         Param("ref", doc="compare with this commit or branch"),
         Param("paths", "strings", default=[], doc="limit to these paths")),
        {"diff": "the unified diff text", "files": "the paths that differ"},
        git_diff, _needs_shell("git_diff"), needs_shell=True,
    ),
    StepType(
        "git_commit", "git", "stage files and commit them",
        (_REPO, Param("message", required=True, doc="the commit message"),
         Param("add", "strings", default=[], doc="paths to stage first"),
         Param("all", "bool", default=False, doc="stage every change (git add --all)"),
         Param("allow_empty", "bool", default=False, doc="commit even when nothing changed"),
         Param("author_name", doc="author and committer name (default: git's configuration)"),
         Param("author_email", doc="author and committer e-mail")),
        {"commit": "the new commit's hash", "message": "the commit message"},
        git_commit, _needs_shell("git_commit"), needs_shell=True,
    ),
)
