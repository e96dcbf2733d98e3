"""Run-time overrides of a workflow: the same YAML on another fleet, strategy or setting.

::

    tea run flow.yaml -C '{"settings": {"parallel": {"max_workers": 8}}}' \\
        --set settings.parallel.remote.transport=gnu_parallel \\
        --hosts 2/alice@edge1,edge2:2222 --strategy remote

Each flag becomes an ``Override``: a path from the workflow's top level and a
value, deep-merged onto the document *before* it is validated, so a bad value
is reported like any other load error, located at the flag that brought it
(``--set settings.parallel.x: unknown key 'x' in settings.parallel``).
``apply`` takes them in precedence order: the YAML < ``-C`` < ``--set`` <
``--hosts``/``--strategy``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tea.errors import InputError, Location, TeaError
from tea.yamlsrc import LocDict, LocList, load_yaml

__all__ = ["PRECEDENCE", "Override", "apply", "config", "hosts", "setting", "strategy"]

PRECEDENCE = ("-C", "--set", "--hosts", "--strategy")
"""Flags from weakest to strongest (the YAML itself is weaker than all)."""


@dataclass(frozen=True)
class Override:
    """``value`` to put at ``path`` (``()``: merged onto the top level), brought by ``flag``."""

    flag: str
    path: tuple[str, ...]
    value: Any
    text: str = ""
    """What the user wrote, for error messages."""

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
    """``doc`` with ``overrides`` merged on, weakest first (see ``PRECEDENCE``); ``doc`` is
    not changed. A path through something that is not a mapping is an ``InputError``."""
    ordered = sorted(overrides, key=lambda o: PRECEDENCE.index(o.flag) if o.flag in PRECEDENCE else 0)
    for override in ordered:
        doc = _merge_at(doc, override.path, override)
    return doc


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
        out.value_locs = dict(value_locs)  # type: ignore[attr-defined]
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
