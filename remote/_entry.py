"""Entry point of the frozen binary (and of the test launcher): ``worker``, ``--version``, CLI.

``tea worker`` and ``tea --version`` are answered here so the shipped binary's
remote side never depends on how the CLI is wired; everything else goes to
``tea.cli``.
"""

from __future__ import annotations

import multiprocessing
import sys


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    # In the frozen binary, a process-strategy worker is this same executable started by
    # multiprocessing with its own arguments: freeze_support() runs it and exits.
    multiprocessing.freeze_support()
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["worker"]:
        from remote.worker import main as worker_main

        return worker_main(args[1:])
    if args[:1] == ["--version"]:
        from remote.bundle import version_line

        print(version_line())
        return 0
    from tea.cli import main as cli_main

    cli_main(args)  # click exits with the command's status
    return 0


if __name__ == "__main__":
    sys.exit(main())
