"""README's CLI section stays true: every flag its table lists is in the ``--help`` of the
commands it names, and every tea event of its event-name mapping is a documented event."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SECTION = README.split("\n## CLI\n", 1)[1].split("\n## ", 1)[0]


def table(title_cell: str) -> list[list[str]]:
    """The rows (cells) of the table of SECTION whose header starts with ``title_cell``."""
    lines = SECTION.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {title_cell}"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def help_text(command: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "tea", command, "--help"], capture_output=True, text=True,
                          timeout=120, check=True, env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"})
    return proc.stdout


FLAG_ROWS = [(flag, commands) for flag, commands, _ in table("flag")]


@pytest.mark.parametrize(("flags", "commands"), FLAG_ROWS, ids=[row[0] for row in FLAG_ROWS])
def test_every_flag_of_the_readme_is_in_the_commands_it_names(flags: str, commands: str) -> None:
    names = re.findall(r"`(-[-\w]+)", flags)
    named = re.findall(r"`(\w+)`", commands.split("(")[0])
    if "every command that runs" in commands:
        named = ["run", "resume"]
    assert names and named
    for command in named:
        text = help_text(command)
        for name in names:
            assert re.search(rf"(^|[\s,]){re.escape(name)}\b", text), f"{name} is not an option of tea {command}"


def test_the_event_mapping_names_documented_events() -> None:
    reference = (ROOT / "docs" / "YAML_REFERENCE.md").read_text(encoding="utf-8")
    events = reference.split("### Stream events", 1)[1].split("\n### ", 1)[0]
    documented = set(re.findall(r"^\| `(\w+)` \|", events, re.M))
    rows = table("the reference")
    assert len(rows) >= 6
    for _, ours in rows:
        for event in re.findall(r"`(\w+)`", re.sub(r"\([^)]*\)", "", ours)):
            assert event in documented, f"{event} is not a documented stream event"
