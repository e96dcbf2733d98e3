"""``settings.parallel`` (and its per-edge / per-dynamic-node overrides) → ``ParallelConfig``.

::

    settings:
      parallel:
        strategy: process            # thread | process | remote | any registered strategy
        max_workers: 4
        timeout_seconds: 30          # per branch attempt
        fail_fast: false
        on_branch_failure: fail      # fail | continue
        retry: {max_attempts: 3, backoff_base_ms: 200, backoff_max_ms: 5000,
                jitter: true, retry_on: [TimeoutError, WorkerDied]}
        circuit_breaker: {failure_threshold: 5, reset_timeout_seconds: 30}
        max_branches: 1000000        # the widest dynamic fan-out allowed (engine-wide)
        remote: {...}                # a strategy's own options, under its name

An override is parsed on top of a base config: only the keys it names change;
``retry`` and ``circuit_breaker`` merge key by key into the base's. A block named
for a strategy (``remote:``) holds that backend's options: the settings-level
block merged key by key with the override's is handed to the backend's
``parse_options`` once, at load, and the typed record it returns travels as
``ParallelConfig.options``. Every problem is a ``SchemaError`` at the file and
line of the key at fault.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import Any

from executors import known_strategies, parse_options
from executors.base import BreakerPolicy, ParallelConfig, RetryPolicy
from executors.retry import RETRY_KEYS, parse_retry
from tea.errors import Location, SchemaError
from tea.yamlsrc import LocDict, location_of

__all__ = ["PARALLEL_KEYS", "check_strategy", "parse_parallel_config"]

PARALLEL_KEYS = (
    "strategy", "max_workers", "timeout_seconds", "fail_fast", "retry", "circuit_breaker",
    "on_branch_failure", "max_branches",
)
DEFAULT_MAX_BRANCHES = 1_000_000
_BREAKER_KEYS = ("failure_threshold", "reset_timeout_seconds")
_ON_BRANCH_FAILURE = ("fail", "continue")


def parse_parallel_config(
    raw: Mapping[str, Any] | None,
    *,
    base: ParallelConfig | None = None,
    inherited: Mapping[str, Any] | None = None,
    path: str = "settings.parallel",
) -> ParallelConfig:
    """The config ``raw`` describes, on top of ``base`` (defaults when ``None``).

    ``inherited`` is the ``settings.parallel`` block ``base`` came from: its
    strategy blocks are merged under the override's. ``path`` names the block in
    error messages (``edges[2]``, ``nodes.fan.parallel``). Raises ``SchemaError``
    with the file and line of the offending key.
    """
    config = base or ParallelConfig()
    if raw is None:
        return replace(config, options=_options(config.strategy, None, inherited, path))
    if not isinstance(raw, Mapping):
        raise SchemaError(
            f"{path} must be a mapping, not {_kind(raw)}", location_of(raw), path=path
        )
    _check_keys(raw, (*PARALLEL_KEYS, *known_strategies()), path)
    changes: dict[str, Any] = {}
    if "strategy" in raw:
        changes["strategy"] = check_strategy(
            raw["strategy"], _at(raw, "strategy"), f"{path}.strategy"
        )
    if "max_workers" in raw:
        changes["max_workers"] = _optional_int(raw, "max_workers", path, minimum=1)
    if "timeout_seconds" in raw:
        changes["timeout_seconds"] = _optional_positive(raw, "timeout_seconds", path)
    if "fail_fast" in raw:
        changes["fail_fast"] = _bool(raw, "fail_fast", path)
    if "on_branch_failure" in raw:
        value = raw["on_branch_failure"]
        if value not in _ON_BRANCH_FAILURE:
            raise _error(raw, "on_branch_failure", path, f"must be fail or continue, not {value!r}")
        changes["on_branch_failure"] = value
    if "retry" in raw:
        changes["retry"] = _retry(raw["retry"], config.retry, f"{path}.retry", raw)
    if "circuit_breaker" in raw:
        changes["circuit_breaker"] = _breaker(
            raw["circuit_breaker"], config.circuit_breaker, f"{path}.circuit_breaker", raw
        )
    strategy = changes.get("strategy", config.strategy)
    changes["options"] = _options(strategy, raw, inherited, path)
    return replace(config, **changes)


def max_branches(raw: Mapping[str, Any] | None, path: str = "settings.parallel") -> int:
    """``settings.parallel.max_branches``, else the default."""
    if not raw or "max_branches" not in raw:
        return DEFAULT_MAX_BRANCHES
    return _int(raw, "max_branches", path, minimum=1)


def _options(
    strategy: str, raw: Mapping[str, Any] | None, inherited: Mapping[str, Any] | None, path: str
) -> Any:
    """The typed options of ``strategy``: its settings block under the override's block."""
    own = raw.get(strategy) if raw is not None and raw is not inherited else None
    base = inherited.get(strategy) if inherited is not None else None
    if own is not None:
        own = _mapping(own, f"{path}.{strategy}", raw or {}, strategy)
    if base is not None:
        base = _mapping(base, f"settings.parallel.{strategy}", inherited or {}, strategy)
    merged = _merged(base, own)
    try:
        return parse_options(strategy, merged, location_of)
    except SchemaError as exc:
        if exc.location is None or (exc.location.file is None and exc.location.line is None):
            exc.location = location_of(raw)  # nothing written to point at: the fan-out itself
        raise


