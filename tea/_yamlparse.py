"""A fast reader for the plain block style most tea files use.

``read_block(text, file, scalar)`` reads the common subset of YAML: block mappings
and sequences indented with spaces, one-line plain and quoted scalars, one-line
flow collections (``tea._yamlflow``), literal block scalars (``|``, ``|-``, ``|+``)
and comments, into the located containers of ``tea._yamlloc``. On anything else
(anchors and aliases, tags, folded or multi-line scalars, escapes, tabs, document
markers, duplicate keys, any syntax error) it raises ``NotSimple`` and
``tea.yamlsrc`` parses the text with PyYAML instead, which also words every error;
so a document's values and positions are the same whichever reader took it
(tests/tea/test_yaml_fast.py compares the two).

Speed (a 10,000-step mission is 27,000 lines): every line is split at its first
": " at once, and what comes before it, mostly the same few texts ("    id"), is
looked at once per text (``_Heads``), as is each plain scalar (``_Plain``); the
usual lines, "key: word", "key: [a, b]", "- key: ..." and "- word", are read from
those, and the others from the line's text as the rules below say. Positions are
kept compact and become ``Location`` records only when asked for (``tea._yamlloc``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import repeat
from typing import Any

from tea._yamlflow import FlowReader, NotSimple
from tea._yamlloc import SHIFT, LocDict, LocList, at

__all__ = ["LocDict", "LocList", "NotSimple", "at", "read_block"]

# Characters libyaml refuses or reads as line breaks (and tabs, CR and the BOM, which
# the block reader leaves to it): any of them sends the document to PyYAML.
_UNUSUAL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")
_NAME = r"(\w[\w.\-/]{0,1023})"  # libyaml's longest implicit key: 1024
_KEY = re.compile(_NAME + ":(?: +|$)")
_HEAD = re.compile("( *)(- )?" + _NAME)
_AFTER = re.compile(r"(?: +#.*| *)$")  # what may follow a quoted scalar or a flow collection
_LITERAL = re.compile(r"\|([-+]?)(?: +#.*| *)$")
_NOT_PLAIN = frozenset(",[]{}#&*!|>'\"%@`?:")  # what cannot start a plain scalar
_END = ("", "", "")  # the split of the line after the last one
_OTHER: tuple[int, Any] = (-1, None)  # what _Heads says of a line that has no key


def read_block(text: str, file: str | None, scalar: Callable[[str], Any]) -> Any:
    """The document in ``text`` as located data; ``NotSimple`` when PyYAML must read it.

    ``scalar`` turns a plain scalar's text into its value (PyYAML's resolver and
    constructors); it raises ``NotSimple`` for a value it does not make.
    """
    if _UNUSUAL.search(text):
        raise NotSimple
    reader = _Reader(text, file, scalar)
    try:
        return reader.document()
    except (IndexError, RecursionError):  # ran off a line (malformed), or nested very deep
        raise NotSimple from None


class _Plain(dict[str, Any]):
    """Plain scalars' values by their text, each worked out once (a document repeats most of them)."""

    __slots__ = ("scalar",)

    def __init__(self, scalar: Callable[[str], Any]) -> None:
        super().__init__()
        self.scalar = scalar

    def __missing__(self, text: str) -> Any:
        value = self[text] = self.scalar(text)
        return value


class _Heads(dict[str, tuple[int, Any]]):
    """What a line holds before its first ": ", by that text (a document repeats a few of them):
    (its column, the key) for a key, (minus its column, the key) for a key after a sequence
    dash ("- key"), or ``_OTHER`` for anything else."""

    __slots__ = ("plain",)

    def __init__(self, plain: _Plain) -> None:
        super().__init__()
        self.plain = plain

    def __missing__(self, head: str) -> tuple[int, Any]:
        found = _HEAD.fullmatch(head)
        if found is None:
            kind = self[head] = _OTHER
        else:
            spaces, dash, name = found.groups()
            kind = self[head] = -len(spaces) - 2 if dash else len(spaces), self.plain[name]
        return kind


