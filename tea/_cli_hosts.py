"""``tea hosts check``: is every remote host of a workflow usable (the ``ansible -m ping``
habit). One line (or JSON object) per host: reachable, host key trusted, architecture,
binary present, workdir writable, slots, round trip; exit 0 when every host is usable,
1 otherwise, 2 for a workflow or flag that is wrong."""

from __future__ import annotations

import sys
from typing import Any

import click

from tea._cli_io import Stdin, load_workflow
from tea._cli_overrides import CHECK_OPTIONS, OVERRIDE_OPTIONS, collect_overrides
from tea._cli_report import fail, setup_logging
from tea.errors import TeaError

__all__ = ["hosts"]


@click.group()
def hosts() -> None:
    """Remote hosts of a workflow."""


def _check_options(fn: Any) -> Any:
    for option in reversed([*OVERRIDE_OPTIONS, *CHECK_OPTIONS]):
        fn = option(fn)
    return fn


@hosts.command()
@click.argument("file", metavar="FILE|-")
@_check_options
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: a table on stdout; json: a list of objects (host, ok, error, hint, arch, ...).")
@click.option("-v", "--verbose", count=True, help="-v: tea's debug logs; -vv: asyncssh's too.")
def check(file: str, fmt: str, verbose: int, **opts: Any) -> None:
    """Check every remote host FILE's fan-outs would use (with --hosts: those instead).

    \b
    tea hosts check flow.yaml --hosts @hosts.txt
    tea hosts check flow.yaml --format json | jq '.[] | select(.ok | not)'
    """
    from remote.check import check_workflow, render_json, render_text

    setup_logging(verbose, False, None)
    try:
        workflow = load_workflow(file, Stdin(), collect_overrides(opts))
        reports = check_workflow(workflow)
    except TeaError as exc:
        fail(exc, verbose)
    click.echo(render_json(reports) if fmt == "json" else render_text(reports))
    sys.exit(0 if all(r.ok for r in reports) else 1)
