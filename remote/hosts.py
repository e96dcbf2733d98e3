"""The host pool: who can run a branch now, and who is down and why.

``HostPool.acquire`` hands out a slot as a ``Lease``: on the least busy host whose
breaker lets attempts through, never one the branch was lost on, and preferably
not one it already failed on. Each host has a breaker (``executors.breakers``,
the same adapter the branch targets use) that counts host faults (lost
connections, refused or timed-out connects, dead workers), once per loss, not
branch errors. ``release`` says how the host behaved::

    release(lease, healthy=True)    the host answered (whatever the branch did)
    release(lease, healthy=False)   a host fault, first seen by this attempt: counted
    release(lease, healthy=None)    nothing learnt (stopped, cancelled, a loss that
                                    another attempt already counted)

Not thread-safe: the remote executor uses it from its event-loop thread only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from executors.base import BreakerPolicy
from executors.breakers import Breaker, Ticket
from remote.config import HostSpec

__all__ = ["HostPool", "HostState", "Lease"]

_DEFAULT_BREAKER = BreakerPolicy(failure_threshold=3, reset_timeout_seconds=30.0)


@dataclass(eq=False)
class HostState:
    """A host's place in the pool: its slots in use, breaker and last fault."""

    spec: HostSpec
    breaker: Breaker
    running: int = 0
    last_error: str | None = None
    permanent: bool = False
    """Out for the rest of the run (a problem that will not go away by itself)."""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def breaker_state(self) -> str:
        return self.breaker.state

    def usable(self) -> bool:
        """Whether an attempt may start here now (slots aside)."""
        return not self.permanent and self.breaker.available()


@dataclass(frozen=True, slots=True)
class Lease:
    """One slot of one host, held by one attempt until ``HostPool.release``."""

    host: HostState
    ticket: Ticket


class HostPool:
    """Per-host slots and breakers, and the choice of a host for each attempt."""

    def __init__(self, hosts: Iterable[HostSpec], breaker: BreakerPolicy | None = None) -> None:
        policy = breaker or _DEFAULT_BREAKER
        self.hosts = [HostState(spec, Breaker(spec.name, policy)) for spec in hosts]
        self._changed = asyncio.Condition()

    def _pick(self, avoid: Collection[str], forbid: Collection[str]) -> HostState | None:
        free = [h for h in self.hosts if h.name not in forbid and h.running < h.spec.slots and h.usable()]
        # Prefer hosts the branch has not failed on, then the least loaded (by fraction).
        free.sort(key=lambda h: (h.name in avoid, h.running / h.spec.slots))
        return free[0] if free else None

    def _possible(self, forbid: Collection[str]) -> bool:
        """Whether some host could still take the branch (now or once a slot frees up)."""
        return any(
            h.name not in forbid and not h.permanent and (h.usable() or h.running > 0) for h in self.hosts
        )

    async def acquire(self, avoid: Collection[str], forbid: Collection[str]) -> Lease | None:
        """A slot on a host, waiting for one; ``None`` when no host can take the branch."""
        async with self._changed:
            while True:
                host = self._pick(avoid, forbid)
                ticket = host.breaker.admit() if host is not None else None
                if host is not None and ticket is not None:
                    host.running += 1
                    return Lease(host, ticket)
                if not self._possible(forbid):
                    return None
                await self._changed.wait()

    async def release(self, lease: Lease, healthy: bool | None) -> None:
        """Give the slot back, telling the host's breaker how the host behaved."""
        lease.host.running -= 1
        lease.host.breaker.record(lease.ticket, healthy)
        async with self._changed:
            self._changed.notify_all()

    async def mark_down(self, host: HostState, reason: str, *, permanent: bool = False) -> None:
        """Note why ``host`` failed (for ``down_report``); ``permanent``: never use it again."""
        host.last_error = reason
        host.permanent = host.permanent or permanent
        async with self._changed:
            self._changed.notify_all()

    async def trip(self, host: HostState, reason: str) -> None:
        """``host`` could not be reached before any branch went there (a preflight): open its
        breaker now, so branches go elsewhere until its trial after the reset timeout."""
        host.last_error = reason
        while host.breaker.state == "closed":
            ticket = host.breaker.admit()
            if ticket is None:
                break
            host.breaker.record(ticket, False)
        async with self._changed:
            self._changed.notify_all()

    def down_report(self, forbid: Collection[str] = ()) -> str:
        """One line per host saying why it cannot take work."""
        lines = []
        for h in self.hosts:
            down = h.permanent or h.breaker_state != "closed" or h.name in forbid
            reason = (h.last_error or "unavailable") if down else "no free slot"
            lines.append(f"  {h.name}: {reason}")
        return "\n".join(lines)
