"""The document around the nodes: top-level keys, settings, config, state schema, imports.

Part of loading (``tea.loader``): ``read_document`` checks everything but the
nodes and edges and returns it as a ``Document``, reporting problems into the
shared ``Problems`` so that one run of ``tea validate`` lists them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from executors.base import ParallelConfig
from tea.actions import ActionRegistry, builtin_registry, load_imports
from tea.actions.imports import ImportEngine
from tea.dialect import normalize_document
from tea.errors import Location, SchemaError
from tea.io_schema import IOSchema, is_check_form, parse_io_schema
from tea.keys import suggest
from tea.parallel_settings import DEFAULT_MAX_BRANCHES, max_branches, parse_parallel_config
from tea.problems import Problems
from tea.state import Reducer, known_reducers, reducer_for
from tea.yamlsrc import location_of

__all__ = ["CONFIG_KEYS", "TOP_LEVEL_KEYS", "Document", "read_document"]

TOP_LEVEL_KEYS = frozenset({
    "name", "description", "version", "variables", "data", "state_schema", "initial_state",
    "settings", "config", "imports", "nodes", "edges", "input_schema", "output_schema",
    # read by validate.extraction (the reference's LLM extraction validation)
    "extraction_schema", "semantic_probes", "validation_logging", "validation_constraints",
})
CONFIG_KEYS = frozenset({"interrupt_before", "interrupt_after", "checkpoint_dir",
                         "checkpoint_interval_seconds", "raise_exceptions", "checkpoint",
                         "recursion_limit"})

@dataclass
class Document:
    """Everything of a workflow document but its nodes and edges, checked."""

    raw: Mapping[str, Any]
    settings: Mapping[str, Any]
    config: Mapping[str, Any]
    parallel: ParallelConfig
    parallel_raw: Any
    reducers: dict[str, Reducer]
    registry: ActionRegistry | None
    lua_settings: Any = None
    recursion_limit: int = 10_000
    max_branches: int = DEFAULT_MAX_BRANCHES
    interrupt_before: frozenset[str] = frozenset()
    interrupt_after: frozenset[str] = frozenset()
    variables: Mapping[str, Any] = field(default_factory=dict)
    input_schema: IOSchema | None = None
    output_schema: IOSchema | None = None

    def parse_parallel(self, raw: Any, base: ParallelConfig, path: str) -> ParallelConfig:
        """An override of ``settings.parallel`` (an edge's keys, a dynamic node's ``parallel:``)."""
        return parse_parallel_config(raw, base=base, inherited=self.parallel_raw, path=path)

def read_document(doc: Any, path: Path | None, problems: Problems) -> Document:
    """Check the document's top level; raises at once only when nothing else can be read."""
    if not isinstance(doc, Mapping):
        raise SchemaError("a workflow must be a YAML mapping with a 'nodes' list", Location(problems.file, 1, 1))
    doc = normalize_document(doc, problems)
    for key in doc:
        if key not in TOP_LEVEL_KEYS:
            problems.add(SchemaError(f"unknown top-level key '{key}'", location_of(doc, key),
                                     hint=suggest(str(key), TOP_LEVEL_KEYS)
                                     or f"allowed: {', '.join(sorted(TOP_LEVEL_KEYS))}"))
    settings = doc.get("settings") or {}
    if not isinstance(settings, Mapping):
        raise SchemaError("settings must be a mapping", location_of(doc, "settings"))
    for key in ("variables", "data", "initial_state", "config"):
        if doc.get(key) is not None and not isinstance(doc.get(key), Mapping):
            problems.add(SchemaError(f"'{key}' must be a mapping", location_of(doc, key)))
    parallel_raw = settings.get("parallel")
    raw_config = doc.get("config")
    config: Mapping[str, Any] = raw_config if isinstance(raw_config, Mapping) else {}
    document = Document(
        raw=doc,
        settings=settings,
        config=config,
        parallel=problems.guard(lambda: parse_parallel_config(parallel_raw), ParallelConfig()),
        parallel_raw=parallel_raw,
        reducers=problems.guard(lambda: _reducers(doc.get("state_schema")), {}),
        registry=problems.guard(lambda: _registry(doc, path), None),
        lua_settings=problems.guard(lambda: _lua_settings(settings), None),
        max_branches=problems.guard(lambda: max_branches(parallel_raw), DEFAULT_MAX_BRANCHES),
        variables=doc.get("variables") or {},
        input_schema=problems.guard(lambda: parse_io_schema(doc.get("input_schema"), "input_schema"), None),
        output_schema=problems.guard(lambda: _output_schema(doc, problems), None),
    )
    _read_config(document, problems)
    budget = settings.get("step_budget")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
        problems.add(SchemaError("settings.step_budget must be a positive integer",
                                 location_of(settings, "step_budget"),
                                 hint="the node steps the whole run may take, branches included"))
    return document


