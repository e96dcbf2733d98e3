"""The flags that change a workflow before it is validated.

``OVERRIDE_OPTIONS`` (``tea run``, ``tea resume``, ``tea hosts check``): ``-C/--config``,
``--set``, ``--hosts`` and ``--strategy``. ``OVERLAY_OPTIONS`` (``tea run``, ``tea resume``):
``-f/--overlay FILE`` and ``--dump-merged``. ``ACTIONS_OPTIONS`` (``tea run``, ``tea resume``):
``--actions-module`` and ``--actions-file``. ``CHECK_OPTIONS`` (``tea validate``, ``tea
inspect``): ``--overlay`` and the actions flags. Each becomes a
``tea.overrides.Override``, applied in the order that module gives (the YAML < ``-f`` <
``-C`` < ``--set`` < ``--hosts`` / ``--strategy``; the actions' ``imports:`` entries last).
``tea validate`` and ``tea inspect`` keep ``-f`` for ``--format``, as the reference's
``tea inspect`` does, and take overlays as ``--overlay`` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from tea import overrides
from tea.errors import InputError
from tea.yamlsrc import load_yaml

__all__ = ["ACTIONS_OPTIONS", "CHECK_OPTIONS", "OVERLAY_OPTIONS", "OVERRIDE_OPTIONS", "check_options",
           "collect_overrides", "merged_yaml", "read_text"]

OVERRIDE_OPTIONS = [
    click.option("--strategy", metavar="NAME", help="Run every fan-out on this strategy (thread, process, ...)."),
    click.option("--hosts", metavar="SPEC|@FILE",
                 help="Remote hosts: [N/][user@]host[:port],... or @file (one a line)."),
    click.option("--set", "set_", multiple=True, metavar="KEY=VALUE",
                 help="Set a workflow key (dotted, value read as YAML), e.g. settings.parallel.max_workers=8."),
    click.option("-C", "--config", "config", multiple=True, metavar="JSON|@FILE",
                 help="A mapping merged onto the workflow (weaker than --set, --hosts, --strategy)."),
]

OVERLAY_OPTIONS = [
    click.option("-f", "--overlay", "overlay", multiple=True, metavar="FILE",
                 help="A YAML overlay merged onto the workflow (repeatable, last wins): nodes merge by "
                      "name, edges by from/to, goto by to; __delete__: true removes an item."),
    click.option("--dump-merged", is_flag=True,
                 help="Print the workflow with the overlays and overrides applied (YAML) and exit."),
]

ACTIONS_OPTIONS = [
    click.option("--actions-module", "actions_module", multiple=True, metavar="MODULE",
                 help="Load actions from an importable module's register_actions(registry, engine)."),
    click.option("--actions-file", "actions_file", multiple=True, metavar="FILE.py",
                 help="Load actions from a Python file's register_actions(registry, engine)."),
]


CHECK_OPTIONS = [
    click.option("--overlay", "overlay", multiple=True, metavar="FILE",
                 help="A YAML overlay merged onto the workflow, as tea run -f FILE (repeatable)."),
    *ACTIONS_OPTIONS,
]
"""``tea validate`` and ``tea inspect``: their ``-f`` is ``--format``, so ``--overlay`` only."""


def collect_overrides(opts: dict[str, Any]) -> list[overrides.Override]:
    """The overrides the flags in ``opts`` ask for, strongest last; removes those flags from
    ``opts`` (``--dump-merged`` stays). A flag a command does not have is skipped."""
    found = [
        *(overrides.overlay(text) for text in opts.pop("overlay", ())),
        *(overrides.config(text) for text in opts.pop("config", ())),
        *(overrides.setting(text) for text in opts.pop("set_", ())),
    ]
    hosts, strategy = opts.pop("hosts", None), opts.pop("strategy", None)
    found += [overrides.hosts(hosts)] if hosts is not None else []
    found += [overrides.strategy(strategy)] if strategy is not None else []
    # The reference loads modules first, then files: a later one replaces an earlier's action.
    found += [overrides.actions_module(name) for name in opts.pop("actions_module", ())]
    found += [overrides.actions_file(text) for text in opts.pop("actions_file", ())]
    return found


def merged_yaml(text: str, file: str, given: Sequence[overrides.Override]) -> str:
    """The workflow ``text`` (read from ``file``) with ``given`` applied, as YAML in its own
    key order, multi-line strings as ``|`` blocks; not validated (``tea validate`` does that)."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        def represent_str(self, data: str) -> Any:
            style = "|" if "\n" in data else None
            return self.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    _Dumper.add_representer(str, _Dumper.represent_str)
    doc = overrides.apply(load_yaml(text, file), given)
    if doc is None:
        raise InputError(f"{file} is empty: there is nothing to merge onto")
    return yaml.dump(_plain(doc), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


def _plain(value: Any) -> Any:
    """Plain dicts and lists (the reader's carry their file locations)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def check_options(fn: Any) -> Any:
    """``fn`` with the ``CHECK_OPTIONS``."""
    for option in reversed(CHECK_OPTIONS):
        fn = option(fn)
    return fn


def read_text(file: str) -> str:
    """The text of the workflow at ``file``, an ``InputError`` when it cannot be read."""
    try:
        return Path(file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"workflow file not found: {file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read workflow {file}: {exc}") from None
