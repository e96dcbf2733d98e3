"""``settings.parallel.remote``, parsed and checked once, at load, into ``RemoteSettings``.

``RemoteSettings.parse(raw, locate)`` (what ``RemoteExecutor.parse_options`` returns)
turns the YAML mapping (the settings block merged with a fan-out's ``remote:``
override, and with ``--hosts``/``--set`` already merged on) into a frozen, hashable
record and raises ``SchemaError`` naming the key and, through ``locate`` (the
loader's ``location_of``), its file and line, or the flag it came from. Nothing here
reads YAML or connects anywhere.

A host is written ``[N/][user@]host[:port]`` (``N`` slots, as GNU Parallel's
``--sshlogin``; ``[v6addr]:port`` for IPv6) or a name from the user's
``~/.ssh/config``, optionally as a mapping ``{host: ..., slots: N}``. Local paths
(``basefile``, ``identity_file``, ``known_hosts``) are relative to the workflow
file that names them (to the working directory when they come from a flag).
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from executors.base import Locate
from tea.errors import Location, SchemaError

__all__ = [
    "ARCH_ALIASES",
    "DEFAULT_CACHE_DIR",
    "STALE_AFTER_MINUTES",
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
DEFAULT_WORKDIR = "/tmp"
STALE_AFTER_MINUTES = 60
"""A ``tea-run.*`` directory left by a run whose processes are gone is removed once it
is this old (by its last change), the next time tea prepares that host."""
ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "i386": "i686", "i586": "i686"}
"""``uname -m`` (and user) spellings of one architecture, mapped to the name tea uses."""

_PATH = "settings.parallel.remote"
_HOSTS_HINT = "add settings.parallel.remote.hosts: [user@host, ...]"
_HOST_HINT = "write [N/][user@]host[:port] (N: slots), or a name from ~/.ssh/config"
_KNOWN_KEYS = frozenset(
    {
        "hosts", "identity_file", "known_hosts", "basefile", "command", "workdir", "cache_dir",
        "cleanup", "keep_binary", "connect_timeout", "keepalive_seconds", "env", "transport", "slots",
    }
)
# Names never start with "-" (ssh would read an option) and hold no shell character.
_WORD = r"[A-Za-z0-9_][A-Za-z0-9._-]*"
_HOST_RE = re.compile(
    rf"""^(?:(?P<slots>\d+)/)?
        (?:(?P<user>{_WORD})@)?
        (?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>{_WORD}))
        (?::(?P<port>\d{{1,5}}))?$""",
    re.VERBOSE,
)
_ARCH_RE = re.compile(r"^[A-Za-z0-9_]+$")


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


def _bad_host(text: Any, location: Location | None, problem: str = "") -> SchemaError:
    shown = repr(text) if isinstance(text, str) else f"of type {type(text).__name__}"
    return SchemaError(f"bad host {shown} in {_PATH}.hosts{problem}", location,
                       path=f"{_PATH}.hosts", hint=_HOST_HINT)


def parse_host(text: Any, slots: int = 4, location: Location | None = None) -> HostSpec:
    """Parse ``[N/][user@]host[:port]`` (``N`` overrides ``slots``); raises ``SchemaError``
    (at ``location``) on anything else, shell characters and a leading ``-`` included."""
    if not isinstance(text, str):
        raise _bad_host(text, location)
    odd = sorted({c for c in text.strip() if not (c.isalnum() or c in "._-@:/[]")})
    if odd:
        raise _bad_host(text, location, f": {''.join(odd)!r} cannot appear in a host")
    match = _HOST_RE.match(text.strip())
    port = int(match.group("port")) if match and match.group("port") else None
    if match is None or (port is not None and not 0 < port < 65536):
        raise _bad_host(text, location)
    if match.group("slots") is not None:
        slots = int(match.group("slots"))
        if slots < 1:
            raise _bad_host(text, location, ": slots (N/) must be >= 1")
    hostname = match.group("v6") or match.group("name")
    return HostSpec(hostname=hostname, user=match.group("user"), port=port, slots=slots)


def parse_hosts(value: Any, default_slots: int = 4, locate: Locate = no_location) -> tuple[HostSpec, ...]:
    """Parse the ``hosts`` list (strings or ``{host, slots}`` mappings); no duplicates."""
    if not isinstance(value, list) or not value:
        raise SchemaError(
            f"{_PATH}.hosts must be a non-empty list of hosts",
            locate(value),
            path=f"{_PATH}.hosts",
            hint="hosts: [user@server1, 8/user@server2:2222, {host: gpu-box, slots: 2}]",
        )
    specs: list[HostSpec] = []
    for index, item in enumerate(value):
        where = locate(value, index)
        spec = _host_entry(item, default_slots, where, index)
        if any(s.name == spec.name for s in specs):
            raise SchemaError(f"host {spec.name} is listed twice", where, path=f"{_PATH}.hosts")
        specs.append(spec)
    return tuple(specs)


def _host_entry(item: Any, default_slots: int, where: Location, index: int) -> HostSpec:
    if not isinstance(item, Mapping):
        return parse_host(item, default_slots, where)
    if set(item) - {"host", "slots"} or "host" not in item:
        raise SchemaError("a host mapping takes 'host' and optionally 'slots'", where,
                          path=f"{_PATH}.hosts[{index}]", hint="{host: user@server:2222, slots: 4}")
    slots = item.get("slots", default_slots)
    if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
        raise SchemaError(f"slots of host {item.get('host')!r} must be >= 1", where,
                          path=f"{_PATH}.hosts[{index}].slots")
    if "slots" in item and isinstance(item["host"], str) and "/" in item["host"]:
        raise SchemaError(f"host {item['host']!r} gives its slots twice (N/ and slots:)", where,
                          path=f"{_PATH}.hosts[{index}]", hint="keep one of them")
    return parse_host(item["host"], slots, where)


@dataclass(frozen=True, slots=True)
class RemoteSettings:
    """Everything the remote backend needs to reach and prepare its hosts (hashable: an
    executor keeps one set of connections per distinct record)."""

    hosts: tuple[HostSpec, ...]
    identity_file: str | None = None
    known_hosts: str | None = None
    """``None``: OpenSSH's defaults and ``~/.ssh/config`` decide where host keys are."""
    basefiles: tuple[tuple[str, str], ...] = ()
    """``(architecture, path)`` of each binary to ship; architecture ``""``: one binary
    for every host. Empty: the running binary when tea is frozen (or ``command``)."""
    command: tuple[str, ...] = ()
    """Run tea already installed on the hosts (``python3 -m tea``): nothing is shipped."""
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

    def basefile_for(self, arch: str) -> str | None:
        """The binary for a host of ``arch`` (``None``: no entry for it)."""
        arch = ARCH_ALIASES.get(arch, arch)
        return next((path for a, path in self.basefiles if a in ("", arch)), None)

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
        basefiles, command = read.basefiles(), read.command()
        if basefiles and command:
            raise read.error("command", "and basefile exclude each other: tea is either shipped "
                             "(basefile) or already installed on the hosts (command)")
        return cls(
            hosts=hosts,
            identity_file=read.local_path("identity_file"),
            known_hosts=read.local_path("known_hosts"),
            basefiles=basefiles,
            command=command,
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

    def error(self, key: str, problem: str, hint: str | None = None) -> SchemaError:
        return SchemaError(f"{_PATH}.{key} {problem}", self._locate(self._data, key),
                           path=f"{_PATH}.{key}", hint=hint)

    def text(self, key: str) -> str | None:
        value = self._data.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise self.error(key, "must be a non-empty string")
        return value

    def local_path(self, key: str) -> str | None:
        """A path on this machine, made absolute against the file that names it."""
        value = self.text(key)
        return None if value is None else self._absolute(key, value)

    def _absolute(self, key: str, value: str) -> str:
        if value.startswith("~") or os.path.isabs(value):
            return value
        file = self._locate(self._data, key).file
        # A key brought by a flag (--set, -C) is located at the flag, not at a file:
        # its paths are relative to where tea runs, like any command-line path.
        base = Path(file).parent if file and Path(file).is_file() else Path.cwd()
        return os.path.abspath(base / value)

    def basefiles(self) -> tuple[tuple[str, str], ...]:
        value = self._data.get("basefile")
        if value is None or isinstance(value, str):
            path = self.local_path("basefile")
            return (("", path),) if path else ()
        if not isinstance(value, Mapping) or not value:
            raise self.error("basefile", "must be a path or a mapping {architecture: path}",
                             hint="basefile: {x86_64: dist/tea-x86_64, aarch64: dist/tea-aarch64}")
        pairs = []
        for arch, path in value.items():
            if not isinstance(arch, str) or not _ARCH_RE.match(arch):
                raise self.error("basefile", f"has the key {arch!r}, which is no architecture name",
                                 hint="use the names `uname -m` prints: x86_64, aarch64, ...")
            if not isinstance(path, str) or not path:
                raise self.error("basefile", f"entry {arch} must be a non-empty path")
            pairs.append((ARCH_ALIASES.get(arch, arch), self._absolute("basefile", path)))
        return tuple(sorted(pairs))

    def command(self) -> tuple[str, ...]:
        value = self._data.get("command")
        if value is None:
            return ()
        words = value if isinstance(value, list) else None
        if isinstance(value, str):
            try:
                words = shlex.split(value)
            except ValueError as exc:
                raise self.error("command", f"cannot be split into words: {exc}") from None
        if not words or not all(isinstance(w, str) and w for w in words):
            raise self.error("command", "must be a command line such as 'python3 -m tea'",
                             hint="command: python3 -m tea   (run with the words as written, no shell)")
        return tuple(words)

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
