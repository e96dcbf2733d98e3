"""Reading a mission file into a ``Mission``, with every problem at its file and line.

::

    name: build              # optional (default: the file's name)
    version: "1.0"
    description: ...
    config:   {timeout_seconds, fail_fast, max_concurrent_steps, retry_attempts, retry_delay_ms}
    settings: {parallel: {strategy, max_workers, <strategy>: {...}}, shell: {enabled}, files: {root}, llm: {...}}
    steps:
      - id: compile          # letters, digits, _ (a template reads it as {{ compile.output }})
        name: ...
        step_type: command
        depends_on: [fetch]
        timeout_seconds: 60
        continue_on_error: false
        retry_attempts: 2    # per-step overrides of config's
        retry_delay_ms: 500
        parameters: {...}

``collect_errors`` returns every problem (``tea validate``); ``parse_mission``
raises them together as ``LoadErrors`` (or the one ``LoadError``). The step
checks (ids, types, parameters, dependencies, cycles, template names) live in
``tea.mission.checks``; the ``settings:`` block in ``tea.mission.schema``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tea.errors import InputError, LoadError, LoadErrors, Location, SchemaError
from tea.mission.checks import StepChecker
from tea.mission.model import CONFIG_DEFAULTS, Mission, MissionConfig
from tea.mission.schema import TOP_KEYS, boolean, number, parse_settings, text_field, unknown_keys
from tea.yamlsrc import collector_paused, load_yaml, location_of

__all__ = ["collect_errors", "load_mission", "loads_mission", "parse_mission"]


def load_mission(path: str | Path) -> Mission:
    """Read and validate the mission at ``path``; ``LoadError`` (or ``LoadErrors``) otherwise."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"mission file not found: {file}", Location(str(file))) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read mission file {file}: {exc}", Location(str(file))) from None
    return loads_mission(text, path=file)


def loads_mission(text: str, *, path: str | Path | None = None) -> Mission:
    """Validate the mission in ``text`` (``path`` names it in errors and roots its files)."""
    file = Path(path).resolve() if path is not None else None
    with collector_paused():  # nothing made here is garbage: nothing for the collector to find
        doc = load_yaml(text, str(path) if path is not None else None)
        mission = parse_mission(doc, path=file, source_hash=_source_hash(text))
        del doc  # freed now, so the collector, back on, never walks the document's ~100,000 objects
    return mission


def _source_hash(text: str) -> str:
    """``tea.checkpoint.workflow_hash`` of ``text`` (what a checkpoint records), without
    importing the checkpoint module, which a dry run or ``tea validate`` does not need."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def collect_errors(path: str | Path) -> list[LoadError]:
    """Every problem of the mission at ``path`` (empty when it is valid)."""
    try:
        load_mission(path)
    except LoadErrors as exc:
        return list(exc.errors)
    except LoadError as exc:
        return [exc]
    return []


def _raise(errors: list[LoadError]) -> None:
    errors.sort(key=lambda e: (e.location.line or 0, e.location.column or 0))
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise LoadErrors(errors)


def parse_mission(doc: Any, *, path: Path | None = None, source_hash: str = "") -> Mission:
    """``doc`` (from ``tea.yamlsrc.load_yaml``) as a ``Mission``; raises every problem found."""
    errors: list[LoadError] = []
    if not isinstance(doc, Mapping) or "steps" not in doc:
        raise SchemaError("a mission is a mapping with a 'steps' list", location_of(doc),
                          hint="see the Missions chapter of docs/YAML_REFERENCE.md")
    for key in doc:
        if key == "nodes":
            errors.append(SchemaError(
                "a mission cannot have 'nodes:'", location_of(doc, key),
                hint="a file with steps: is a mission; workflows (nodes:) are a different format",
            ))
    unknown_keys(doc, (*TOP_KEYS, "nodes"), "a mission", errors)
    name = text_field(doc, "name", errors, "") or (path.stem if path is not None else "mission")
    version = text_field(doc, "version", errors, "", numbers=True)
    description = text_field(doc, "description", errors, "")
    config = _config(doc.get("config"), errors)
    settings = parse_settings(doc.get("settings"), doc, errors)
    checker = StepChecker(settings.plain, errors)
    steps = checker.check(doc["steps"], location_of(doc, "steps"))
    _raise(errors)
    plan = checker.plan
    assert plan is not None, "no steps, or a cycle: both are errors, raised above"
    return Mission(
        name=name, version=version, description=description, config=config, steps=tuple(steps),
        plan=plan, settings=settings.plain, strategy=settings.strategy, max_workers=settings.max_workers,
        options=settings.options, path=path, source_hash=source_hash,
    )


def _config(raw: Any, errors: list[LoadError]) -> MissionConfig:
    if raw is None:
        return MissionConfig()
    if not isinstance(raw, Mapping):
        errors.append(SchemaError(f"config must be a mapping, not {type(raw).__name__}", location_of(raw)))
        return MissionConfig()
    unknown_keys(raw, tuple(CONFIG_DEFAULTS), "config", errors)
    fail_fast = boolean(raw, "fail_fast", errors, "config")
    return MissionConfig(
        timeout_seconds=number(raw, "timeout_seconds", errors, "config", above=True),
        fail_fast=True if fail_fast is None else fail_fast,
        max_concurrent_steps=number(raw, "max_concurrent_steps", errors, "config", integer=True, minimum=1),
        retry_attempts=number(raw, "retry_attempts", errors, "config", integer=True) or 0,
        retry_delay_ms=number(raw, "retry_delay_ms", errors, "config") or 0.0,
    )
