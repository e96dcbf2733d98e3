"""Host strings, host lists and the host pool (slots, leases, breakers, choosing another host)."""

from __future__ import annotations

import asyncio

import pytest

from executors.base import BreakerPolicy
from remote.config import HostSpec, parse_host, parse_hosts
from remote.hosts import HostPool
from tea.errors import SchemaError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("server1", HostSpec("server1")),
        ("alice@server1", HostSpec("server1", "alice")),
        ("alice@10.0.0.5:2222", HostSpec("10.0.0.5", "alice", 2222)),
        ("build-box.example.com:22", HostSpec("build-box.example.com", None, 22)),
        ("bob@[::1]:2200", HostSpec("::1", "bob", 2200)),
        ("8/alice@edge1:2222", HostSpec("edge1", "alice", 2222, slots=8)),
        ("2/gpu-box", HostSpec("gpu-box", slots=2)),
    ],
)
def test_parse_host_forms(text, expected):
    assert parse_host(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "a@b@c", "host:99999", "host:port", "we ird", "@host", "-oProxyCommand=evil", "h;reboot",
     "u`id`@h", "0/h", "x/h", "-p22"],
)
def test_bad_hosts_are_schema_errors(text):
    with pytest.raises(SchemaError, match="bad host"):
        parse_host(text)


def test_name_round_trips_what_the_user_wrote():
    assert parse_host("alice@server1:2222").name == "alice@server1:2222"
    assert parse_host("server1").name == "server1"
    assert parse_host("[::1]:22").name == "[::1]:22"


def test_host_list_with_slots_and_defaults():
    hosts = parse_hosts(["a", {"host": "u@b:2", "slots": 8}], default_slots=2)
    assert [(h.name, h.slots) for h in hosts] == [("a", 2), ("u@b:2", 8)]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "non-empty list"),
        ("a,b", "non-empty list"),
        (["a", "a"], "listed twice"),
        ([{"host": "a", "slots": 0}], "slots"),
        ([{"hostname": "a"}], "takes 'host'"),
        ([{"host": "2/a", "slots": 3}], "slots twice"),
    ],
)
def test_bad_host_lists(value, message):
    with pytest.raises(SchemaError, match=message):
        parse_hosts(value)


def _pool(*slots: int, threshold: int = 2, reset: float = 60.0) -> HostPool:
    specs = [HostSpec(f"h{i}", slots=n) for i, n in enumerate(slots)]
    return HostPool(specs, BreakerPolicy(failure_threshold=threshold, reset_timeout_seconds=reset))


def test_acquire_spreads_load_and_respects_slots():
    async def scenario() -> list[str]:
        pool = _pool(1, 2)
        got = [await pool.acquire(set(), set()) for _ in range(3)]
        assert all(lease is not None for lease in got)
        waiter = asyncio.ensure_future(pool.acquire(set(), set()))
        await asyncio.sleep(0.01)
        assert not waiter.done()  # every slot is taken: it waits, it does not fail
        await pool.release(got[0], healthy=True)
        freed = await asyncio.wait_for(waiter, 1)
        return [lease.host.name for lease in [*got, freed]]

    assert asyncio.run(scenario()) == ["h0", "h1", "h1", "h0"]


def test_avoided_host_is_used_only_when_nothing_else_is_free():
    async def scenario() -> tuple[str, str]:
        pool = _pool(1, 1)
        first = await pool.acquire({"h0"}, set())
        second = await pool.acquire({"h0"}, set())
        return first.host.name, second.host.name

    assert asyncio.run(scenario()) == ("h1", "h0")


async def _lose(pool: HostPool, name: str, reason: str) -> None:
    """One attempt on host ``name`` that finds it down (the first to see the loss)."""
    lease = await pool.acquire(set(), {h.name for h in pool.hosts} - {name})
    assert lease is not None
    await pool.mark_down(lease.host, reason)
    await pool.release(lease, healthy=False)


def test_breaker_opens_after_threshold_and_all_down_is_reported():
    async def scenario() -> tuple[object, str]:
        pool = _pool(1, 1, threshold=2)
        for host in pool.hosts:
            await _lose(pool, host.name, f"{host.name} refused the connection")
            await _lose(pool, host.name, f"{host.name} refused the connection")
        assert [h.breaker_state for h in pool.hosts] == ["open", "open"]
        return await pool.acquire(set(), set()), pool.down_report()

    lease, report = asyncio.run(scenario())
    assert lease is None
    assert "h0: h0 refused the connection" in report
    assert "h1: h1 refused the connection" in report


def test_a_loss_counts_once_however_many_branches_were_on_the_host():
    async def scenario() -> str:
        pool = _pool(3, threshold=2)
        leases = [await pool.acquire(set(), set()) for _ in range(3)]
        await pool.mark_down(pool.hosts[0], "connection lost")
        await pool.release(leases[0], healthy=False)  # the first branch to see it counts it
        for lease in leases[1:]:
            await pool.release(lease, healthy=None)  # the others learnt nothing new
        return pool.hosts[0].breaker_state

    assert asyncio.run(scenario()) == "closed"


def test_forbidden_hosts_are_never_chosen():
    async def scenario() -> object:
        pool = _pool(1, 1)
        return await pool.acquire(set(), {"h0", "h1"})

    assert asyncio.run(scenario()) is None


def test_open_breaker_allows_one_trial_after_reset_timeout():
    async def scenario() -> list[object]:
        pool = _pool(2, threshold=1, reset=0.05)
        host = pool.hosts[0]
        await _lose(pool, "h0", "lost")
        refused = await pool.acquire(set(), set())
        await asyncio.sleep(0.06)
        trial = await pool.acquire(set(), set())
        assert trial is not None and trial.host is host and trial.ticket == "trial"
        second = asyncio.ensure_future(pool.acquire(set(), set()))
        await asyncio.sleep(0.01)
        assert not second.done()  # one trial at a time, though a slot is free
        await pool.release(trial, healthy=True)
        after = await asyncio.wait_for(second, 1)
        return [refused, host.breaker_state, after.ticket]

    assert asyncio.run(scenario()) == [None, "closed", "closed"]


def test_a_permanently_broken_host_is_never_tried_again():
    async def scenario() -> object:
        pool = _pool(1, threshold=5)
        await pool.mark_down(pool.hosts[0], "cannot create the workdir", permanent=True)
        return await pool.acquire(set(), set())

    assert asyncio.run(scenario()) is None
