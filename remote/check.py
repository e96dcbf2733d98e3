"""``tea hosts check``: can each host of a workflow's remote settings take branches?

``check_workflow(workflow)`` (or ``check_hosts(settings)``) connects to every host at
once, as a run would (OpenSSH's defaults, ``~/.ssh/config``, the settings' key and
known hosts), and asks it one shell round trip (``remote.scripts.probe_script``),
leaving nothing behind but ``workdir`` itself. One ``HostReport`` per host::

    reachable         the connection was made (or: why not)
    key_trusted       its host key is in the known hosts (None: not reached)
    arch              ``uname -m``
    binary_present    the binary for this build is in its cache (False: it will be
                      sent on the first run), or the ``command`` runs there
    workdir_writable  a private run directory can be made under ``workdir``
    slots, rtt_ms     its slots; a trivial command's round trip
    ok, error, hint   usable, or the first reason it is not and what to do

``render_text`` and ``render_json`` print them; a front end exits 0 when every report
is ``ok``, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import asyncssh

import tea
from remote.config import RemoteSettings, no_location
from remote.errors import HostDown, RemoteSetupError
from remote.local_files import Deployment, check_key_files, resolve_deployment
from remote.scripts import probe_script
from remote.ssh import connect
from tea.errors import Location, SchemaError

__all__ = ["HostReport", "check_hosts", "check_workflow", "remote_settings", "render_json", "render_text"]


@dataclass(frozen=True, slots=True)
class HostReport:
    """What ``tea hosts check`` found out about one host."""

    host: str
    ok: bool
    error: str | None = None
    hint: str | None = None
    reachable: bool = False
    key_trusted: bool | None = None
    arch: str | None = None
    binary_present: bool | None = None
    workdir_writable: bool | None = None
    slots: int = 0
    rtt_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def remote_settings(workflow: tea.Workflow) -> list[RemoteSettings]:
    """Every distinct remote settings of ``workflow``: its remote fan-outs', else its
    ``settings.parallel.remote`` block. Raises ``SchemaError`` when it has none."""
    found: list[RemoteSettings] = []
    for fan in workflow.graph.fanouts():
        options = fan.config.options
        if isinstance(options, RemoteSettings) and options not in found:
            found.append(options)
    if not found:  # no fan-out runs remotely (yet): the settings block, if there is one
        parallel = (workflow.graph.settings or {}).get("parallel")
        block = parallel.get("remote") if isinstance(parallel, Mapping) else None
        if block is not None:
            path = workflow.path

            def locate(obj: Any, key: str | int | None = None) -> Location:
                return Location(str(path)) if path is not None else no_location(obj, key)

            found.append(RemoteSettings.parse(block, locate))
    if not found:
        where = Location(str(workflow.path)) if workflow.path is not None else None
        raise SchemaError(f"{workflow.name} has no remote hosts to check", where,
                          path="settings.parallel.remote.hosts",
                          hint="add settings.parallel.remote.hosts, or give them: --hosts user@host,...")
    return found


def check_workflow(workflow: tea.Workflow) -> list[HostReport]:
    """``check_hosts`` on every remote settings of ``workflow``, each host once."""
    return check_hosts(remote_settings(workflow))


def check_hosts(settings: RemoteSettings | Iterable[RemoteSettings]) -> list[HostReport]:
    """Check every host of ``settings`` at once; one report per host, in order."""
    groups = [settings] if isinstance(settings, RemoteSettings) else list(settings)
    return asyncio.run(_check_all(groups))


async def _check_all(groups: list[RemoteSettings]) -> list[HostReport]:
    seen: set[str] = set()
    jobs = []
    for settings in groups:
        try:
            check_key_files(settings)
            deployment: Deployment | RemoteSetupError = resolve_deployment(settings)
        except RemoteSetupError as exc:
            deployment = exc
        for spec in settings.hosts:
            if spec.name not in seen:
                seen.add(spec.name)
                jobs.append(_check_host(spec, settings, deployment))
    return list(await asyncio.gather(*jobs))


async def _check_host(spec: Any, settings: RemoteSettings, deployment: Deployment | RemoteSetupError) -> HostReport:
    base = HostReport(spec.name, ok=False, slots=spec.slots)
    if isinstance(deployment, RemoteSetupError):
        return _with(base, error=deployment.message, hint=deployment.hint)
    try:
        conn = await connect(spec, settings)
    except RemoteSetupError as exc:
        untrusted = isinstance(exc.__cause__, asyncssh.HostKeyNotVerifiable)
        return _with(base, reachable=True, key_trusted=not untrusted, error=exc.message, hint=exc.hint)
    except HostDown as exc:
        return _with(base, error=exc.message)
    try:
        return await _probe(conn, base, settings, deployment)
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        return _with(base, reachable=True, key_trusted=True, error=f"the host stopped answering: {exc}")
    finally:
        conn.close()


async def _probe(conn: asyncssh.SSHClientConnection, base: HostReport, settings: RemoteSettings,
                 deployment: Deployment) -> HostReport:
    report = _with(base, reachable=True, key_trusted=True)
    started = time.perf_counter()
    await asyncio.wait_for(conn.run(":", check=False), settings.connect_timeout)
    report = _with(report, rtt_ms=round((time.perf_counter() - started) * 1000.0, 1))
    cache = None if deployment.command else settings.cache_dir
    script = probe_script(settings.workdir, cache, deployment.remote_names(), deployment.command)
    done = await asyncio.wait_for(conn.run(script, check=False), max(30.0, settings.connect_timeout * 3))
    facts = dict(line.split("=", 1) for line in str(done.stdout or "").splitlines() if "=" in line)
    report = _with(report, arch=facts.get("arch") or None, workdir_writable=facts.get("writable") == "1")
    try:
        binary = deployment.binary_for(facts.get("arch", ""), base.host)
    except RemoteSetupError as exc:
        return _with(report, error=exc.message, hint=exc.hint)
    if binary is not None:
        report = _with(report, binary_present=facts.get(f"sha:{binary.remote_name}") == binary.sha256)
    else:
        report = _with(report, binary_present=facts.get("command") == "0")
        if not report.binary_present:
            words = " ".join(deployment.command)
            return _with(report, error=f"{words} --version failed there: {facts.get('version') or 'no output'}")
    if not report.workdir_writable:
        return _with(report, error=f"cannot create a private directory under {settings.workdir}")
    return _with(report, ok=True)


def _with(report: HostReport, **changes: Any) -> HostReport:
    return HostReport(**{**asdict(report), **changes})


def render_json(reports: Iterable[HostReport]) -> str:
    """The reports as a JSON list of objects (``host``, ``ok``, ``error`` and the rest)."""
    return json.dumps([r.to_dict() for r in reports], indent=2)


def render_text(reports: Iterable[HostReport]) -> str:
    """A table, one host a line, and how many are usable."""
    rows = list(reports)
    header = ("HOST", "OK", "ARCH", "KEY", "BINARY", "WORKDIR", "SLOTS", "RTT")
    table = [header] + [
        (r.host, _yes(r.ok), r.arch or "-", _yes(r.key_trusted),
         {True: "cached", False: "to send", None: "-"}[r.binary_present], _yes(r.workdir_writable),
         str(r.slots), f"{r.rtt_ms:g} ms" if r.rtt_ms is not None else "-")
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table]
    for report in rows:
        if report.error:
            lines.append(f"{report.host}: {report.error}")
        if report.hint:
            lines.append(f"  hint: {report.hint}")
    usable = sum(r.ok for r in rows)
    lines.append(f"{usable} of {len(rows)} host{'s' if len(rows) != 1 else ''} usable")
    return "\n".join(lines)


def _yes(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")
