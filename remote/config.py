"""``settings.parallel.remote``, parsed and checked once, at load, into ``RemoteSettings``.

``RemoteSettings.parse(raw, locate)`` (what ``RemoteExecutor.parse_options`` returns)
turns the YAML mapping (the settings block merged with a fan-out's ``remote:``
override) into a frozen, hashable record and raises ``SchemaError`` naming the key
and, through ``locate`` (the loader's ``location_of``), its file and line. Nothing
here reads YAML or connects anywhere.

A host is written ``[user@]host[:port]`` (``[v6addr]:port`` for IPv6) or a name
from the user's ``~/.ssh/config`` (asyncssh and ssh resolve it), optionally as a
mapping ``{host: ..., slots: N}``.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from executors.base import Locate
from tea.errors import Location, SchemaError

__all__ = [
    "DEFAULT_CACHE_DIR",
    "TRANSPORTS",
    "HostSpec",
    "RemoteSettings",
    "forwarded_env",
    "no_location",
    "parse_host",
    "parse_hosts",
]

TRANSPORTS = ("ssh", "gnu_parallel")
DEFAULT_CACHE_DIR = ".cache/tea"
"""Where shipped binaries are kept, relative to the remote home (as documented)."""
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
DEFAULT_WORKDIR = "/tmp"

_PATH = "settings.parallel.remote"
_HOSTS_HINT = "add settings.parallel.remote.hosts: [user@host, ...]"
_KNOWN_KEYS = frozenset(
    {
        "hosts", "identity_file", "known_hosts", "basefile", "workdir", "cache_dir", "cleanup",
        "keep_binary", "connect_timeout", "keepalive_seconds", "env", "transport", "slots",
    }
)
_HOST_RE = re.compile(
    r"""^(?:(?P<user>[^@\s/]+)@)?
        (?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9._-]+))
        (?::(?P<port>\d{1,5}))?$""",
    re.VERBOSE,
)


def no_location(obj: Any, key: str | int | None = None) -> Location:
    """The ``Locate`` of plain data (settings built in Python): no file, no line."""
    return Location()


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


def parse_host(text: Any, slots: int = 4, location: Location | None = None) -> HostSpec:
    """Parse ``[user@]host[:port]``; raises ``SchemaError`` (at ``location``) on anything else."""
    match = _HOST_RE.match(text.strip()) if isinstance(text, str) else None
    port = int(match.group("port")) if match and match.group("port") else None
    if match is None or (port is not None and not 0 < port < 65536):
        raise SchemaError(
            f"bad host {text!r} in {_PATH}.hosts",
            location,
            path=f"{_PATH}.hosts",
            hint="write user@host:port, host, or a name from ~/.ssh/config",
        )
    hostname = match.group("v6") or match.group("name")
    return HostSpec(hostname=hostname, user=match.group("user"), port=port, slots=slots)


def parse_hosts(value: Any, default_slots: int = 4, locate: Locate = no_location) -> tuple[HostSpec, ...]:
    """Parse the ``hosts`` list (strings or ``{host, slots}`` mappings); no duplicates."""
    if not isinstance(value, list) or not value:
        raise SchemaError(
            f"{_PATH}.hosts must be a non-empty list of hosts",
            locate(value),
            path=f"{_PATH}.hosts",
            hint="hosts: [user@server1, {host: user@server2:2222, slots: 8}]",
        )
    specs: list[HostSpec] = []
    for index, item in enumerate(value):
        where = locate(value, index)
        if isinstance(item, Mapping):
            slots = item.get("slots", default_slots)
            if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
                raise SchemaError(f"slots of host {item.get('host')!r} must be >= 1", where,
                                  path=f"{_PATH}.hosts[{index}].slots")
            if set(item) - {"host", "slots"} or "host" not in item:
                raise SchemaError(
                    "a host mapping takes 'host' and optionally 'slots'",
                    where,
                    path=f"{_PATH}.hosts[{index}]",
                    hint="{host: user@server:2222, slots: 4}",
                )
            spec = parse_host(item["host"], slots, where)
        else:
            spec = parse_host(item, default_slots, where)
        if any(s.name == spec.name for s in specs):
            raise SchemaError(f"host {spec.name} is listed twice", where, path=f"{_PATH}.hosts")
        specs.append(spec)
    return tuple(specs)


@dataclass(frozen=True, slots=True)
class RemoteSettings:
    """Everything the remote backend needs to reach and prepare its hosts (hashable: an
    executor keeps one set of connections per distinct record)."""

    hosts: tuple[HostSpec, ...]
    identity_file: str | None = None
    known_hosts: str = DEFAULT_KNOWN_HOSTS
    basefile: str | None = None
    workdir: str = DEFAULT_WORKDIR
    """Parent directory on each host; every run gets a private ``mktemp -d`` under it."""
    cache_dir: str = DEFAULT_CACHE_DIR
    """Where shipped binaries are kept between runs, by SHA-256; a relative path is
    relative to the remote home."""
    cleanup: bool = True
    keep_binary: bool = True
    connect_timeout: float = 10.0
    keepalive_seconds: float = 15.0
    env: tuple[str, ...] = ()
    transport: str = "ssh"

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None, locate: Locate = no_location) -> RemoteSettings:
        """Parse ``settings.parallel.remote``; raises ``SchemaError`` at the key at fault."""
        if data is not None and not isinstance(data, Mapping):
            raise SchemaError(f"{_PATH} must be a mapping", locate(data), path=_PATH,
                              hint=_HOSTS_HINT)
        if not data or "hosts" not in data:
            raise SchemaError(
                "parallel strategy 'remote' needs settings.parallel.remote.hosts",
                locate(data), path=f"{_PATH}.hosts", hint=_HOSTS_HINT,
            )
        _check_keys(data, locate)
        read = _Reader(data, locate)
        hosts = parse_hosts(data["hosts"], read.positive_int("slots", 4), locate)
        transport = data.get("transport", "ssh")
        if transport not in TRANSPORTS:
            raise read.error("transport", f"must be one of {', '.join(TRANSPORTS)}, not {transport!r}")
        env = data.get("env") or []
        if not isinstance(env, list) or not all(isinstance(e, str) for e in env):
            raise read.error("env", "must be a list of variable names or globs")
        return cls(
            hosts=hosts,
            identity_file=read.text("identity_file"),
            known_hosts=read.text("known_hosts") or DEFAULT_KNOWN_HOSTS,
            basefile=read.text("basefile"),
            workdir=read.text("workdir") or DEFAULT_WORKDIR,
            cache_dir=read.text("cache_dir") or DEFAULT_CACHE_DIR,
            cleanup=read.flag("cleanup", True),
            keep_binary=read.flag("keep_binary", True),
            connect_timeout=read.seconds("connect_timeout", 10.0),
            keepalive_seconds=read.seconds("keepalive_seconds", 15.0),
            env=tuple(env),
            transport=transport,
        )


def forwarded_env(patterns: tuple[str, ...], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables ``env`` forwards: names or globs, ``!glob`` excludes; values never logged."""
    environ = os.environ if environ is None else environ
    include = [p for p in patterns if not p.startswith("!")]
    exclude = [p[1:] for p in patterns if p.startswith("!")]
    return {
        name: value
        for name, value in environ.items()
        if any(fnmatch.fnmatchcase(name, p) for p in include)
        and not any(fnmatch.fnmatchcase(name, p) for p in exclude)
    }


