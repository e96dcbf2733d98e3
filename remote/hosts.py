"""Host lists and the host pool: who can run a branch now, and who is down and why.

A host is written ``[user@]host[:port]`` (``[v6addr]:port`` for IPv6) or a name
from the user's ``~/.ssh/config`` (asyncssh and ssh resolve it), optionally as a
mapping ``{host: ..., slots: N}``. ``HostPool`` hands out slots: the least busy
host whose breaker lets calls through, never one the branch was lost on, and
preferably not one it already failed on. Each host has a pybreaker breaker that
counts host faults (lost connections, refused or timed-out connects, dead
workers), not branch errors.

Not thread-safe: the remote executor uses it from its event-loop thread only.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

import pybreaker

from executors.base import BreakerPolicy
from tea.errors import SchemaError
from tea.yamlsrc import location_of

__all__ = ["HostPool", "HostSpec", "HostState", "parse_host", "parse_hosts"]

_HOST_RE = re.compile(
    r"""^(?:(?P<user>[^@\s/]+)@)?
        (?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9._-]+))
        (?::(?P<port>\d{1,5}))?$""",
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class HostSpec:
    """One host as the user wrote it; ``user``/``port`` ``None`` defer to ``~/.ssh/config``."""

    hostname: str
    user: str | None = None
    port: int | None = None
    slots: int = 4

    @property
    def name(self) -> str:
        """The canonical ``user@host:port`` (parts the user left out stay out)."""
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        text = f"{self.user}@{host}" if self.user else host
        return f"{text}:{self.port}" if self.port else text


def parse_host(text: str, slots: int = 4, where: Any = None) -> HostSpec:
    """Parse ``[user@]host[:port]``; raises ``SchemaError`` on anything else."""
    match = _HOST_RE.match(text.strip()) if isinstance(text, str) else None
    port = int(match.group("port")) if match and match.group("port") else None
    if match is None or (port is not None and not 0 < port < 65536):
        raise SchemaError(
            f"bad host {text!r} in settings.parallel.remote.hosts",
            location_of(where),
            hint="write user@host:port, host, or a name from ~/.ssh/config",
        )
    hostname = match.group("v6") or match.group("name")
    return HostSpec(hostname=hostname, user=match.group("user"), port=port, slots=slots)


def parse_hosts(value: Any, default_slots: int = 4) -> tuple[HostSpec, ...]:
    """Parse the ``hosts`` list (strings or ``{host, slots}`` mappings); no duplicates."""
    if not isinstance(value, list) or not value:
        raise SchemaError(
            "settings.parallel.remote.hosts must be a non-empty list of hosts",
            location_of(value),
            hint="hosts: [user@server1, {host: user@server2:2222, slots: 8}]",
        )
    specs: list[HostSpec] = []
    for index, item in enumerate(value):
        where = location_of(value, index)
        if isinstance(item, dict):
            slots = item.get("slots", default_slots)
            if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
                raise SchemaError(f"slots of host {item.get('host')!r} must be >= 1", where)
            unknown = set(item) - {"host", "slots"}
            if unknown or "host" not in item:
                raise SchemaError(
                    "a host mapping takes 'host' and optionally 'slots'",
                    where,
                    hint="{host: user@server:2222, slots: 4}",
                )
            spec = parse_host(item["host"], slots, item)
        else:
            spec = parse_host(item, default_slots, value)
        if any(s.name == spec.name for s in specs):
            raise SchemaError(f"host {spec.name} is listed twice", where)
        specs.append(spec)
    return tuple(specs)


class _HostFault(Exception):
    """What a host breaker is told about a failed host (never escapes this module)."""


@dataclass(eq=False)
class HostState:
    """A host's place in the pool: its slots in use, breaker and last fault."""

    spec: HostSpec
    breaker: pybreaker.CircuitBreaker
    reset_timeout: float
    running: int = 0
    last_error: str | None = None
    opened_at: float | None = None
    fatal: bool = False
    counts: dict[str, int] = field(default_factory=lambda: {"done": 0, "failed": 0})

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def breaker_state(self) -> str:
        return str(self.breaker.current_state)

    def usable(self, now: float) -> bool:
        """Closed breaker, or open long enough ago for one trial (half-open, one at a time)."""
        if self.fatal:
            return False
        if self.opened_at is None:
            return True
        return now - self.opened_at >= self.reset_timeout and self.running == 0


