"""The command line's half of missions: ``tea run mission.yaml [--dry-run]``, ``tea resume``
of a mission checkpoint, ``tea inspect`` of a mission (``tea validate`` asks
``tea.mission.collect_errors`` directly).

A mission prints its ``MissionResult`` as JSON on stdout and exits with
``MissionResult.exit_code``: 0 completed, 1 failed, 128 + N when stopped by
signal N (its checkpoint saved, the path printed on stderr).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

import tea
from tea import mission
from tea._cli_io import STDIN, DataOut
from tea.errors import InputError

__all__ = ["inspect_mission", "is_mission_file", "resume_mission", "run_mission"]


def is_mission_file(file: str) -> bool:
    """Whether ``file`` (not stdin) holds a mission: top-level ``steps:`` and no ``nodes:``."""
    return file != STDIN and Path(file).is_file() and mission.is_mission(file)


def run_mission(file: str, opts: dict[str, Any], context: dict[str, Any] | None, dry_run: bool) -> NoReturn:
    """``tea run`` of a mission (``--dry-run``: print the plan, run nothing)."""
    _refuse_workflow_flags(opts)
    loaded = mission.load_mission(file)
    if dry_run:
        click.echo(json.dumps(mission.plan(loaded), indent=2))
        sys.exit(0)
    with DataOut() as out, tea.graceful_signals() as stop:
        result = mission.run_mission(
            loaded, context, secrets=opts["secrets_values"], stop_flag=stop,
            checkpoint_dir=opts["checkpoint_dir"], progress=False if opts["quiet"] else None,
        )
        _finish(result, out, opts["output"])


def resume_mission(checkpoint: str, opts: dict[str, Any], update: dict[str, Any] | None,
                   workflow_file: str | None, force: bool) -> NoReturn:
    """``tea resume`` of a mission checkpoint: only the steps that did not succeed run."""
    _refuse_workflow_flags(opts)
    with DataOut() as out, tea.graceful_signals() as stop:
        result = mission.resume_mission(
            checkpoint, mission=workflow_file, context=update, secrets=opts["secrets_values"],
            stop_flag=stop, checkpoint_dir=opts["checkpoint_dir"], force=force,
            progress=False if opts["quiet"] else None,
        )
        _finish(result, out, opts["output"])


def inspect_mission(file: str, fmt: str) -> None:
    """``tea inspect`` of a mission, drawn like a workflow."""
    click.echo(mission.mission_diagram(mission.load_mission(file), fmt))


def _finish(result: Any, out: DataOut, output: str | None) -> NoReturn:
    if output is None or output == STDIN:
        out.line(result.to_json())
    else:
        Path(output).write_text(result.to_json() + "\n", encoding="utf-8")
    if result.checkpoint_path is not None:
        click.echo(f"checkpoint: {result.checkpoint_path}", err=True)
    sys.exit(result.exit_code)


def _refuse_workflow_flags(opts: dict[str, Any]) -> None:
    """Flags that mean something for a workflow only are an error, not silently dropped."""
    given = [flag for flag, key in (("--stream", "stream"), ("--interrupt-before", "interrupt_before"),
                                    ("--interrupt-after", "interrupt_after"))
             if opts.get(key)]
    if opts.get("overrides"):
        given.append("--set/-C/--hosts/--strategy")
    if given:
        raise InputError(f"{', '.join(given)}: not for missions",
                         hint="a mission prints its result on stdout; its settings live in the file")
