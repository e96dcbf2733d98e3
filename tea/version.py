"""tea's version and the one line ``--version`` prints.

A leaf module (it imports nothing), so the console script can answer
``tea --version`` without loading the engine, and the frozen binary
(``remote.bundle``) prints the same line with its build hash added.
"""

from __future__ import annotations

__all__ = ["__version__", "version_text"]

__version__ = "0.1.0"


def version_text(build: str | None = None) -> str:
    """``tea 0.1.0``, or ``tea 0.1.0 (build 1a2b3c4d5e6f)`` for a build with that source hash."""
    return f"tea {__version__}" if build is None else f"tea {__version__} (build {build})"
