"""The ``tea`` console script: answers ``--version`` before importing anything heavy."""

from __future__ import annotations

import sys

from tea.version import version_text


def main() -> None:
    """Run the ``tea`` command line with ``sys.argv``."""
    if sys.argv[1:] == ["--version"]:
        print(version_text())
        return
    # Here, not at the top: click and the engine load only for a real command.
    from tea.cli import main as cli_main

    cli_main()
