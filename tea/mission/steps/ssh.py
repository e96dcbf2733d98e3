"""``ssh_execute``: run a command on an SSH host (asyncssh), host keys always verified.

Connection settings mean what they mean for the remote strategy
(``settings.parallel.remote``), which gives their defaults: ``known_hosts``
(default ``~/.ssh/known_hosts``; an unknown or changed host key fails the step,
there is no way to turn checking off), ``identity_file`` (default: ssh's keys and
agent), ``connect_timeout``. A command list is quoted word by word with
``shlex.quote`` for the remote shell; a string is sent as written (it is the
remote login shell that runs it). Like ``command``, it needs
``settings.shell.enabled: true``.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tea.mission.steps.base import Param, StepContext, StepType
from tea.mission.steps.programs import shell_problem, tail

__all__ = ["STEP_TYPES", "parse_target", "remote_command"]

_POLL_SECONDS = 0.05


def parse_target(target: str, username: str | None, port: int | None) -> tuple[str | None, str, int]:
    """(user, host, port) from ``user@host:port`` (``[v6]:port`` too) and the explicit values."""
    user, _, rest = target.rpartition("@")
    host, found_port = rest, None
    if rest.startswith("["):
        host, _, after = rest[1:].partition("]")
        found_port = after[1:] if after.startswith(":") else None
    elif rest.count(":") == 1:
        host, found_port = rest.split(":")
    number = port if port is not None else int(found_port) if found_port else 22
    return username or user or None, host, number


def remote_command(command: Any) -> str:
    """The command line the remote shell gets: a list quoted word by word, a string as is."""
    if isinstance(command, str):
        return command
    return shlex.join(str(word) for word in command)


def _defaults(ctx: StepContext) -> Mapping[str, Any]:
    parallel = ctx.section("parallel")
    remote = parallel.get("remote") if isinstance(parallel, Mapping) else None
    return remote if isinstance(remote, Mapping) else {}


async def _run(ctx: StepContext, p: dict[str, Any], line: str) -> tuple[int, str, str]:
    import asyncio

    import asyncssh

    defaults = _defaults(ctx)
    user, host, port = parse_target(p["host"], p["username"], p["port"])
    known_hosts = os.path.expanduser(str(p["known_hosts"] or defaults.get("known_hosts") or "~/.ssh/known_hosts"))
    identity = p["identity_file"] or defaults.get("identity_file")
    if not Path(known_hosts).is_file():
        raise ctx.fail(f"known_hosts file '{known_hosts}' does not exist", retryable=False,
                       hint=f"trust the host once: ssh-keyscan -p {port} {host} >> {known_hosts}")
    options: dict[str, Any] = {"known_hosts": known_hosts, "username": user, "port": port,
                               "connect_timeout": float(p["connect_timeout"] or defaults.get("connect_timeout", 10))}
    if identity:
        options |= {"client_keys": [os.path.expanduser(str(identity))], "agent_path": None}
    async with asyncssh.connect(host, **options) as conn:
        process = await conn.create_process(line, input=p["input"], encoding="utf-8")
        waiting = asyncio.ensure_future(process.wait(check=False))
        while not waiting.done():
            remaining = ctx.remaining()
            if ctx.stopped() or (remaining is not None and remaining <= 0):
                process.send_signal("KILL")
                process.close()
                waiting.cancel()
                raise ctx.out_of_time(f"the command on {host}")
            await asyncio.wait({waiting}, timeout=_POLL_SECONDS)
        result = waiting.result()
        return int(result.exit_status or 0), str(result.stdout or ""), str(result.stderr or "")


def ssh_execute(ctx: StepContext, p: dict[str, Any]) -> dict[str, Any]:
    """Run ``command`` on ``host`` and wait for its exit status."""
    import asyncio

    import asyncssh

    line = remote_command(p["command"])
    try:
        code, out, err = asyncio.run(_run(ctx, p, line))
    except asyncssh.HostKeyNotVerifiable as exc:
        raise ctx.fail(f"the host key of {p['host']} is not trusted: {exc.reason}", retryable=False,
                       hint="check the fingerprint with the host's owner, then add it to known_hosts") from None
    except asyncssh.PermissionDenied as exc:
        raise ctx.fail(f"{p['host']} refused the login: {exc.reason}", retryable=False) from None
    except (asyncssh.Error, OSError, TimeoutError) as exc:
        raise ctx.fail(f"cannot run the command on {p['host']}: {type(exc).__name__}: {exc}") from None
    if code not in [int(c) for c in p["ok_exit_codes"]]:
        raise ctx.fail(f"the command on {p['host']} exited with status {code}", exit_status=code,
                       stderr_tail=tail(err) or None, host=p["host"])
    return {"stdout": out, "stderr": err, "exit_code": code, "host": p["host"]}


def _check(params: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    problem = shell_problem(settings, "ssh_execute")
    return [problem] if problem else []


STEP_TYPES = (
    StepType(
        "ssh_execute", "network", "run a command on an SSH host (host key verified)",
        (
            Param("host", required=True, doc="user@host:port, host, or [v6 address]:port"),
            Param("command", "command", required=True,
                  doc="an argument list (quoted for the remote shell) or a command line"),
            Param("username", doc="the login (default: from host, else ssh's default)"),
            Param("port", "int", minimum=1, doc="the port (default: from host, else 22)"),
            Param("identity_file", doc="the private key (default: settings.parallel.remote's, else ssh's)"),
            Param("known_hosts", doc="where host keys are checked (default: ~/.ssh/known_hosts)"),
            Param("connect_timeout", "number", minimum=0.001, doc="seconds to connect and log in (10)"),
            Param("input", doc="text sent to the command's stdin"),
            Param("ok_exit_codes", "list", default=[0], doc="exit codes that count as success"),
        ),
        {"stdout": "the command's stdout", "stderr": "its stderr", "exit_code": "its exit status",
         "host": "the host it ran on"},
        ssh_execute, _check, needs_shell=True,
    ),
)
