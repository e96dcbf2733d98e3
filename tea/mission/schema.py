"""The keys of the mission format, the checks of their values, and the ``settings:`` block.

Every check records its problem (a ``SchemaError`` at the key's file and line)
in the caller's list and returns ``None`` for a bad value, so one pass over a
mission finds every problem, not only the first.

The ``settings:`` block is tea's ``shell``, ``files``, ``llm`` and ``parallel``::


    settings:
      shell: {enabled: true}         # command, git_* and ssh_execute steps may run programs
      files: {root: data}            # file steps are confined here (relative to the mission)
      llm: {provider: ollama, model: llama3.2}     # defaults of llm steps
      parallel:
        strategy: process            # where steps run: thread (default), process, remote, ...
        max_workers: 8               # the default of config.max_concurrent_steps
        remote: {hosts: [...]}       # the strategy's own options, checked by its backend

Retries, timeouts and fail-fast of a mission are in its ``config:`` and its steps,
so ``settings.parallel`` does not take tea's branch-level keys for them.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from tea.errors import LoadError, SchemaError
from tea.keys import suggest
from tea.yamlsrc import location_of

__all__ = [
    "ID_PATTERN",
    "RESERVED_NAMES",
    "SETTINGS_KEYS",
    "STEP_KEYS",
    "TOP_KEYS",
    "Settings",
    "boolean",
    "number",
    "parse_settings",
    "plain",
    "text_field",
    "unknown_keys",
]

TOP_KEYS = ("name", "version", "description", "config", "settings", "steps")
STEP_KEYS = (
    "id", "name", "step_type", "depends_on", "timeout_seconds", "continue_on_error", "parameters",
    "retry_attempts", "retry_delay_ms",
)
ID_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
"""Step ids are names a template can read: ``{{ fetch_data.output.body }}``."""
RESERVED_NAMES = frozenset({"env", "context", "config", "secrets"})
"""What templates read besides step ids, so no step may be called so."""


def unknown_keys(raw: Mapping[str, Any], allowed: Collection[str], where: str,
                 errors: list[LoadError], hint: str | None = None) -> None:
    """Record every key of ``raw`` not in ``allowed``, with the nearest allowed one."""
    for key in raw:
        if key not in allowed:
            errors.append(SchemaError(
                f"unknown key '{key}' in {where}", location_of(raw, key),
                hint=suggest(str(key), allowed) or hint or f"allowed keys: {', '.join(allowed)}",
            ))


def number(raw: Mapping[str, Any], key: str, errors: list[LoadError], where: str, *,
           integer: bool = False, minimum: float = 0, above: bool = False) -> Any:
    """``raw[key]`` checked as a number (``None`` when absent or wrong, the problem recorded)."""
    value = raw.get(key)
    if value is None:
        return None
    kind = "an integer" if integer else "a number"
    ok_type = isinstance(value, int if integer else int | float) and not isinstance(value, bool)
    in_range = ok_type and (value > minimum if above else value >= minimum)
    if not in_range:
        bound = f"greater than {minimum:g}" if above else f"at least {minimum:g}"
        errors.append(SchemaError(f"{where}.{key} must be {kind} {bound}, got {value!r}",
                                  location_of(raw, key)))
        return None
    return value


def boolean(raw: Mapping[str, Any], key: str, errors: list[LoadError], where: str) -> bool | None:
    """``raw[key]`` checked as true/false (``None`` when absent or wrong)."""
    value = raw.get(key)
    if value is None or isinstance(value, bool):
        return value
    errors.append(SchemaError(f"{where}.{key} must be true or false, got {value!r}", location_of(raw, key)))
    return None


def text_field(raw: Mapping[str, Any], key: str, errors: list[LoadError], where: str, *,
         numbers: bool = False) -> str | None:
    """``raw[key]`` checked as text (numbers accepted with ``numbers``, as for ``version: 1.0``)."""
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, str) or (numbers and isinstance(value, int | float) and not isinstance(value, bool)):
        return str(value)
    errors.append(SchemaError(f"{where}{key} must be text, not {type(value).__name__}", location_of(raw, key)))
    return None


SETTINGS_KEYS = ("parallel", "shell", "files", "llm")
_PARALLEL_KEYS = ("strategy", "max_workers")
_ELSEWHERE = {
    "timeout_seconds": "config.timeout_seconds (the mission) or a step's timeout_seconds",
    "fail_fast": "config.fail_fast",
    "retry": "config.retry_attempts and config.retry_delay_ms (or a step's)",
    "on_branch_failure": "config.fail_fast and a step's continue_on_error",
    "circuit_breaker": "nothing: missions have no circuit breakers",
    "max_branches": "nothing: a mission has as many steps as it lists",
}


@dataclass(frozen=True)
class Settings:
    """The parsed block: ``plain`` is it as plain data (what steps read)."""

    plain: dict[str, Any] = field(default_factory=dict)
    strategy: str = "thread"
    max_workers: int | None = None
    options: Any = None


def plain(value: Any) -> Any:
    """``value`` with the loader's located containers turned into plain dicts and lists."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _section(raw: Mapping[str, Any], key: str, errors: list[LoadError]) -> Mapping[str, Any] | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        errors.append(SchemaError(f"settings.{key} must be a mapping, not {type(value).__name__}",
                                  location_of(raw, key)))
        return None
    return value


