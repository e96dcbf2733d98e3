"""Run-time overrides of a workflow: the same YAML on another fleet, strategy or setting.

::

    tea run flow.yaml -f prod.yaml -C '{"settings": {"parallel": {"max_workers": 8}}}' \\
        --set settings.parallel.remote.transport=gnu_parallel \\
        --hosts 2/alice@edge1,edge2:2222 --strategy remote --actions-file my_actions.py

Each flag becomes an ``Override``: a path from the workflow's top level and a
value, deep-merged onto the document *before* it is validated, so a bad value
is reported like any other load error, located at the flag that brought it
(``--set settings.parallel.x: unknown key 'x' in settings.parallel``), or for an
overlay file at its own line. ``apply`` takes them in precedence order: the YAML <
``-f`` overlays (in the order given) < ``-C`` < ``--set`` < ``--hosts``/``--strategy``.

Three kinds of merge (``Override.kind``):

- ``merge`` (``-C``, ``--set``, ``--hosts``, ``--strategy``): mappings merge key by
  key, anything else (lists included) is replaced.
- ``overlay`` (``-f/--overlay FILE``): the reference implementation's rules (its
  ``tea run -f``): mappings merge key by key; the lists ``nodes`` (by ``name``),
  ``edges`` (by ``from`` + ``to``) and ``goto`` (by ``to``) merge item by item, an
  item with ``__delete__: true`` removing its match and an unmatched item appended;
  other lists are replaced; a ``null`` replaces.
- ``import`` (``--actions-module``, ``--actions-file``): an ``imports:`` entry without
  a namespace, put before the workflow's own entries, so the built-ins < the flags'
  actions < the workflow's ``imports:``, as in the reference.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tea.errors import InputError, Location, TeaError
from tea.yamlsrc import LocDict, LocList, load_yaml, location_of

__all__ = ["PRECEDENCE", "Override", "actions_file", "actions_module", "apply", "config", "hosts", "overlay",
           "setting", "strategy"]

PRECEDENCE = ("-f", "-C", "--set", "--hosts", "--strategy")
"""Flags from weakest to strongest (the YAML itself is weaker than all). The ``import``
overrides stand apart: they only add ``imports:`` entries, after every other merge."""

_KEYED_LISTS = {"nodes": ("name",), "edges": ("from", "to"), "goto": ("to",)}
"""The lists an overlay merges item by item, and the keys that identify an item."""

_DELETE = "__delete__"


@dataclass(frozen=True)
class Override:
    """``value`` to put at ``path`` (``()``: merged onto the top level), brought by ``flag``."""

    flag: str
    path: tuple[str, ...]
    value: Any
    text: str = ""
    """What the user wrote, for error messages."""
    kind: str = "merge"
    """``merge``, ``overlay`` or ``import`` (see the module docstring)."""

    @property
    def location(self) -> Location:
        """Where a problem with this override is reported: the flag as written."""
        return Location(f"{self.flag} {self.text}".strip())


def config(text: str) -> Override:
    """``-C/--config``: a JSON mapping, or ``@file.json`` / ``@file.yaml``."""
    value = _read_value(text, "-C")
    if not isinstance(value, Mapping):
        raise InputError(f"-C {text!r:.60}: must be a mapping of settings to merge onto the workflow",
                         hint="-C '{\"settings\": {\"parallel\": {\"max_workers\": 8}}}'")
    return Override("-C", (), value, text)


def setting(text: str) -> Override:
    """``--set KEY=VALUE``: a dotted path from the workflow's top level, the value read as YAML."""
    key, sep, raw = text.partition("=")
    path = tuple(part.strip() for part in key.split("."))
    if not sep or not all(path):
        raise InputError(f"--set {text!r}: write KEY=VALUE with a dotted KEY",
                         hint="--set settings.parallel.remote.transport=gnu_parallel")
    return Override("--set", path, _yaml(raw, f"--set {text}"), text)


def overlay(text: str, cwd: Path | None = None) -> Override:
    """``-f/--overlay FILE``: a YAML mapping (an empty file is an empty one) merged by the
    reference's rules; what it brings keeps its own file and line for error messages."""
    path = (cwd or Path.cwd()) / text
    try:
        content = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"-f {text}: overlay file not found", hint="the path is relative to the "
                         "current directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"-f {text}: cannot read {path}: {getattr(exc, 'strerror', exc)}") from None
    value = load_yaml(content, text)  # a syntax error is located in the overlay itself
    if value is None:
        value = LocDict()
    if not isinstance(value, Mapping):
        kind = "a list" if isinstance(value, list) else type(value).__name__
        raise InputError(f"-f {text}: an overlay must be a mapping (like the workflow), not {kind}",
                         hint="nodes: [{name: a, run: ...}] changes node a")
    return Override("-f", (), value, text, kind="overlay")


