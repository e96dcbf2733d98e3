"""The ``tea`` command line. Calls only the public API (and the remote entry points).

It uses ``tea``'s top level (including what a front end needs besides
running: signals, secrets, checkpoints, validation, diagrams), ``tea.errors``
and ``tea.version``, and the ``remote`` package for ``tea worker`` and
``tea bundle``.

Exit codes: 0 success; 1 the workflow failed (a checkpoint path is printed);
2 invalid workflow, input or checkpoint; 3 stopped at an interrupt (checkpoint
saved); 130 / 143 stopped by SIGINT / SIGTERM (checkpoint saved). No Python
traceback reaches the user unless ``-v`` asks for it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import click

import tea
from tea.errors import InputError, RunError, TeaError
from tea.version import __version__, version_text

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 3
log = logging.getLogger("tea")


def _json_default(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    if isinstance(value, set | tuple):
        return list(value)
    return repr(value)


def _dumps(value: Any, indent: int | None = None) -> str:
    """Strict JSON: NaN and infinities (which JSON has no words for) become null."""
    try:
        return json.dumps(value, default=_json_default, ensure_ascii=False, indent=indent, allow_nan=False)
    except (ValueError, TypeError):
        log.warning("the output holds NaN or infinite numbers (written as null) or keys that are "
                    "not strings (written as text)")
        return json.dumps(_finite(value), default=_json_default, ensure_ascii=False, indent=indent)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _setup_logging(verbose: int, quiet: bool, secrets: Mapping[str, Any] | None = None) -> None:
    level = logging.ERROR if quiet else logging.DEBUG if verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    if secrets:
        handler.addFilter(tea.RedactingFilter(tea.Secrets(dict(secrets))))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _fail(exc: BaseException, verbose: int, code: int | None = None, secrets: Any = None) -> NoReturn:
    """Print ``exc`` for a person (a traceback only with ``-v``), redacted, and exit."""
    redact = secrets.redact_text if secrets is not None else (lambda text: text)
    if verbose:
        click.echo(redact("".join(traceback.format_exception(exc))), err=True, nl=False)
        details = getattr(exc, "details", None)
        if details:
            click.echo(redact(f"where it happened:\n{details}"), err=True)
    text = str(exc)
    location = getattr(exc, "location", None)
    located = location is not None and (location.file is not None or location.line is not None)
    prefix = "" if located and hasattr(exc, "path") else "error: "
    click.echo(redact(f"{prefix}{text}"), err=True)
    if code is None:
        code = exc.exit_code if isinstance(exc, TeaError) else EXIT_FAILED
    sys.exit(code)


def _read_object(text: str, what: str, cwd: Path) -> dict[str, Any]:
    """``JSON`` or ``@file.json`` / ``@file.yaml`` that must hold an object."""
    source = what
    if not text.strip() or text.strip() == "@":
        raise InputError(f"{what} is empty", hint="""pass a JSON object, e.g. -i '{"key": "value"}', or @file.json""")
    if text.startswith("@"):
        path = cwd / text[1:]
        source = f"{what} file {text[1:]}"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(f"{what} file not found: {text[1:]}",
                             hint="paths after @ are relative to the current directory") from None
        except OSError as exc:
            raise InputError(f"cannot read {source}: {exc}") from None
        if path.suffix in (".yaml", ".yml"):
            import yaml

            try:
                value = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise InputError(f"{source} is not valid YAML: {exc}") from None
            return _must_be_object(value, source)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{source} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            hint="""pass a JSON object, e.g. -i '{"key": "value"}', or @file.json""",
        ) from None
    return _must_be_object(value, source)


def _must_be_object(value: Any, source: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(f"{source} must be a JSON object, not {type(value).__name__}",
                         hint="""wrap it in an object, e.g. {"value": ...}""")
    return value


def _names(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(n.strip() for v in values for n in v.split(",") if n.strip())


def _secrets(secrets: str | None, secrets_env: str | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if secrets_env:
        values.update(tea.secrets_from_env(secrets_env, os.environ))
    if secrets:
        values.update(tea.parse_secrets_arg(secrets, cwd=Path.cwd()))
    return values


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", message=version_text())
def cli() -> None:
    """tea: run YAML state-graph workflows (The Edge Agent dialect)."""


_run_options = [
    click.option("-i", "--input", "input_", help="Initial state (or update): JSON, @file.json or @file.yaml."),
    click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the final state here."),
    click.option("-s", "--stream", is_flag=True, help="Print events as NDJSON."),
    click.option("--stream-mode", type=click.Choice(["updates", "values", "debug"]), default="updates",
                 show_default=True),
    click.option("--secrets", help="Secrets: JSON or @file (never stored in state or logs)."),
    click.option("--secrets-env", help="Read secrets from PREFIX_* environment variables."),
    click.option("-c", "--checkpoint-dir", type=click.Path(file_okay=False),
                 help="Where checkpoints go (default: .tea-checkpoints beside the workflow)."),
    click.option("--interrupt-before", multiple=True, help="Stop before these nodes (a,b)."),
    click.option("--interrupt-after", multiple=True, help="Stop after these nodes (a,b)."),
    click.option("-v", "--verbose", count=True, help="Debug logs and tracebacks."),
    click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr."),
]


def run_options(fn: Any) -> Any:
    for option in reversed(_run_options):
        fn = option(fn)
    return fn


def _execute(workflow: tea.Workflow, opts: dict[str, Any], *, state: dict[str, Any] | None,
             checkpoint: str | None = None, force: bool = False) -> None:
    secrets = tea.Secrets(opts["secrets_values"])
    output = Path(opts["output"]) if opts["output"] else None
    if output is not None and not output.parent.is_dir():
        _fail(InputError(f"--output {output}: the directory {output.parent} does not exist",
                         hint="create it first, or write the output elsewhere"), opts["verbose"])
    with tea.graceful_signals() as stop:
        try:
            run = workflow.run(
                state, secrets=secrets, stream_mode=opts["stream_mode"],
                checkpoint=checkpoint, checkpoint_dir=opts["checkpoint_dir"],
                interrupt_before=_names(opts["interrupt_before"]),
                interrupt_after=_names(opts["interrupt_after"]),
                force=force, stop_flag=stop, autosave=True,
            )
        except TeaError as exc:
            _fail(exc, opts["verbose"], secrets=secrets)
        try:
            for event in run.stream():  # events come redacted
                if opts["stream"]:
                    click.echo(_dumps(event))
        except TeaError as exc:
            if run.checkpoint_path is not None:
                click.echo(f"checkpoint: {run.checkpoint_path}", err=True)
            _fail(exc, opts["verbose"], EXIT_FAILED if isinstance(exc, RunError) else None, secrets)
    if run.stopped is not None:
        _stopped(run, opts["quiet"])
    _write_final(secrets.redact(run.state), output, opts)


def _stopped(run: tea.Run, quiet: bool) -> NoReturn:
    """Report a run that stopped at an interrupt or a signal (its checkpoint saved) and exit."""
    stopped = run.stopped
    assert stopped is not None
    click.echo(f"checkpoint: {run.checkpoint_path}", err=True)
    if stopped.signum is not None:
        if not quiet:
            click.echo(f"stopped by signal {stopped.signum} before node '{stopped.node}'", err=True)
        sys.exit(128 + stopped.signum)
    if not quiet:
        click.echo(f"interrupted {stopped.position} node '{stopped.node}'; resume with: "
                   f"tea resume {run.checkpoint_path}", err=True)
    sys.exit(EXIT_INTERRUPTED)


def _write_final(final: dict[str, Any], output: Path | None, opts: dict[str, Any]) -> None:
    """Print the final state, or write it to ``--output`` (printed instead if that fails)."""
    if output is not None:
        try:
            output.write_text(_dumps(final, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            click.echo(_dumps(final, indent=2))
            _fail(RunError(f"cannot write --output {output}: {exc.strerror}",
                           hint="the final state was printed on stdout instead"), opts["verbose"])
    elif not opts["stream"]:
        click.echo(_dumps(final, indent=2))


def _prepare(opts: dict[str, Any]) -> None:
    opts["secrets_values"] = _secrets(opts.pop("secrets"), opts.pop("secrets_env"))
    _setup_logging(opts["verbose"], opts["quiet"], opts["secrets_values"])


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@run_options
def run(file: str, input_: str | None, **opts: Any) -> None:
    """Run a workflow and print its final state as JSON."""
    try:
        _prepare(opts)
        workflow = tea.load(file)
        state = _read_object(input_, "--input", Path.cwd()) if input_ is not None else None
    except TeaError as exc:
        _fail(exc, opts.get("verbose", 0))
    _execute(workflow, opts, state=state)


@cli.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("-w", "--workflow", "workflow_file", type=click.Path(dir_okay=False),
              help="The workflow file (default: the one recorded in the checkpoint).")
@click.option("--force", is_flag=True, help="Resume even if the workflow changed since the checkpoint.")
@run_options
def resume(checkpoint: str, workflow_file: str | None, force: bool, input_: str | None, **opts: Any) -> None:
    """Continue a run from a checkpoint, with an optional update merged into its state."""
    try:
        _prepare(opts)
        ckpt = tea.load_checkpoint(Path(checkpoint))
        path = workflow_file or ckpt.workflow_path
        if not path:
            raise InputError("the checkpoint does not record its workflow",
                             hint="pass --workflow FILE")
        if workflow_file is None and not Path(path).is_file():
            raise InputError(f"the workflow this checkpoint was saved from is gone: {path}",
                             hint="pass --workflow FILE (the same workflow, or --force for a changed one)")
        workflow = tea.load(path)
        update = _read_object(input_, "--input", Path.cwd()) if input_ is not None else None
        if opts["checkpoint_dir"] is None:
            opts["checkpoint_dir"] = str(Path(checkpoint).resolve().parent)
    except TeaError as exc:
        _fail(exc, opts.get("verbose", 0))
    try:
        _execute(workflow, opts, state=update, checkpoint=checkpoint, force=force)
    except TeaError as exc:
        _fail(exc, opts["verbose"])


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-q", "--quiet", is_flag=True, help="Print only problems.")
def validate(files: tuple[str, ...], quiet: bool) -> None:
    """Check workflows without running them; print every problem as file:line:col: message."""
    failed = False
    for file in files:
        errors = tea.collect_errors(file)
        if errors:
            failed = True
            for error in errors:
                click.echo(str(error), err=True)
            continue
        if not quiet:
            nodes = tea.load(file).graph.nodes
            edges = sum(len(n.route.targets()) for n in nodes.values())
            click.echo(f"OK: {file} ({len(nodes)} nodes, {edges} routes)")
    sys.exit(EXIT_INVALID if failed else EXIT_OK)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json", "mermaid", "dot"]),
              default="text", show_default=True)
def inspect(file: str, fmt: str) -> None:
    """Show a workflow's nodes, routes and fan-outs."""
    try:
        workflow = tea.load(file)
    except TeaError as exc:
        _fail(exc, 0)
    click.echo(tea.render_diagram(workflow.graph, fmt))


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
        _fail(exc, 0)
    click.echo(str(path))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    try:
        cli.main(args=args, prog_name="tea", standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug of ours: say so plainly, traceback only with -v
        verbose = any(a in ("-v", "--verbose") or a.startswith("-vv") for a in args)
        if verbose:
            traceback.print_exception(exc, file=sys.stderr)
        click.echo(f"internal error: {type(exc).__name__}: {exc}", err=True)
        click.echo("  hint: run again with -v for the traceback, and report it", err=True)
        sys.exit(EXIT_FAILED)
