"""tea's version, the version of the reference dialect it follows, and the one line
``--version`` prints.

A leaf module (it imports nothing), so the console script can answer
``tea --version`` without loading the engine, and the frozen binary
(``remote.bundle``) prints the same line with its build hash added.
"""

from __future__ import annotations

__all__ = ["DIALECT_VERSION", "__version__", "version_text"]

__version__ = "0.1.0"

DIALECT_VERSION = "0.9.105"
"""The version of The Edge Agent (the reference implementation) whose YAML dialect and
CLI habits tea follows (see docs/YAML_REFERENCE.md for the deliberate differences)."""


def version_text(build: str | None = None) -> str:
    """``tea 0.1.0 (The Edge Agent dialect 0.9.105)``, or for a build with that source hash
    ``tea 0.1.0 (build 1a2b3c4d5e6f, The Edge Agent dialect 0.9.105)``."""
    dialect = f"The Edge Agent dialect {DIALECT_VERSION}"
    return f"tea {__version__} ({dialect})" if build is None else f"tea {__version__} (build {build}, {dialect})"