def actions_file(text: str, cwd: Path | None = None) -> Override:
    """``--actions-file FILE.py``: a Python file with ``register_actions(registry, engine)``."""
    path = ((cwd or Path.cwd()) / text).resolve()
    if not path.is_file():
        raise InputError(f"--actions-file {text}: no such file ({path})",
                         hint="the path is relative to the current directory")
    return Override("--actions-file", ("imports",), {"path": str(path)}, text, kind="import")


def actions_module(name: str) -> Override:
    """``--actions-module MODULE``: an importable module with ``register_actions(registry, engine)``."""
    if not name.strip():
        raise InputError("--actions-module: give a module name", hint="--actions-module my_package.actions")
    return Override("--actions-module", ("imports",), {"package": name.strip()}, name, kind="import")


def strategy(name: str) -> Override:
    """``--strategy NAME``: ``settings.parallel.strategy`` (checked like the YAML's)."""
    return Override("--strategy", ("settings", "parallel", "strategy"), name, name)


def hosts(spec: str, cwd: Path | None = None) -> Override:
    """``--hosts SPEC``: ``[N/][user@]host[:port]`` entries separated by commas, or
    ``@FILE`` with one entry a line (``#`` comments and blank lines skipped), as GNU
    Parallel's ``--sshlogin``/``--sshloginfile``. Replaces ``settings.parallel.remote.hosts``;
    the remote strategy checks each entry."""
    if spec.startswith("@"):
        path = (cwd or Path.cwd()) / spec[1:]
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"--hosts {spec}: cannot read {path}: {getattr(exc, 'strerror', exc)}",
                             hint="one [N/][user@]host[:port] a line; # starts a comment") from None
        entries = [line.split("#", 1)[0].strip() for line in lines]
    else:
        entries = [part.strip() for part in spec.split(",")]
    entries = [entry for entry in entries if entry]
    if not entries:
        raise InputError(f"--hosts {spec!r}: no hosts given",
                         hint="--hosts alice@edge1,2/edge2:2222 or --hosts @hosts.txt")
    return Override("--hosts", ("settings", "parallel", "remote", "hosts"), entries, spec)


def apply(doc: Any, overrides: Iterable[Override]) -> Any:
    """``doc`` with ``overrides`` merged on, each by its kind (module docstring), weakest
    first (see ``PRECEDENCE``), the ``imports:`` entries last; ``doc`` is not changed. A
    path through something that is not a mapping is an ``InputError``."""
    ordered = sorted(overrides, key=lambda o: PRECEDENCE.index(o.flag) if o.flag in PRECEDENCE else 0)
    for override in ordered:
        if override.kind == "overlay":
            doc = _overlay(doc, override.value, "")
        elif override.kind == "merge":
            doc = _merge_at(doc, override.path, override)
    actions = [override for override in ordered if override.kind == "import"]
    return _with_imports(doc, actions) if actions else doc


def _overlay(base: Any, value: Any, name: str) -> Any:
    """``value`` merged onto ``base`` by the reference's overlay rules; ``name`` is the key
    that holds them (it says whether a list merges item by item)."""
    if value is None or base is None:
        return value
    if isinstance(base, list) and isinstance(value, list):
        keys = _KEYED_LISTS.get(name)
        return _overlay_items(base, value, keys) if keys else value
    if not isinstance(base, Mapping) or not isinstance(value, Mapping):
        return value
    out = _copy_mapping(base)
    for key, item in value.items():
        if key == _DELETE:
            continue
        out[key] = _overlay(base[key], item, key) if key in base else item
        out.key_locs[key] = location_of(value, key)
        value_locs = getattr(out, "value_locs", None)
        if value_locs is not None:
            value_locs[key] = getattr(value, "value_locs", {}).get(key, out.key_locs[key])
    return out


