"""The console script: answers ``--version`` before importing anything heavy."""

from __future__ import annotations

import sys


def version_text() -> str:
    """``tea <version>``, plus the build hash inside a frozen binary."""
    from tea import __version__

    try:
        from tea._build import BUILD_HASH  # type: ignore[import-not-found]
    except ImportError:
        return f"tea {__version__}"
    return f"tea {__version__} (build {BUILD_HASH})"


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        print(version_text())
        return
    from tea.cli import main as cli_main

    cli_main()
