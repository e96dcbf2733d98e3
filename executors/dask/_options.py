"""``settings.parallel.dask``, parsed and checked once, at load, into ``DaskOptions``.

::

    settings:
      parallel:
        dask:
          address: tcp://scheduler:8786   # else $DASK_SCHEDULER_ADDRESS, else an embedded LocalCluster
          connect_timeout: 10             # seconds for the scheduler to answer
          chunk_size: auto                # branches per Dask task (auto: from the width and the cluster)

Nothing here imports ``distributed``: a workflow is checked (``tea validate``)
without paying for it, and a machine without it gets the install line at load.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from executors.base import Locate
from tea.errors import Location, SchemaError

__all__ = ["ADDRESS_ENV", "INSTALL_HINT", "DaskOptions", "address_problem", "resolve_address"]

ADDRESS_ENV = "DASK_SCHEDULER_ADDRESS"
"""Dask's own variable for the scheduler to use when a program names none."""
INSTALL_HINT = "pip install 'tea-engine[dask]' (it installs Dask's 'distributed' package)"

_PATH = "settings.parallel.dask"
_KEYS = ("address", "connect_timeout", "chunk_size")
_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")
_ADDRESS = re.compile(
    r"^(?P<scheme>[a-z]+)://(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(?P<port>\d{1,5})$"
)


def _nowhere(obj: Any, key: str | int | None = None) -> Location:
    """The ``Locate`` of plain data (options built in Python): no file, no line."""
    return Location()


@dataclass(frozen=True, slots=True)
class DaskOptions:
    """How the dask strategy reaches its cluster and cuts a fan-out into tasks (hashable:
    an executor keeps one connection per distinct scheduler)."""

    address: str | None = None
    """``scheme://host:port`` of the scheduler; ``None``: ``$DASK_SCHEDULER_ADDRESS``, else
    an embedded ``LocalCluster`` (one single-threaded worker process per core) for the run."""
    connect_timeout: float = 10.0
    """Seconds the scheduler has to answer (and a cluster to show a running worker)."""
    chunk_size: int | None = None
    """Branches per Dask task; ``None`` ("auto"): chosen from the fan-out's width and the
    cluster's threads. A fan-out with ``timeout_seconds`` sends one branch per task."""

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None, locate: Locate = _nowhere) -> DaskOptions:
        """Parse ``settings.parallel.dask``; raises ``SchemaError`` at the key at fault, or
        with the install line when ``distributed`` is not installed."""
        if importlib.util.find_spec("distributed") is None:
            raise SchemaError(
                "parallel strategy 'dask' needs Dask's 'distributed' package, which is not "
                "installed", locate(raw), path=_PATH, hint=INSTALL_HINT,
            )
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise SchemaError(f"{_PATH} must be a mapping", locate(raw), path=_PATH,
                              hint="dask: {address: tcp://scheduler:8786}")
        _check_keys(raw, locate)
        address = raw.get("address")
        if address is not None:
            problem = address_problem(address)
            if problem:
                raise _error(raw, "address", problem, locate)
        elif os.environ.get(ADDRESS_ENV):
            problem = address_problem(os.environ[ADDRESS_ENV])
            if problem:
                raise SchemaError(f"${ADDRESS_ENV} {problem}", locate(raw), path=_PATH,
                                  hint=f"fix or unset {ADDRESS_ENV}, or set {_PATH}.address")
        return cls(address, _seconds(raw, locate), _chunk_size(raw, locate))


def address_problem(address: Any) -> str | None:
    """What is wrong with ``address`` as a Dask scheduler address (``None``: nothing)."""
    match = _ADDRESS.match(address) if isinstance(address, str) else None
    if match is None:
        return f"is not a Dask scheduler address ({address!r}): write scheme://host:port, e.g. tcp://scheduler:8786"
    if match.group("scheme") not in _SCHEMES:
        return f"has an unknown scheme {match.group('scheme')!r} (known: {', '.join(_SCHEMES)})"
    if not 0 < int(match.group("port")) < 65536:
        return f"has a port out of range ({match.group('port')})"
    return None


def resolve_address(options: DaskOptions) -> tuple[str | None, str]:
    """The scheduler to use and where that came from; ``(None, ...)``: start a LocalCluster."""
    if options.address is not None:
        return options.address, f"{_PATH}.address"
    if os.environ.get(ADDRESS_ENV):
        return os.environ[ADDRESS_ENV], f"${ADDRESS_ENV}"
    return None, "the embedded LocalCluster"


def _check_keys(raw: Mapping[str, Any], locate: Locate) -> None:
    for key in raw:
        if key not in _KEYS:
            close = difflib.get_close_matches(str(key), _KEYS, n=1)
            raise SchemaError(
                f"unknown key '{key}' in {_PATH}", locate(raw, key), path=f"{_PATH}.{key}",
                hint=f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(_KEYS)}",
            )


def _error(raw: Mapping[str, Any], key: str, problem: str, locate: Locate) -> SchemaError:
    return SchemaError(f"{_PATH}.{key} {problem}", locate(raw, key), path=f"{_PATH}.{key}")


def _seconds(raw: Mapping[str, Any], locate: Locate) -> float:
    value = raw.get("connect_timeout", 10.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise _error(raw, "connect_timeout", "must be a positive number of seconds", locate)
    return float(value)


def _chunk_size(raw: Mapping[str, Any], locate: Locate) -> int | None:
    value = raw.get("chunk_size")
    if value is None or value == "auto":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _error(raw, "chunk_size", "must be a positive integer or auto", locate)
    return value