def _check_keys(data: Mapping[str, Any], locate: Locate) -> None:
    unknown = sorted(set(data) - _KNOWN_KEYS, key=str)
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), sorted(_KNOWN_KEYS), n=1)
        raise SchemaError(
            f"unknown key '{unknown[0]}' in {_PATH}",
            locate(data, unknown[0]),
            path=f"{_PATH}.{unknown[0]}",
            hint=f"did you mean '{close[0]}'?" if close
            else f"known keys: {', '.join(sorted(_KNOWN_KEYS))}",
        )


class _Reader:
    """Typed reads of the keys of one settings mapping, each error at its key."""

    def __init__(self, data: Mapping[str, Any], locate: Locate) -> None:
        self._data = data
        self._locate = locate

    def error(self, key: str, problem: str) -> SchemaError:
        return SchemaError(f"{_PATH}.{key} {problem}", self._locate(self._data, key),
                           path=f"{_PATH}.{key}")

    def text(self, key: str) -> str | None:
        value = self._data.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise self.error(key, "must be a non-empty string")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self._data.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, "must be true or false")
        return value

    def seconds(self, key: str, default: float) -> float:
        value = self._data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise self.error(key, "must be a positive number of seconds")
        return float(value)

    def positive_int(self, key: str, default: int) -> int:
        value = self._data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.error(key, "must be a positive integer")
        return value