def parse_settings(raw: Any, doc: Mapping[str, Any], errors: list[LoadError]) -> Settings:
    """``raw`` (the mission's ``settings:``) checked; problems go to ``errors``."""
    if raw is None:
        return Settings()
    if not isinstance(raw, Mapping):
        errors.append(SchemaError(f"settings must be a mapping, not {type(raw).__name__}",
                                  location_of(doc, "settings")))
        return Settings()
    unknown_keys(raw, SETTINGS_KEYS, "settings", errors)
    shell = _section(raw, "shell", errors)
    if shell is not None:
        unknown_keys(shell, ("enabled",), "settings.shell", errors)
        boolean(shell, "enabled", errors, "settings.shell")
    files = _section(raw, "files", errors)
    if files is not None:
        unknown_keys(files, ("root",), "settings.files", errors)
        text_field(files, "root", errors, "settings.files.")
    llm = _section(raw, "llm", errors)
    if llm is not None:
        from tea.actions.llm import SETTING_KEYS  # only a mission with settings.llm pays for it

        unknown_keys(llm, SETTING_KEYS, "settings.llm", errors)
    parallel = _section(raw, "parallel", errors)
    if parallel is None:
        return Settings(plain(raw))
    strategy, max_workers, options = _parallel(parallel, errors)
    return Settings(plain(raw), strategy, max_workers, options)


def _parallel(raw: Mapping[str, Any], errors: list[LoadError]) -> tuple[str, int | None, Any]:
    # Only here: listing strategies reads entry points, which a mission without
    # settings.parallel need not pay for.
    from executors import UnknownStrategy, known_strategies, parse_options

    known = known_strategies()
    strategy = raw.get("strategy", "thread")
    if not isinstance(strategy, str) or strategy not in known:
        errors.append(SchemaError(
            f"unknown parallel strategy {strategy!r}", location_of(raw, "strategy"),
            hint=(suggest(str(strategy), known) or "") + f" known: {', '.join(known)}",
        ))
        strategy = "thread"
    for key in raw:
        if key in _ELSEWHERE:
            errors.append(SchemaError(f"settings.parallel.{key} does not apply to missions",
                                      location_of(raw, key), hint=f"use {_ELSEWHERE[key]}"))
        elif key not in _PARALLEL_KEYS and key not in known:
            hint = suggest(str(key), [*_PARALLEL_KEYS, *known])
            errors.append(SchemaError(f"unknown key '{key}' in settings.parallel", location_of(raw, key),
                                      hint=hint or f"allowed: {', '.join([*_PARALLEL_KEYS, *known])}"))
    max_workers = number(raw, "max_workers", errors, "settings.parallel", integer=True, minimum=1)
    options = None
    try:
        options = parse_options(strategy, raw.get(strategy), location_of)
    except SchemaError as exc:
        errors.append(exc)
    except UnknownStrategy as exc:
        errors.append(SchemaError(str(exc), location_of(raw, "strategy")))
    return strategy, max_workers, options