class HostPool:
    """Per-host slots and breakers, and the choice of a host for each attempt."""

    def __init__(
        self,
        hosts: Iterable[HostSpec],
        breaker: BreakerPolicy | None = None,
    ) -> None:
        policy = breaker or BreakerPolicy(failure_threshold=3, reset_timeout_seconds=30.0)
        self.hosts = [
            HostState(
                spec,
                pybreaker.CircuitBreaker(
                    fail_max=policy.failure_threshold,
                    reset_timeout=policy.reset_timeout_seconds,
                    name=spec.name,
                ),
                policy.reset_timeout_seconds,
            )
            for spec in hosts
        ]
        self._changed = asyncio.Condition()

    def by_name(self, name: str) -> HostState:
        return next(h for h in self.hosts if h.name == name)

    def _pick(self, avoid: set[str], forbid: set[str]) -> HostState | None:
        now = time.monotonic()
        free = [
            h
            for h in self.hosts
            if h.name not in forbid and h.running < h.spec.slots and h.usable(now)
        ]
        # Prefer hosts the branch has not failed on, then the least loaded (by fraction).
        free.sort(key=lambda h: (h.name in avoid, h.running / h.spec.slots))
        return free[0] if free else None

    def _possible(self, forbid: set[str]) -> bool:
        """Whether some host could still take the branch (now or once a slot frees up)."""
        now = time.monotonic()
        return any(
            h.name not in forbid and (h.usable(now) or (h.running > 0 and not h.fatal))
            for h in self.hosts
        )

    async def acquire(self, avoid: set[str], forbid: set[str]) -> HostState | None:
        """A host with a free slot, waiting for one; ``None`` when no host can take it."""
        async with self._changed:
            while True:
                host = self._pick(avoid, forbid)
                if host is not None:
                    host.running += 1
                    return host
                if not self._possible(forbid):
                    return None
                await self._changed.wait()

    async def release(self, host: HostState, fault: str | None = None) -> None:
        """Give the slot back, telling the breaker how the host behaved."""
        host.running -= 1
        if fault is None:
            self.record_success(host)
        async with self._changed:
            self._changed.notify_all()

    def record_success(self, host: HostState) -> None:
        if host.opened_at is not None or host.breaker.fail_counter:
            _tell(host.breaker, None)
        if host.breaker.current_state == pybreaker.STATE_CLOSED:
            host.opened_at = None

    async def record_fault(self, host: HostState, reason: str, *, fatal: bool = False) -> None:
        """Count one host fault (once per lost connection, not per branch on it)."""
        host.last_error = reason
        host.fatal = host.fatal or fatal
        _tell(host.breaker, _HostFault(reason))
        if host.breaker.current_state == pybreaker.STATE_OPEN:
            host.opened_at = time.monotonic()
        async with self._changed:
            self._changed.notify_all()

    def down_report(self, forbid: Collection[str] = ()) -> str:
        """One line per host saying why it cannot take work."""
        lines = []
        for h in self.hosts:
            down = h.fatal or h.opened_at is not None or h.name in forbid
            reason = (h.last_error or "unavailable") if down else "no free slot"
            lines.append(f"  {h.name}: {reason}")
        return "\n".join(lines)


def _tell(breaker: pybreaker.CircuitBreaker, fault: BaseException | None) -> None:
    """Feed one outcome to a pybreaker breaker through its public ``call``."""

    def outcome() -> None:
        if fault is not None:
            raise fault

    with contextlib.suppress(_HostFault, pybreaker.CircuitBreakerError):
        breaker.call(outcome)
