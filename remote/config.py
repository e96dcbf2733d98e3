"""``settings.parallel.remote``: parsed and checked once, before anything connects.

``RemoteSettings.from_mapping`` turns the YAML mapping (possibly merged with an
edge's override) into a frozen record and raises ``SchemaError`` naming the key
and its location for anything unusable. The loader calls
``validate_remote_settings`` so a typo fails ``tea validate``, not the run.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from remote.hosts import HostSpec, parse_hosts
from tea.errors import SchemaError
from tea.yamlsrc import location_of

__all__ = ["TRANSPORTS", "RemoteSettings", "forwarded_env", "validate_remote_settings"]

TRANSPORTS = ("ssh", "gnu_parallel")

_KNOWN_KEYS = frozenset(
    {
        "hosts",
        "identity_file",
        "known_hosts",
        "basefile",
        "workdir",
        "cache_dir",
        "cleanup",
        "keep_binary",
        "connect_timeout",
        "keepalive_seconds",
        "env",
        "transport",
        "slots",
    }
)


@dataclass(frozen=True, slots=True)
class RemoteSettings:
    """Everything the remote backend needs to reach and prepare its hosts."""

    hosts: tuple[HostSpec, ...]
    identity_file: str | None = None
    known_hosts: str = "~/.ssh/known_hosts"
    basefile: str | None = None
    workdir: str = "/tmp"
    """Parent directory on each host; every run gets a private ``mktemp -d`` under it."""
    cache_dir: str = ".cache/tea"
    """Where shipped binaries are kept between runs, by SHA-256 (relative to the remote home)."""
    cleanup: bool = True
    keep_binary: bool = True
    connect_timeout: float = 10.0
    keepalive_seconds: float = 15.0
    env: tuple[str, ...] = ()
    transport: str = "ssh"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> RemoteSettings:
        """Parse ``settings.parallel.remote``; raises ``SchemaError`` with the key's location."""
        if not data:
            raise SchemaError(
                "parallel strategy 'remote' needs settings.parallel.remote.hosts",
                location_of(data),
                hint="add settings: {parallel: {remote: {hosts: [user@host]}}}",
            )
        if not isinstance(data, Mapping):
            raise SchemaError("settings.parallel.remote must be a mapping", location_of(data))
        unknown = sorted(set(data) - _KNOWN_KEYS, key=str)
        if unknown:
            close = difflib.get_close_matches(str(unknown[0]), sorted(_KNOWN_KEYS), n=1)
            raise SchemaError(
                f"unknown key '{unknown[0]}' in settings.parallel.remote",
                location_of(data, unknown[0]),
                hint=f"did you mean '{close[0]}'?" if close
                else f"known keys: {', '.join(sorted(_KNOWN_KEYS))}",
            )
        default_slots = _positive_int(data, "slots", 4)
        hosts = parse_hosts(data.get("hosts"), default_slots=default_slots)
        transport = data.get("transport", "ssh")
        if transport not in TRANSPORTS:
            raise SchemaError(
                f"settings.parallel.remote.transport must be one of {', '.join(TRANSPORTS)}, "
                f"not {transport!r}",
                location_of(data, "transport"),
            )
        env = data.get("env") or []
        if not isinstance(env, list) or not all(isinstance(e, str) for e in env):
            raise SchemaError(
                "settings.parallel.remote.env must be a list of variable names or globs",
                location_of(data, "env"),
            )
        return cls(
            hosts=hosts,
            identity_file=_opt_str(data, "identity_file"),
            known_hosts=_opt_str(data, "known_hosts") or "~/.ssh/known_hosts",
            basefile=_opt_str(data, "basefile"),
            workdir=_opt_str(data, "workdir") or "/tmp",
            cache_dir=_opt_str(data, "cache_dir") or ".cache/tea",
            cleanup=_bool(data, "cleanup", True),
            keep_binary=_bool(data, "keep_binary", True),
            connect_timeout=_positive_float(data, "connect_timeout", 10.0),
            keepalive_seconds=_positive_float(data, "keepalive_seconds", 15.0),
            env=tuple(env),
            transport=transport,
        )


def validate_remote_settings(data: Mapping[str, Any] | None) -> None:
    """Load-time check of ``settings.parallel.remote`` (raises ``SchemaError``)."""
    RemoteSettings.from_mapping(data)


def forwarded_env(patterns: tuple[str, ...], environ: Mapping[str, str] | None = None) -> dict:
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


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise SchemaError(
            f"settings.parallel.remote.{key} must be a non-empty string", location_of(data, key)
        )
    return value


def _bool(data: Mapping[str, Any], key: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise SchemaError(
            f"settings.parallel.remote.{key} must be true or false", location_of(data, key)
        )
    return value


def _positive_float(data: Mapping[str, Any], key: str, default: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise SchemaError(
            f"settings.parallel.remote.{key} must be a positive number of seconds",
            location_of(data, key),
        )
    return float(value)


def _positive_int(data: Mapping[str, Any], key: str, default: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SchemaError(
            f"settings.parallel.remote.{key} must be a positive integer", location_of(data, key)
        )
    return value
