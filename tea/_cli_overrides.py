"""The flags that change a workflow before it is validated, shared by ``tea run``,
``tea resume`` and ``tea hosts check``: ``-C/--config``, ``--set``, ``--hosts`` and
``--strategy``, applied in that order (the YAML < ``-C`` < ``--set`` < ``--hosts`` /
``--strategy``; see ``tea.overrides``)."""

from __future__ import annotations

from typing import Any

import click

from tea import overrides

__all__ = ["OVERRIDE_OPTIONS", "collect_overrides"]

OVERRIDE_OPTIONS = [
    click.option("--strategy", metavar="NAME", help="Run every fan-out on this strategy (thread, process, ...)."),
    click.option("--hosts", metavar="SPEC|@FILE",
                 help="Remote hosts: [N/][user@]host[:port],... or @file (one a line)."),
    click.option("--set", "set_", multiple=True, metavar="KEY=VALUE",
                 help="Set a workflow key (dotted, value read as YAML), e.g. settings.parallel.max_workers=8."),
    click.option("-C", "--config", "config", multiple=True, metavar="JSON|@FILE",
                 help="A mapping merged onto the workflow (weaker than --set, --hosts, --strategy)."),
]


def collect_overrides(opts: dict[str, Any]) -> list[overrides.Override]:
    """The overrides the flags in ``opts`` ask for, strongest last; removes those flags from ``opts``."""
    found = [
        *(overrides.config(text) for text in opts.pop("config")),
        *(overrides.setting(text) for text in opts.pop("set_")),
        *([overrides.hosts(opts["hosts"])] if opts["hosts"] is not None else []),
        *([overrides.strategy(opts["strategy"])] if opts["strategy"] is not None else []),
    ]
    del opts["hosts"], opts["strategy"]
    return found