def check_strategy(value: Any, location: Location | None = None, path: str = "strategy") -> str:
    """``value`` if it names a registered strategy, else a ``SchemaError`` listing them all."""
    known = known_strategies()
    if isinstance(value, str) and value in known:
        return value
    close = difflib.get_close_matches(str(value), known, n=1)
    hint = f"did you mean '{close[0]}'?" if close else None
    raise SchemaError(
        f"{path}: unknown parallel strategy {value!r}; known: {', '.join(known)}",
        location,
        path=path,
        hint=hint,
    )


def _retry(raw: Any, base: RetryPolicy, path: str, parent: Mapping[str, Any]) -> RetryPolicy:
    block = _mapping(raw, path, parent, "retry")
    _check_keys(block, (*RETRY_KEYS, "max_retries"), path)  # the old spelling still reads, with a warning
    return parse_retry(block, base, path, location_of)


def _breaker(
    raw: Any, base: BreakerPolicy | None, path: str, parent: Mapping[str, Any]
) -> BreakerPolicy | None:
    if raw is None or raw is False:
        return None
    if raw is True:
        return base or BreakerPolicy()
    block = _mapping(raw, path, parent, "circuit_breaker")
    _check_keys(block, _BREAKER_KEYS, path)
    changes: dict[str, Any] = {}
    if "failure_threshold" in block:
        changes["failure_threshold"] = _int(block, "failure_threshold", path, minimum=1)
    if "reset_timeout_seconds" in block:
        changes["reset_timeout_seconds"] = _positive(block, "reset_timeout_seconds", path)
    return replace(base or BreakerPolicy(), **changes)


def _merged(base: Mapping[str, Any] | None, block: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """``block``'s keys over ``base``'s, each keeping its own location."""
    if not base or not block:
        return block or base
    merged = LocDict({**base, **block})
    merged.loc = location_of(block)
    merged.key_locs = {**getattr(base, "key_locs", {}), **getattr(block, "key_locs", {})}
    return merged


def _check_keys(block: Mapping[str, Any], allowed: Collection[str], path: str) -> None:
    for key in block:
        if key in allowed:
            continue
        close = difflib.get_close_matches(str(key), list(allowed), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(allowed)}"
        raise SchemaError(
            f"{path}: unknown key '{key}'", location_of(block, key), path=f"{path}.{key}",
            hint=hint,
        )


def _at(block: Mapping[str, Any], key: str) -> Location:
    """Where the value of ``key`` sits (its key's line when the value has no location)."""
    if isinstance(block, LocDict):
        return block.value_loc(key)
    return location_of(block, key)


def _error(block: Mapping[str, Any], key: str, path: str, problem: str) -> SchemaError:
    return SchemaError(f"{path}.{key} {problem}", _at(block, key), path=f"{path}.{key}")


def _kind(value: Any) -> str:
    kinds = ((bool, "a boolean"), (str, "a string"), (int, "an integer"), (float, "a number"),
             (list, "a list"), (Mapping, "a mapping"))
    if value is None:
        return "null"
    return next((name for klass, name in kinds if isinstance(value, klass)), type(value).__name__)


def _mapping(raw: Any, path: str, parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise SchemaError(
            f"{path} must be a mapping, not {_kind(raw)}", _at(parent, key), path=path
        )
    return raw


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int(block: Mapping[str, Any], key: str, path: str, *, minimum: int) -> int:
    value = block[key]
    if not _is_int(value):
        raise _error(block, key, path, f"must be an integer, not {_kind(value)}")
    if value < minimum:
        raise _error(block, key, path, f"must be at least {minimum}, not {value}")
    return int(value)


def _optional_int(block: Mapping[str, Any], key: str, path: str, *, minimum: int) -> int | None:
    return None if block[key] is None else _int(block, key, path, minimum=minimum)


def _number(block: Mapping[str, Any], key: str, path: str, *, minimum: float) -> float:
    value = block[key]
    if not _is_number(value):
        raise _error(block, key, path, f"must be a number, not {_kind(value)}")
    if value < minimum:
        raise _error(block, key, path, f"must not be negative, not {value}")
    return float(value)


def _positive(block: Mapping[str, Any], key: str, path: str) -> float:
    value = block[key]
    if not _is_number(value):
        raise _error(block, key, path, f"must be a number of seconds, not {_kind(value)}")
    if value <= 0:
        raise _error(block, key, path, f"must be greater than 0, not {value}")
    return float(value)


def _optional_positive(block: Mapping[str, Any], key: str, path: str) -> float | None:
    return None if block[key] is None else _positive(block, key, path)


def _bool(block: Mapping[str, Any], key: str, path: str) -> bool:
    value = block[key]
    if not isinstance(value, bool):
        raise _error(block, key, path, f"must be true or false, not {_kind(value)}")
    return value


def _names(block: Mapping[str, Any], key: str, path: str) -> tuple[str, ...]:
    value = block[key]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _error(block, key, path, "must be a list of error type names")
    return tuple(value)