def _output_schema(doc: Mapping[str, Any], problems: Problems) -> IOSchema | None:
    """``output_schema`` as fields to check; the reference's other form (a mapping of
    templates shaping what its ``invoke()`` returns) leaves the state alone: ignored."""
    raw = doc.get("output_schema")
    if raw is not None and not is_check_form(raw):
        problems.warn("output_schema is ignored: it is a mapping of values/templates (the reference's "
                      "shaping of its invoke() result), not fields to check", location_of(doc, "output_schema"),
                      "to check the final state, give each field a type: {answer: {type: str, required: true}}")
        return None
    return parse_io_schema(raw, "output_schema")

def _read_config(document: Document, problems: Problems) -> None:
    config, settings = document.config, document.settings
    for key in config:
        if key in CONFIG_KEYS:
            continue
        near = suggest(str(key), CONFIG_KEYS)
        if near:  # a typo of a key tea reads: never silently ignored
            problems.add(SchemaError(f"unknown key '{key}' in config", location_of(config, key), hint=near))
        else:  # as the reference does with a config key it does not read
            problems.warn(f"config.{key} is ignored", location_of(config, key),
                          f"config takes {', '.join(sorted(CONFIG_KEYS))}")
    document.interrupt_before = _interrupts(config, "interrupt_before", problems)
    document.interrupt_after = _interrupts(config, "interrupt_after", problems)
    interval = config.get("checkpoint_interval_seconds", 0.1)
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval < 0:
        problems.add(SchemaError("config.checkpoint_interval_seconds must be a number >= 0",
                                 location_of(config, "checkpoint_interval_seconds"),
                                 hint="0 saves progress after every node; the default is 0.1"))
    limit = settings.get("recursion_limit", config.get("recursion_limit", 10_000))
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        problems.add(SchemaError("recursion_limit must be a positive integer",
                                 location_of(settings, "recursion_limit")))
        limit = 10_000
    document.recursion_limit = limit

def _interrupts(config: Mapping[str, Any], key: str, problems: Problems) -> frozenset[str]:
    def names() -> frozenset[str]:
        return _names(config.get(key), location_of(config, key), f"config.{key}")

    return problems.guard(names, frozenset())


def _lua_settings(settings: Mapping[str, Any]) -> Any:
    """``settings.lua`` checked at load time (``None``: defaults, built on first Lua use)."""
    if settings.get("lua") is None:
        return None
    from tea.lua import LuaSettings  # lupa loads only for workflows that configure Lua

    try:
        return LuaSettings.from_mapping(settings["lua"])
    except (ValueError, TypeError) as exc:
        raise SchemaError(str(exc), location_of(settings, "lua"),
                          hint="settings.lua takes sandbox, timeout_seconds and max_memory_mb") from None

def _reducers(schema: Any) -> dict[str, Reducer]:
    if schema is None:
        return {}
    if not isinstance(schema, Mapping):
        raise SchemaError("state_schema must be a mapping of key: type", location_of(schema))
    reducers = {}
    for key, spec in schema.items():
        if isinstance(spec, Mapping) and "reducer" in spec:
            name = spec["reducer"]
            try:
                reducers[key] = reducer_for(str(name), spec.get("type"))
            except KeyError:
                raise SchemaError(
                    f"state_schema.{key}: unknown reducer '{name}'",
                    location_of(spec, "reducer"),
                    hint=suggest(str(name), known_reducers())
                    or f"known reducers: {', '.join(known_reducers())}",
                ) from None
    return reducers

def _registry(doc: Mapping[str, Any], path: Path | None) -> ActionRegistry:
    registry = builtin_registry(entry_points=False)
    imports = doc.get("imports")
    if imports:
        if not isinstance(imports, list):
            raise SchemaError("imports must be a list", location_of(doc, "imports"))
        base = path.parent if path else Path.cwd()
        engine = ImportEngine(doc.get("variables") or {}, doc.get("settings") or {}, base, registry)
        load_imports(registry, imports, base, engine)
    return registry

def _names(raw: Any, where: Location, what: str) -> frozenset[str]:
    if raw is None:
        return frozenset()
    if isinstance(raw, str):
        return frozenset(n.strip() for n in raw.split(",") if n.strip())
    if isinstance(raw, list) and all(isinstance(n, str) for n in raw):
        return frozenset(raw)
    raise SchemaError(f"{what} must be a list of node names", where)
