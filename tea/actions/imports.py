"""Loading user action modules: ``imports:`` in a workflow and the ``tea.actions`` entry points.

Works exactly like the reference implementation so its users' modules load
unchanged: a module exposes ``register_actions(registry, engine)``, fills the
plain dict it is given, and each name is added as ``namespace.name`` (or as is
without a namespace). A path is relative to the workflow file. Loading the
same source under the same namespace twice is skipped. A third-party package
exposes the same function through the entry-point group ``tea.actions``; the
entry point's name is its namespace::

    [project.entry-points."tea.actions"]
    slack = "tea_slack_actions"            # a module with register_actions
    notes = "tea_notes:register_actions"   # or the function itself

Path modules are not put in ``sys.modules``, so cloudpickle sends their
functions by value to process and remote workers.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from tea.actions.registry import ActionRegistry
from tea.errors import LoadError, Location, SchemaError, WorkflowSyntaxError
from tea.yamlsrc import location_of

__all__ = ["load_entry_points", "load_imports"]

log = logging.getLogger(__name__)

_KEYS = ("path", "package", "namespace")
_CONTRACT = "register_actions(registry, engine)"


def _check_item(item: Any, where: Location) -> tuple[str, str, str]:
    """(kind, source, namespace) of one ``imports:`` entry, or ``SchemaError``."""
    if not isinstance(item, Mapping):
        raise SchemaError("an imports: entry must be a mapping like {path: x.py, namespace: x}",
                          where)
    unknown = [key for key in item if key not in _KEYS]
    if unknown:
        raise SchemaError(f"unknown key '{unknown[0]}' in imports: (allowed: {', '.join(_KEYS)})",
                          location_of(item, unknown[0]))
    kinds = [key for key in ("path", "package") if key in item]
    if len(kinds) != 1:
        raise SchemaError("an imports: entry needs exactly one of path: or package:", where,
                          hint="path: is a Python file next to the workflow; "
                               "package: is an installed module")
    kind = kinds[0]
    source, namespace = item[kind], item.get("namespace", "")
    if not isinstance(source, str) or not source:
        raise SchemaError(f"{kind}: must be a non-empty string", location_of(item, kind))
    if not isinstance(namespace, str):
        raise SchemaError("namespace: must be a string", location_of(item, "namespace"))
    return kind, source, namespace


def _exec_file(path: Path, where: Location) -> ModuleType:
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(f"_tea_import_{digest}", path)
    if spec is None or spec.loader is None:
        raise LoadError(f"cannot load '{path}' as a Python module", where)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise WorkflowSyntaxError(f"Python syntax error in action module: {exc.msg}",
                                  Location(str(path), exc.lineno, exc.offset)) from None
    except Exception as exc:
        raise LoadError(f"importing action module '{path}' failed: {type(exc).__name__}: {exc}",
                        where) from exc
    return module


def _import_package(name: str, where: Location) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise LoadError(f"cannot import package '{name}': {exc}", where,
                        hint=f"is it installed in this environment? (pip install {name})") from exc
    except Exception as exc:
        raise LoadError(f"importing package '{name}' failed: {type(exc).__name__}: {exc}",
                        where) from exc


class _ModuleRegistry(dict[str, Any]):
    """What ``register_actions(registry, engine)`` fills: its own names go here (and get
    the namespace); reading a name it did not set falls through to the full registry,
    so a module may call ``registry["llm.call"]`` as it could in the reference."""

    def __init__(self, full: ActionRegistry) -> None:
        super().__init__()
        self._full = full

    def __missing__(self, name: str) -> Any:
        return self._full[name]

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name, self._full.get(name, default))

    def __contains__(self, name: object) -> bool:
        return super().__contains__(name) or name in self._full


@dataclass
class ImportEngine:
    """The ``engine`` an action module's ``register_actions(registry, engine)`` receives:
    the workflow's variables and settings, its directory, and the action registry."""

    variables: Mapping[str, Any]
    settings: Mapping[str, Any]
    workflow_dir: Path
    actions_registry: ActionRegistry


def _register(
    registry: ActionRegistry, register: Any, namespace: str, source: str, engine: object | None,
    where: Location,
) -> None:
    if not callable(register):
        raise LoadError(f"'{source}' has no callable {_CONTRACT}", where,
                        hint="define def register_actions(registry, engine): registry['x'] = fn")
    local = _ModuleRegistry(registry)
    try:
        register(local, engine)
    except Exception as exc:
        raise LoadError(f"{_CONTRACT} of '{source}' failed: {type(exc).__name__}: {exc}",
                        where) from exc
    for name, fn in local.items():
        full = f"{namespace}.{name}" if namespace else str(name)
        if not callable(fn):
            raise LoadError(f"'{source}' registered '{name}' as {type(fn).__name__}, "
                            "not a function", where)
        if full in registry:
            log.warning("action '%s' from %s replaces an existing action", full, source)
        registry[full] = fn


def load_imports(
    registry: ActionRegistry, imports: Any, base_dir: Path, engine: object | None = None,
) -> None:
    """Load every ``imports:`` entry into ``registry`` (paths relative to ``base_dir``).

    Raises ``SchemaError`` for a malformed entry, ``WorkflowSyntaxError`` for a
    module that does not parse, ``LoadError`` for anything else, each located.
    """
    if imports is None:
        return
    if not isinstance(imports, list):
        raise SchemaError("imports: must be a list of {path|package, namespace} entries",
                          location_of(imports))
    for index, item in enumerate(imports):
        where = location_of(imports, index)
        kind, source, namespace = _check_item(item, where)
        if kind == "path":
            path = (Path(base_dir) / Path(source).expanduser()).resolve()
            key = str(path)
            if (key, namespace) in registry.loaded:
                continue
            if not path.is_file():
                raise LoadError(f"action module '{source}' not found (looked at {path})",
                                location_of(item, "path"),
                                hint="the path is relative to the workflow file")
            module = _exec_file(path, where)
        else:
            key = source
            if (key, namespace) in registry.loaded:
                continue
            module = _import_package(source, where)
        _register(registry, getattr(module, "register_actions", None), namespace, source,
                  engine, where)
        registry.loaded.add((key, namespace))


def _entry_points() -> tuple[Any, ...]:
    """The installed ``tea.actions`` entry points (the scan costs ms: read once per ``sys.path``)."""
    return _scan(tuple(sys.path))


@functools.lru_cache(maxsize=4)
def _scan(path: tuple[str, ...]) -> tuple[Any, ...]:
    from importlib.metadata import entry_points

    return tuple(entry_points(group="tea.actions"))


def load_entry_points(registry: ActionRegistry, engine: object | None = None) -> None:
    """Add the actions of every installed ``tea.actions`` entry point to ``registry``.

    A broken plugin is logged and skipped: one bad package must not stop every
    workflow; a workflow that uses its actions still fails with "unknown action".
    """
    for ep in _entry_points():
        key = (f"entry-point:{ep.value}", ep.name)
        if key in registry.loaded:
            continue
        try:
            target = ep.load()
            register = target if callable(target) else getattr(target, "register_actions", None)
            _register(registry, register, ep.name, ep.value, engine, Location())
        except Exception as exc:
            log.warning("skipping tea.actions entry point '%s' (%s): %s", ep.name, ep.value, exc)
            continue
        registry.loaded.add(key)
