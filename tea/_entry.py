"""The console script: answers ``--version`` before importing anything heavy."""

from __future__ import annotations

import sys


def version_text() -> str:
    """``tea <version>``; inside the frozen binary, with its build hash (``remote.bundle``)."""
    if getattr(sys, "frozen", False):
        from remote.bundle import version_line

        return version_line()
    from tea import __version__

    return f"tea {__version__}"


def _prestart_process_pool(args: list[str]) -> None:
    """For ``tea run FILE`` of a workflow that names the process strategy, boot the
    worker pool's server in the background now, while tea itself starts up."""
    if len(args) < 2 or args[0] != "run":
        return
    path = next((a for a in args[1:] if not a.startswith("-")), None)
    try:
        with open(path or "", encoding="utf-8") as file:
            if "process" not in file.read(1_000_000):
                return
    except (OSError, UnicodeDecodeError):
        return  # the CLI reports it properly
    import threading

    from executors.process import prestart

    threading.Thread(target=prestart, name="tea-forkserver-start", daemon=True).start()


def main() -> None:
    args = sys.argv[1:]
    if args == ["--version"]:
        print(version_text())
        return
    _prestart_process_pool(args)
    from tea.cli import main as cli_main

    cli_main()
