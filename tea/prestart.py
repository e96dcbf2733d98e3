"""A head start for the pools a workflow names, before tea has loaded it.

``tea run`` spends most of its first 150 ms importing itself and loading the
workflow; a process pool spends about as long booting its server. ``prestart``
reads the file's text (not its YAML: that is loading's job, and it comes later)
for the strategies it names, and asks each backend to start its machinery now
(``executors.prestart``), so the two overlap::

    settings: {parallel: {strategy: process}}      # any of these spellings count
    - {from: a, to: [b, c], parallel: true, parallel_strategy: process}
    "strategy": "process"

It is a guess, and a wrong guess is harmless: a name that is not a strategy, or
one that the run then does not use, costs at most an idle server that exits with
tea; a strategy it misses starts when the run starts, as it always did.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import executors
from tea.overrides import Override

__all__ = ["prestart", "strategies_named"]

_READ_AT_MOST = 1 << 20  # a strategy named past the first MiB just starts later
_STRATEGY = re.compile(
    r"""["']?\b(?:parallel_)?strategy["']?[ \t]*:[ \t]*["']?([A-Za-z_][\w.-]*)""",
)


def strategies_named(text: str) -> set[str]:
    """Every value written after a ``strategy:`` or ``parallel_strategy:`` key in ``text``
    (``strategy:`` followed by a nested mapping, a matrix, names nothing)."""
    return set(_STRATEGY.findall(text))


def prestart(path: str | Path, overrides: Sequence[Override] = ()) -> None:
    """Start the pools that the file at ``path`` and the command line's ``overrides``
    name. Never raises: a file that cannot be read starts nothing, and only a regular
    file is read (a pipe's data belongs to the loader)."""
    text = ""
    try:
        if Path(path).is_file():
            with open(path, encoding="utf-8", errors="replace") as file:
                text = file.read(_READ_AT_MOST)
    except OSError:
        pass
    for override in overrides:  # --strategy process, --set settings.parallel.strategy=process, -C, -f
        text += "\n" + json.dumps(_nested(override.path, override.value), default=str)
    for name in sorted(strategies_named(text)):
        executors.prestart(name)


def _nested(path: tuple[str, ...], value: Any) -> Any:
    for key in reversed(path):
        value = {key: value}
    return value