class _Reader:
    """One pass over the lines; ``i`` is the line being read (0-based).

    ``parts``: each line split at its first ": " (worked out for all lines at once),
    and ``_END`` after the last; ``heads`` tells what the text before the ": " is.
    """

    def __init__(self, text: str, file: str | None, scalar: Callable[[str], Any]) -> None:
        self.lines = text.split("\n")
        self.parts = list(map(str.partition, self.lines, repeat(": ")))
        self.parts.append(_END)
        self.ends_with_newline = text.endswith("\n")
        self.file = file
        self.plain = _Plain(scalar)
        self.heads = _Heads(self.plain)
        self.flow = FlowReader(file, self.plain.__getitem__)
        self.i = 0

    def document(self) -> Any:
        indent = self.advance(0)
        if indent < 0:
            raise NotSimple  # empty (or comments only)
        value = self.block(indent)
        if self.advance(self.i) >= 0:
            raise NotSimple  # content after the top-level collection
        return value

    def advance(self, i: int) -> int:
        """Move to the first line from ``i`` with content (not blank, not a comment); its indent, or -1 at the end."""
        lines = self.lines
        while i < len(lines):
            line = lines[i]
            rest = line.lstrip(" ")
            if rest and rest[0] != "#":
                self.i = i
                return len(line) - len(rest)
            i += 1
        self.i = i
        return -1

    def block(self, indent: int) -> LocDict | LocList:
        """The collection whose first line is ``i``, indented by ``indent``."""
        line = self.lines[self.i]
        if _dash(line, indent):
            return self.sequence(indent)
        if _KEY.match(line, indent):
            return self.mapping(indent)
        raise NotSimple

    def mapping(self, indent: int, first: tuple[str, str, Any] | None = None) -> LocDict:
        """The block mapping whose first key is at column ``indent`` of line ``i`` (``first``: that
        line's head, value and key, when the caller has read "- key: value")."""
        out = LocDict()
        locs: list[Any] = []
        i = self.i
        out._file, out._at, out._rows = self.file, (i + 1) << SHIFT | (indent + 1), locs
        parts, heads, plain = self.parts, self.heads, self.plain
        if first is None:
            head, colon, value = parts[i]
            key_column, key = heads[head] if colon else _OTHER
            keyed = key_column == indent
        else:
            head, value, key = first
            keyed = True
        while True:  # line i is the next of this mapping, split into head, colon and value
            if keyed:
                column = len(head) + 2
                if value.isidentifier():  # "key: word", most lines
                    out[key] = plain[value]
                    locs += key, i, i, column
                    i += 1
                elif value[-1:] == "]" and value[:1] == "[" and "".join(
                        names := value[1:-1].split(", ")).isidentifier() and "" not in names:  # "key: [a, b]"
                    listed = LocList(map(plain.__getitem__, names))
                    listed._file, listed._at, listed._names = self.file, (i + 1) << SHIFT | (column + 1), value
                    out[key] = listed
                    locs += key, i, i, column
                    i += 1
                else:
                    line = self.lines[i]
                    start = len(line) - len(value.lstrip(" "))
                    out[key], value_row, column = self.value(line, start, column - 2, indent, i, True)
                    locs += key, i, value_row, column
                    i = self.i
            else:
                i = self.entry(out, locs, indent, i)
            head, colon, value = parts[i]
            key_column, key = heads[head] if colon else _OTHER
            if key_column == indent:
                continue
            if key_column == -1:  # a blank line, a comment or a line without a key: look further
                nxt = self.advance(i)
                i = self.i
            else:  # a key or "- key" more or less indented: the line's indent without looking
                nxt = key_column if key_column >= 0 else -key_column - 2
            if nxt != indent:
                if nxt > indent or len(locs) != 4 * len(out):  # or a key twice: PyYAML words it
                    raise NotSimple
                self.i = i
                return out
            head, colon, value = parts[i]
            key_column, key = heads[head] if colon else _OTHER
            keyed = key_column == indent

    def entry(self, out: LocDict, locs: list[Any], indent: int, row: int) -> int:
        """Reads the entry of ``out`` (at ``indent``) on ``row`` that the split did not show ("key:" and
        nothing more, "-   key: v"), or raises ``NotSimple`` if there is none; the line after it."""
        line = self.lines[row]
        found = _KEY.match(line, indent)
        if found is None:
            raise NotSimple
        name = found.group(1)
        key = self.plain[name]
        out[key], value_row, column = self.value(line, found.end(), indent + len(name), indent, row, True)
        locs += key, row, value_row, column
        return self.i

    def sequence(self, indent: int) -> LocList:
        """The block sequence whose first dash is at column ``indent`` of line ``i``."""
        out = LocList()
        items: list[int] = []
        i = self.i
        out._file, out._at, out._items = self.file, (i + 1) << SHIFT | (indent + 1), items
        lines, parts, heads = self.lines, self.parts, self.heads
        compact = -indent - 2  # heads' column for "- key" with the dash at indent
        dash = " " * indent + "- "
        head, colon, value = parts[i]
        key_column, key = heads[head] if colon else _OTHER
        while True:  # line i has a dash at column indent, split into head, colon and value
            if key_column == compact:  # "- key: ..."
                self.i = i
                out.append(self.mapping(indent + 2, (head, value, key)))
                items.append((i + 1) << SHIFT | (indent + 3))
            elif not colon and head.startswith(dash) and (word := head[indent + 2:]).isidentifier():  # "- word"
                out.append(self.plain[word])
                items.append((i + 1) << SHIFT | (indent + 3))
                self.i = i + 1
            else:
                self.item(out, items, i, indent)
            i = self.i
            head, colon, value = parts[i]
            key_column, key = heads[head] if colon else _OTHER
            if key_column != compact:  # not (at once) the next item
                if self.advance(i) != indent or not _dash(lines[self.i], indent):
                    return out
                i = self.i
                head, colon, value = parts[i]
                key_column, key = heads[head] if colon else _OTHER

    def item(self, out: LocList, items: list[int], row: int, indent: int) -> None:
        """Reads the item of ``out`` (at ``indent``) whose dash is on ``row``, in any form."""
        line = self.lines[row]
        start = len(line) - len(line[indent + 1:].lstrip(" "))
        self.i = row
        if _KEY.match(line, start):  # a compact mapping: "- key: v"
            out.append(self.mapping(start))
        elif _dash(line, start):  # "- - v"
            out.append(self.sequence(start))
        else:
            value, row, start = self.value(line, start, indent, indent, row, False)
            out.append(value)
        items.append((row + 1) << SHIFT | (start + 1))

    def value(self, line: str, start: int, mark: int, indent: int, row: int, in_map: bool) -> tuple[Any, int, int]:
        """The value at ``line[start:]`` of a key or item (its indicator at ``mark``) in a collection
        at ``indent``, with its row and column."""
        if start >= len(line) or line[start] == "#":
            return self.below(mark, indent, row, in_map)
        self.i = row + 1
        first = line[start]
        if first not in _NOT_PLAIN and (first != "-" or line[start + 1:start + 2] not in ("", " ")):
            cut = line.find(" #", start)
            text = line[start:cut if cut >= 0 else len(line)].rstrip(" ")
            if ": " in text or text[-1] == ":":
                raise NotSimple
            return self.plain[text], row, start
        if first == "|":
            return self.literal(line, start, indent, row), row, start
        if first not in "[{\"'":
            raise NotSimple
        value, end = self.flow.value(line, start, row)
        if not _AFTER.match(line, end):
            raise NotSimple
        return value, row, start

    def below(self, mark: int, indent: int, row: int, in_map: bool) -> tuple[Any, int, int]:
        """A key or item with nothing after it: a collection on the lines below, or null."""
        nxt = self.advance(row + 1)
        first = self.i
        if nxt > indent or (nxt == indent and in_map and _dash(self.lines[first], indent)):
            return self.block(nxt), first, nxt
        self.i = row + 1
        return self.plain[""], row, mark + 1

    def literal(self, line: str, start: int, indent: int, row: int) -> str:
        """A ``|`` block scalar; ``self.i`` ends on the first line after it."""
        header = _LITERAL.match(line, start)
        lines = self.lines
        i = row + 1
        blank_max = 0
        while i < len(lines) and not lines[i].strip(" "):
            blank_max = max(blank_max, len(lines[i]))
            i += 1
        if header is None or i >= len(lines):
            raise NotSimple
        text_indent = len(lines[i]) - len(lines[i].lstrip(" "))
        if text_indent <= indent or blank_max > text_indent:
            raise NotSimple
        body: list[str] = [""] * (i - row - 1)
        trailing = 0
        while i < len(lines):
            content = lines[i]
            if not content.strip(" "):
                if len(content) > text_indent:
                    raise NotSimple  # spaces beyond the indentation: content or not, libyaml decides
                trailing += 1
            elif len(content) - len(content.lstrip(" ")) < text_indent:
                break
            else:
                body.extend([""] * trailing)
                trailing = 0
                body.append(content[text_indent:])
            i += 1
        if i >= len(lines):
            if not self.ends_with_newline:
                raise NotSimple  # a last line with no newline: leave the ending to libyaml
            trailing -= 1  # the empty string after the final newline is not a line
        self.i = i
        text = "\n".join(body)
        chomp = header.group(1)
        return text if chomp == "-" else text + "\n" + ("\n" * trailing if chomp == "+" else "")


def _dash(line: str, col: int) -> bool:
    """Whether ``line`` has a sequence entry's ``-`` at ``col``."""
    return line.startswith("-", col) and line[col + 1:col + 2] in ("", " ")
