"""``tea validate``: check workflows without running them.

Every load error of each file is reported (``file:line:col: message``), and so is every
warning loading logs (logger ``tea``: a ``run:`` block holding templates, an imported
action replacing another, ...). Warnings do not fail the check unless ``--strict`` makes
them errors, as the reference's ``tea validate --strict`` does. Exit 0 when every file is
valid, 2 otherwise.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click

import tea
from tea import mission
from tea._cli_io import STDIN, Stdin, dumps, load_workflow
from tea._cli_overrides import check_options, collect_overrides
from tea._cli_report import fail, setup_logging
from tea.errors import LoadError, LoadErrors, Location, TeaError
from tea.graph import START
from tea.overrides import Override

__all__ = ["validate"]

EXIT_OK, EXIT_INVALID = 0, 2

_LOCATED = re.compile(r"(?P<file>[^\s:][^:\n]*):(?P<line>\d+)(?::(?P<column>\d+))?: (?P<message>.*)", re.S)
"""A message that starts with ``file:line[:column]: `` (how tea locates what it logs)."""


class _Warnings(logging.Handler):
    """The distinct messages of the WARNING records logged while it is attached."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message not in self.messages:  # a file is loaded twice (errors, then the workflow)
            self.messages.append(message)


@contextmanager
def _warnings_of_loading() -> Iterator[_Warnings]:
    handler = _Warnings()
    logger = logging.getLogger("tea")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _problems(file: str, stdin: Stdin, given: Sequence[Override]) -> tuple[list[LoadError], tea.Workflow | None]:
    """Every load problem of ``file`` (``-``: stdin), and the workflow when there is none
    (``None`` for a mission, a file with ``steps:`` and no ``nodes:``)."""
    if file != STDIN:
        if mission.is_mission(file):
            return mission.collect_errors(file), None
        errors = tea.collect_errors(file, given)
        return errors, None if errors else tea.load(file, overrides=given)
    try:
        return [], load_workflow(file, stdin, given)
    except LoadErrors as exc:
        return list(exc.errors), None
    except LoadError as exc:
        return [exc], None


def _warning(message: str, file: str) -> LoadError:
    """A logged warning as a problem of ``file``, at the line its text starts with, if any."""
    found = _LOCATED.match(message)
    if found is None:
        return LoadError(message, Location(file))
    column = found["column"]
    where = Location(found["file"], int(found["line"]), int(column) if column else None)
    return LoadError(found["message"], where)


def _unreached(workflow: tea.Workflow) -> list[str]:
    """A warning for each node no route leads to from the entry (the reference's strict
    UNREFERENCED_NODE): dead code, or a route that was meant to reach it."""
    graph = workflow.graph
    routes = [graph.start_route.targets()] if graph.entry == START and graph.start_route else [[graph.entry]]
    seen: set[str] = set()
    todo = [name for targets in routes for name in targets]
    while todo:
        name = todo.pop()
        node = graph.nodes.get(name)
        if name in seen or node is None:
            continue
        seen.add(name)
        todo += node.route.targets()
        if node.fanout is not None:
            todo.append(node.fanout.fan_in)
        fallback = getattr(node.error_policy, "fallback", None)
        if isinstance(fallback, str):
            todo.append(fallback)
    return [f"node '{name}' is never reached: no route leads to it from the entry"
            for name in graph.nodes if name not in seen]


def _problem(error: LoadError, severity: str) -> dict[str, Any]:
    where = error.location
    return {"file": where.file, "line": where.line, "column": where.column, "message": error.message,
            "hint": error.hint, "path": error.path, "severity": severity}


def _github(error: LoadError, level: str = "error") -> str:
    """A GitHub Actions annotation: ``::error file=f,line=l,col=c,title=...::message``."""

    def data(text: str) -> str:
        return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    def prop(text: str) -> str:
        return data(text).replace(":", "%3A").replace(",", "%2C")

    where = error.location
    props = [f"file={prop(where.file)}"] if where.file else []
    props += [f"line={where.line}"] if where.line else []
    props += [f"col={where.column}"] if where.column else []
    props.append("title=tea validate")
    message = error.message + (f"\nhint: {error.hint}" if error.hint else "")
    return f"::{level} {','.join(props)}::{data(message)}"


def _check(file: str, stdin: Stdin, given: Sequence[Override], strict: bool) -> dict[str, Any]:
    """The report of one file: its errors, its warnings (errors too with ``strict``), its size."""
    with _warnings_of_loading() as caught:
        errors, workflow = _problems(file, stdin, given)
    messages = caught.messages + (_unreached(workflow) if workflow is not None else [])
    warnings = [_warning(message, file) for message in messages]
    failing = errors + warnings if strict else errors
    entry: dict[str, Any] = {
        "file": file, "valid": not failing,
        "problems": [_problem(e, "error") for e in errors] + [_problem(w, "warning") for w in warnings],
        "errors": errors, "warnings": warnings,
    }
    if workflow is not None:
        nodes = workflow.graph.nodes
        entry["nodes"] = len(nodes)
        entry["routes"] = sum(len(n.route.targets()) for n in nodes.values())
    return entry


def _print(entry: dict[str, Any], fmt: str, quiet: bool, strict: bool) -> None:
    """One file's result in the ``text`` or ``github`` format."""
    errors: list[LoadError] = entry["errors"]
    warnings: list[LoadError] = entry["warnings"]
    if fmt == "github":
        for error in errors:
            click.echo(_github(error))
        for warning in warnings:
            click.echo(_github(warning, "error" if strict else "warning"))
        return
    for error in errors:
        click.echo(str(error), err=True)
    for warning in warnings:
        click.echo(f"{warning.location}: warning: {warning.message}", err=True)
    if entry["valid"] and not quiet:
        size = f"{entry['nodes']} nodes, {entry['routes']} routes" if "nodes" in entry else "a mission"
        click.echo(f"OK: {entry['file']} ({size})")


@click.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE|-...")
@click.option("-q", "--quiet", is_flag=True, help="Print only problems.")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json", "github"]), default="text",
              show_default=True,
              help="text: file:line:col: message on stderr; json: a report on stdout; github: annotations.")
@click.option("--strict", is_flag=True, help="Warnings count as errors (exit 2).")
@check_options
def validate(files: tuple[str, ...], quiet: bool, fmt: str, strict: bool, **opts: Any) -> None:
    """Check workflows without running them; exit 2 if any has a problem.

    Warnings (printed, not failing) fail the check with --strict."""
    setup_logging(0, True)
    try:
        given = collect_overrides(opts)
    except TeaError as exc:
        fail(exc, 0)
    stdin = Stdin()
    report = [_check(file, stdin, given, strict) for file in files]
    if fmt == "json":
        for entry in report:
            del entry["errors"], entry["warnings"]
        click.echo(dumps({"valid": all(e["valid"] for e in report), "strict": strict, "files": report}, indent=2))
    else:
        for entry in report:
            _print(entry, fmt, quiet, strict)
    sys.exit(EXIT_OK if all(e["valid"] for e in report) else EXIT_INVALID)