def _overlay_items(base: list[Any], value: list[Any], keys: tuple[str, ...]) -> LocList:
    """A keyed list merged item by item: a match is merged, ``__delete__: true`` removes it,
    anything else is appended."""
    items = [[item, location_of(base, i)] for i, item in enumerate(base)]
    index = {_item_key(item, keys): i for i, (item, _) in enumerate(items)}
    index.pop(None, None)
    deleted: set[int] = set()
    for i, item in enumerate(value):
        key = _item_key(item, keys)
        if isinstance(item, Mapping) and item.get(_DELETE):
            if key in index:
                deleted.add(index[key])
        elif key is not None and key in index:
            items[index[key]][0] = _overlay(items[index[key]][0], item, "")
        else:
            if key is not None:
                index[key] = len(items)
            items.append([item, location_of(value, i)])
    kept = [pair for i, pair in enumerate(items) if i not in deleted]
    out = LocList(item for item, _ in kept)
    out.loc = getattr(base, "loc", Location())
    out.item_locs = [where for _, where in kept]
    return out


def _item_key(item: Any, keys: tuple[str, ...]) -> tuple[Any, ...] | None:
    """What identifies ``item`` in a keyed list (``None``: nothing, it is appended)."""
    if not isinstance(item, Mapping) or not all(k in item for k in keys):
        return None
    key = tuple(item[k] for k in keys)
    return key if all(isinstance(part, str | int | float | bool) for part in key) else None


def _with_imports(doc: Any, actions: Sequence[Override]) -> Any:
    """``doc`` with the ``--actions-*`` entries before its own ``imports:`` (a document or an
    ``imports:`` that is malformed is left for the loader to report)."""
    existing = doc.get("imports") if isinstance(doc, Mapping) else None
    if not isinstance(doc, Mapping) or not isinstance(existing, list | None):
        return doc
    entries = LocList(_located(action.value, action) for action in actions)
    entries.item_locs = [action.location for action in actions]
    for i, item in enumerate(existing or []):
        entries.append(item)
        entries.item_locs.append(location_of(existing, i))
    entries.loc = getattr(existing, "loc", actions[0].location)
    out = _copy_mapping(doc)
    out["imports"] = entries
    out.key_locs.setdefault("imports", actions[0].location)
    return out


def _merge_at(doc: Any, path: Sequence[str], override: Override) -> Any:
    if not path:
        return _deep_merge(doc, override.value, override)
    if doc is None:
        doc = LocDict()
    if not isinstance(doc, Mapping):
        raise InputError(f"{override.flag} {override.text}: {'.'.join(path)} is inside a value that "
                         "is not a mapping", hint="check the dotted path against the workflow")
    out = _copy_mapping(doc)
    head = path[0]
    out[head] = _merge_at(doc.get(head), path[1:], override) if len(path) > 1 else _located(
        override.value, override
    )
    _mark(out, head, override)
    return out


def _deep_merge(base: Any, value: Any, override: Override) -> Any:
    if not isinstance(base, Mapping) or not isinstance(value, Mapping):
        return _located(value, override)
    out = _copy_mapping(base)
    for key, item in value.items():
        out[key] = _deep_merge(base.get(key), item, override)
        _mark(out, key, override)
    return out


def _mark(out: LocDict, key: str, override: Override) -> None:
    """``key`` of ``out`` now comes from ``override``: errors about it point at the flag."""
    out.key_locs[key] = override.location
    value_locs = getattr(out, "value_locs", None)
    if value_locs is not None:
        value_locs[key] = override.location


def _copy_mapping(doc: Mapping[str, Any]) -> LocDict:
    out = LocDict(doc)
    out.loc = getattr(doc, "loc", Location())
    out.key_locs = dict(getattr(doc, "key_locs", {}))
    value_locs = getattr(doc, "value_locs", None)
    if value_locs is not None:
        out.value_locs = dict(value_locs)
    return out


def _located(value: Any, override: Override) -> Any:
    """``value`` with every mapping and list located at the override's flag."""
    where = override.location
    if isinstance(value, Mapping):
        out = LocDict({k: _located(v, override) for k, v in value.items()})
        out.loc = where
        out.key_locs = dict.fromkeys(out, where)
        return out
    if isinstance(value, list):
        items = LocList(_located(v, override) for v in value)
        items.loc = where
        items.item_locs = [where] * len(items)
        return items
    return value


def _read_value(text: str, flag: str) -> Any:
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            content = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{flag} {text}: cannot read {path}: {getattr(exc, 'strerror', exc)}") from None
        if path.suffix in (".yaml", ".yml"):
            return _yaml(content, f"{flag} {text}")
        text = content
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InputError(f"{flag}: not valid JSON: {exc}", hint="quote it for the shell: -C '{...}'") from None


def _yaml(text: str, where: str) -> Any:
    try:
        return load_yaml(text, where)
    except TeaError as exc:  # a syntax error: the flag is at fault
        raise InputError(f"{where}: the value is not valid YAML ({exc.message})") from None
