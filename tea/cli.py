"""The ``tea`` command line. Calls the public API (and the remote entry points).

It uses ``tea``'s top level (including what a front end needs besides running:
signals, secrets, checkpoints, validation, diagrams, the schema, the progress
board), ``tea.errors``, ``tea.version``, ``tea.mission`` and ``tea.prestart`` (the
head start of the pools a file names), its own helpers (``tea._cli_io``: stdin and
the data stream; ``tea._cli_report``: logs and stream events; ``tea._cli_mission``,
``tea._cli_validate``, ``tea._cli_hosts``, ``tea._cli_checkpoints``: their
commands, the last three loaded when named), and the ``remote`` package for
``tea worker`` and ``tea bundle``.

stdout carries data only (the final state, the NDJSON events, a schema, a listing);
everything for people goes to stderr. Exit codes: 0 success; 1 the workflow failed
(a checkpoint path is printed); 2 invalid workflow, input, flag value or checkpoint;
3 stopped at an interrupt (checkpoint saved); 130 / 143 stopped by SIGINT / SIGTERM
(checkpoint saved); 141 whoever read stdout went away. No Python traceback reaches
the user unless ``-v`` asks for it.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from pathlib import Path
from typing import Any, NoReturn

import click

import tea
from tea import _cli_mission, mission
from tea._cli_io import STDIN, DataOut, PipeClosed, Stdin, dumps, load_workflow, read_object, read_secrets
from tea._cli_overrides import (
    ACTIONS_OPTIONS,
    OVERLAY_OPTIONS,
    OVERRIDE_OPTIONS,
    check_options,
    collect_overrides,
    merged_yaml,
    read_text,
)
from tea._cli_report import LIVE_EVENTS, EventStream, fail, report_branches, setup_logging
from tea.errors import InputError, RunError, TeaError
from tea.prestart import prestart
from tea.version import __version__, version_text

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED, EXIT_PIPE = 0, 1, 2, 3, 141


def _names(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(n.strip() for v in values for n in v.split(",") if n.strip())


class _Commands(click.Group):
    """The group of tea's commands; those in modules of their own load when named, so a
    ``tea run`` does not import ``validate``, ``hosts`` or ``checkpoints``."""

    _elsewhere = {"checkpoints": "tea._cli_checkpoints", "hosts": "tea._cli_hosts",
                  "validate": "tea._cli_validate"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._elsewhere})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = self._elsewhere.get(cmd_name)
        if module is None:
            return super().get_command(ctx, cmd_name)
        command: click.Command = getattr(importlib.import_module(module), cmd_name)
        return command


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", message=version_text())
def cli() -> None:
    """tea: run YAML state-graph workflows (The Edge Agent dialect).

    stdout carries only data (JSON); messages, logs and progress go to stderr.
    """


_run_options = [
    click.option("-i", "--input", "input_", metavar="JSON|@FILE|-",
                 help="Initial state (or update): JSON, @file.json, @file.yaml, or - / @- for JSON on stdin."),
    click.option("-o", "--output", metavar="FILE|-",
                 help="Write the final state to FILE (- for stdout, also with --stream)."),
    click.option("-s", "--stream", is_flag=True, help="Print the run's events on stdout as NDJSON."),
    click.option("--stream-mode", type=click.Choice(tea.STREAM_MODES), default="updates", show_default=True,
                 help="Which events --stream prints."),
    click.option("--secrets", metavar="JSON|@FILE|@-",
                 help="Secrets: JSON, @file (.json/.yaml), or @- for JSON on stdin. Never stored or logged."),
    click.option("--secrets-env", metavar="PREFIX", help="Read secrets from PREFIX_* environment variables."),
    click.option("-c", "--checkpoint-dir", type=click.Path(file_okay=False),
                 help="Where checkpoints go (default: .tea-checkpoints beside the workflow)."),
    click.option("--interrupt-before", multiple=True, metavar="NODES", help="Stop before these nodes (a,b)."),
    click.option("--interrupt-after", multiple=True, metavar="NODES", help="Stop after these nodes (a,b)."),
    *OVERLAY_OPTIONS,
    *OVERRIDE_OPTIONS,
    *ACTIONS_OPTIONS,
    click.option("-v", "--verbose", count=True, help="-v: tea's debug logs and tracebacks; -vv: libraries' too."),
    click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr (no progress, no warnings)."),
]


def run_options(fn: Any) -> Any:
    for option in reversed(_run_options):
        fn = option(fn)
    return fn


def _prepare(opts: dict[str, Any], stdin: Stdin) -> None:
    """Check the flags that go together, read the secrets and overrides, and set up logging."""
    if opts["quiet"] and opts["verbose"]:
        raise click.UsageError("-q and -v contradict each other: choose one")
    opts["overrides"] = collect_overrides(opts)
    opts["secrets_values"] = tea.Secrets(read_secrets(opts.pop("secrets"), opts.pop("secrets_env"), stdin))
    setup_logging(opts["verbose"], opts["quiet"], opts["secrets_values"])
    output = opts["output"]
    if output is not None and output != STDIN:
        if not output.strip() or Path(output).is_dir():
            raise InputError(f"--output {output!r} is not a file name", hint="give a file path, or - for stdout")
        if not Path(output).parent.is_dir():
            raise InputError(f"--output {output}: the directory {Path(output).parent} does not exist",
                             hint="create it first, or write the output elsewhere")


def _execute(workflow: tea.Workflow, opts: dict[str, Any], *, state: dict[str, Any] | None,
             checkpoint: str | None = None, force: bool = False) -> None:
    secrets: tea.Secrets = opts["secrets_values"]
    with DataOut() as out, tea.graceful_signals() as stop:
        try:
            run = workflow.run(
                state, secrets=secrets, stream_mode=opts["stream_mode"],
                checkpoint=checkpoint, checkpoint_dir=opts["checkpoint_dir"],
                interrupt_before=_names(opts["interrupt_before"]),
                interrupt_after=_names(opts["interrupt_after"]),
                force=force, stop_flag=stop, autosave=True,
            )
        except TeaError as exc:
            fail(exc, opts["verbose"], secrets=secrets)
        _drive(run, out, opts)
        if run.stopped is not None:
            _stopped(run, opts["quiet"])
        _write_final(secrets.redact(run.state), out, opts)


def _drive(run: tea.Run, out: DataOut, opts: dict[str, Any]) -> None:
    """Run to the end with a progress display, branch reports and, with ``--stream``, the events."""
    stream = EventStream(out, _run_id(run), opts["secrets_values"]) if opts["stream"] else None
    report_branches(run)
    with tea.ProgressBoard.open(False if opts["quiet"] else None) as board:
        if board.live:
            board.watch(run)
        if stream is not None:
            stream.attach(run)
        try:
            for event in run.stream():  # events come redacted
                if stream is None or event["type"] in LIVE_EVENTS:
                    continue  # branch events went out as they happened
                stream.write(event)
                if stream.closed:
                    raise PipeClosed
        except TeaError as exc:
            if run.checkpoint_path is not None:
                click.echo(f"checkpoint: {run.checkpoint_path}", err=True)
            board.close()
            fail(exc, opts["verbose"], EXIT_FAILED if isinstance(exc, RunError) else None, opts["secrets_values"])
        finally:
            if stream is not None:
                stream.detach()


def _run_id(run: tea.Run) -> str:
    """The id the run names its events and checkpoints with."""
    return run.run_id


def _stopped(run: tea.Run, quiet: bool) -> NoReturn:
    """Report a run that stopped at an interrupt or a signal (its checkpoint saved) and exit."""
    stopped = run.stopped
    assert stopped is not None
    click.echo(f"checkpoint: {run.checkpoint_path}", err=True)
    if stopped.signum is not None:
        if not quiet:
            click.echo(f"stopped by signal {stopped.signum} {stopped.position} node '{stopped.node}'", err=True)
        sys.exit(128 + stopped.signum)
    if not quiet:
        click.echo(f"interrupted {stopped.position} node '{stopped.node}'; resume with: "
                   f"tea resume {run.checkpoint_path}", err=True)
    sys.exit(EXIT_INTERRUPTED)


def _write_final(final: dict[str, Any], out: DataOut, opts: dict[str, Any]) -> None:
    """Print the final state, or write it to ``--output`` (printed instead if that fails)."""
    output = opts["output"]
    if output == STDIN:
        out.line(dumps(final) if opts["stream"] else dumps(final, indent=2))
    elif output is not None:
        try:
            Path(output).write_text(dumps(final, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            out.line(dumps(final, indent=2))
            fail(RunError(f"cannot write --output {output}: {exc.strerror}",
                           hint="the final state was printed on stdout instead"), opts["verbose"])
    elif not opts["stream"]:
        out.line(dumps(final, indent=2))


@cli.command()
@click.argument("file", metavar="FILE|-")
@run_options
@click.option("--dry-run", is_flag=True, help="A mission: check it and print its plan (order, levels, "
              "critical path) as JSON; nothing runs.")
def run(file: str, input_: str | None, dry_run: bool, **opts: Any) -> None:
    """Run a workflow (or a mission) and print its final state (its result) as JSON.

    FILE - reads the workflow from stdin."""
    stdin = Stdin()
    try:
        _prepare(opts, stdin)
        if opts.pop("dump_merged"):
            _dump_merged(file, stdin, opts["overrides"])
        if not dry_run:  # pools boot while tea loads the rest of itself and the workflow
            prestart(file, opts["overrides"])
        if _cli_mission.is_mission_file(file):
            context = read_object(input_, "--input", stdin) if input_ is not None else None
            _cli_mission.run_mission(file, opts, context, dry_run)
        if dry_run:
            raise InputError("--dry-run is for missions (a file with steps:)",
                             hint="tea validate checks a workflow without running it")
        workflow = load_workflow(file, stdin, opts["overrides"])
        state = read_object(input_, "--input", stdin) if input_ is not None else None
    except TeaError as exc:
        fail(exc, opts.get("verbose", 0))
    _execute(workflow, opts, state=state)


@cli.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("-w", "--workflow", "workflow_file", metavar="FILE|-",
              help="The workflow file, or - for stdin (default: the one recorded in the checkpoint).")
@click.option("--force", is_flag=True, help="Resume even if the workflow changed since the checkpoint.")
@run_options
def resume(checkpoint: str, workflow_file: str | None, force: bool, input_: str | None, **opts: Any) -> None:
    """Continue a run from a checkpoint, with an optional update merged into its state."""
    stdin = Stdin()
    try:
        _prepare(opts, stdin)
        ckpt = tea.load_checkpoint(Path(checkpoint))
        if mission.is_mission_checkpoint(ckpt):
            update = read_object(input_, "--input", stdin) if input_ is not None else None
            _cli_mission.resume_mission(checkpoint, opts, update, workflow_file, force)
        path = workflow_file or ckpt.workflow_path
        if not path:
            raise InputError("the checkpoint does not record its workflow", hint="pass --workflow FILE")
        if workflow_file is None and not Path(path).is_file():
            raise InputError(f"the workflow this checkpoint was saved from is gone: {path}",
                             hint="pass --workflow FILE (the same workflow, or --force for a changed one)")
        if opts.pop("dump_merged"):
            _dump_merged(path, stdin, opts["overrides"])
        workflow = load_workflow(path, stdin, opts["overrides"])
        update = read_object(input_, "--input", stdin) if input_ is not None else None
        if opts["checkpoint_dir"] is None:
            opts["checkpoint_dir"] = str(Path(checkpoint).resolve().parent)
    except TeaError as exc:
        fail(exc, opts.get("verbose", 0))
    try:
        _execute(workflow, opts, state=update, checkpoint=checkpoint, force=force)
    except TeaError as exc:
        fail(exc, opts["verbose"])


def _dump_merged(file: str, stdin: Stdin, given: list[Any]) -> NoReturn:
    """``--dump-merged``: print the workflow as the overrides leave it, and exit 0."""
    text = stdin.read("the workflow (-)") if file == STDIN else read_text(file)
    with DataOut() as out:
        out.line(merged_yaml(text, file, given).rstrip("\n"))
    sys.exit(EXIT_OK)


@cli.command()
@click.argument("file", metavar="FILE|-")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json", "mermaid", "dot"]),
              default="text", show_default=True)
@check_options
def inspect(file: str, fmt: str, **opts: Any) -> None:
    """Show a workflow's nodes, routes and fan-outs (a mission's steps and dependencies)."""
    try:
        given = collect_overrides(opts)
        if _cli_mission.is_mission_file(file):
            _cli_mission.inspect_mission(file, fmt)
            return
        workflow = load_workflow(file, Stdin(), given)
    except TeaError as exc:
        fail(exc, 0)
    click.echo(tea.render_diagram(workflow.graph, fmt))


@cli.command()
@click.option("-k", "--kind", type=click.Choice(["all", "workflow", "mission"]), default="all", show_default=True,
              help="all: a workflow or a mission, told apart by nodes: / steps:.")
def schema(kind: str) -> None:
    """Print the JSON Schema of tea's YAML, for editors (yaml-language-server) and CI.

    \b
    tea schema > tea.schema.json
    then put this line first in a workflow file:
    # yaml-language-server: $schema=./tea.schema.json
    """
    click.echo(dumps(tea.json_schema(kind), indent=2))


@cli.command(hidden=True, context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def worker(ctx: click.Context) -> None:
    """Run branch tasks from stdin (used on remote hosts; not for direct use)."""
    from remote.worker import main as worker_main

    sys.exit(worker_main(list(ctx.args)))


@cli.command()
@click.option("-o", "--output", default="dist/tea", show_default=True, type=click.Path(dir_okay=False))
def bundle(output: str) -> None:
    """Build the frozen one-file binary shipped to remote hosts (needs PyInstaller)."""
    from remote.bundle import build_bundle

    try:
        path = build_bundle(Path(output))
    except TeaError as exc:
        fail(exc, 0)
    click.echo(str(path))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    try:
        cli.main(args=args, prog_name="tea", standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
    except PipeClosed:
        # Whoever read stdout is gone: say nothing (as cat and grep), and keep the
        # interpreter's last flush of stdout from complaining.
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        sys.exit(EXIT_PIPE)
    except Exception as exc:  # a bug of ours: say so plainly, traceback only with -v
        verbose = any(a in ("-v", "--verbose") or a.startswith("-vv") for a in args)
        if verbose:
            traceback.print_exception(exc, file=sys.stderr)
        click.echo(f"internal error: {type(exc).__name__}: {exc}", err=True)
        click.echo("  hint: run again with -v for the traceback, and report it", err=True)
        sys.exit(EXIT_FAILED)
