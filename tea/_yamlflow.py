"""The fast reader's one-line flow style: ``[a, b]``, ``{k: v}`` and quoted scalars.

``FlowReader.value`` reads one flow collection or scalar that starts and ends on
one line, as located data (``LocList``, ``LocDict``, scalars), and tells where it
ends. Anything it does not read the way PyYAML would (a trailing comma, an empty
value, a collection as a key, a backslash escape, a line break inside) raises
``NotSimple``, and ``tea.yamlsrc`` hands the whole document to PyYAML.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tea._yamlloc import SHIFT, LocDict, LocList

__all__ = ["FlowReader", "NotSimple"]


class NotSimple(Exception):
    """The text is outside what the fast reader reads: parse it with PyYAML."""


_SINGLE = re.compile(r"'((?:[^']|'')*)'")
_DOUBLE = re.compile(r'"([^"\\]*)"')
_NAMES = re.compile(r"\[((?: *[A-Za-z_][\w.\-/]* *,)* *[A-Za-z_][\w.\-/]* *)\]")  # [a, b ,c]
_FLOW_PLAIN = re.compile(r"-?[^\s\-?:,\[\]{}#&*!|>'\"%@`][^:,\[\]{}#]*")


class FlowReader:
    """Reads the flow collections and quoted scalars of one file.

    ``plain`` turns a plain scalar's text into its value; it raises ``NotSimple``
    for a value it does not make.
    """

    def __init__(self, file: str | None, plain: Callable[[str], Any]) -> None:
        self.file = file
        self.plain = plain

    def value(self, line: str, start: int, row: int) -> tuple[Any, int]:
        """The flow collection or scalar at ``line[start:]`` (0-based ``row``); the value and the index after it."""
        first = line[start]
        if first == "[":
            return self.flow_list(line, start, row)
        if first == "{":
            return self.flow_map(line, start, row)
        found = (_SINGLE if first == "'" else _DOUBLE if first == '"' else _FLOW_PLAIN).match(line, start)
        if found is None:
            raise NotSimple
        if first == "'":
            return found.group(1).replace("''", "'"), found.end()
        if first == '"':
            return found.group(1), found.end()
        return self.plain(found.group().rstrip(" ")), found.end()

    def flow_list(self, line: str, start: int, row: int) -> tuple[LocList, int]:
        base = (row + 1) << SHIFT
        out = LocList()
        items: list[int] = []
        out._file, out._at, out._items = self.file, base | (start + 1), items
        names = _NAMES.match(line, start)
        if names is not None:  # names only, however spaced: split, no walk
            p = start + 1
            for part in names.group(1).split(","):
                items.append(base | (p + len(part) - len(part.lstrip(" ")) + 1))
                out.append(self.plain(part.strip(" ")))
                p += len(part) + 1
            return out, names.end()
        p = _skip(line, start + 1)
        if line[p] == "]":
            return out, p + 1
        while True:
            items.append(base | (p + 1))
            value, p = self.value(line, p, row)
            out.append(value)
            p = _skip(line, p)
            if line[p] == "]":
                return out, p + 1
            if line[p] != ",":
                raise NotSimple
            p = _skip(line, p + 1)
            if line[p] == "]":
                raise NotSimple  # a trailing comma

    def flow_map(self, line: str, start: int, row: int) -> tuple[LocDict, int]:
        out = LocDict()
        keys: dict[Any, int] = {}
        values: dict[Any, int] = {}
        base = (row + 1) << SHIFT
        out._file, out._at, out._keys, out._values = self.file, base | (start + 1), keys, values
        p = _skip(line, start + 1)
        if line[p] == "}":
            return out, p + 1
        while True:
            if line[p] in "[{":
                raise NotSimple
            key_pos = base | (p + 1)
            key, p = self.value(line, p, row)
            p = _skip(line, p)
            if line[p] != ":" or line[p + 1] != " " or key in out:
                raise NotSimple
            p = _skip(line, p + 1)
            if line[p] in ",}":
                raise NotSimple  # an empty value
            keys[key], values[key] = key_pos, base | (p + 1)
            out[key], p = self.value(line, p, row)
            p = _skip(line, p)
            if line[p] == "}":
                return out, p + 1
            if line[p] != ",":
                raise NotSimple
            p = _skip(line, p + 1)


def _skip(line: str, p: int) -> int:
    while line[p] == " ":
        p += 1
    return p
