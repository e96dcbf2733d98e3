"""The located containers, and a fast reader for the plain block style most tea files use.

``LocDict`` and ``LocList`` (public through ``tea.yamlsrc``) keep the positions the
parser saw and build ``Location`` records only when one is asked for: a 10,000-step
mission has some 100,000 positions and an error report reads a handful.

``read_block(text, file)`` reads the common subset of YAML line by line: block
mappings and sequences indented with spaces, one-line plain and quoted scalars,
one-line flow collections, literal block scalars (``|``, ``|-``, ``|+``) and
comments. On anything else (anchors and aliases, tags, folded or multi-line
scalars, escapes, tabs, documents markers, duplicate keys, any syntax error) it
raises ``NotSimple`` and ``tea.yamlsrc`` parses the text with PyYAML instead, which
also words every error; so a document's values and positions are the same
whichever reader took it (tests/tea/test_yaml_fast.py compares the two).

A little over 400 lines because the containers live with the reader that fills
them: ``tea.yamlsrc`` imports this module, so it cannot be the other way round.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Generic, Self, TypeVar, overload

from tea.errors import Location

__all__ = ["LocDict", "LocList", "NotSimple", "read_block"]

_T = TypeVar("_T")
_SHIFT = 32
"""A position is one int, ``line << _SHIFT | column`` (1-based): ints are not tracked by the
cyclic garbage collector, and a big document holds a great many positions."""
_COLUMN = (1 << _SHIFT) - 1


def at(line: int, column: int) -> int:
    """The position of 1-based ``line`` and ``column``, as ``LocDict``/``LocList`` store it."""
    return line << _SHIFT | column


def _location(file: str | None, pos: int) -> Location:
    return Location(file, pos >> _SHIFT, pos & _COLUMN)


class _Lazy(Generic[_T]):
    """An attribute built from the parser's positions on first read, then stored on the instance."""

    def __init__(self, build: Callable[[Any], _T]) -> None:
        self.build = build
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Self: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> _T: ...
    def __get__(self, obj: object | None, owner: type | None = None) -> _T | Self:
        if obj is None:
            return self
        value = self.build(obj)
        obj.__dict__[self.name] = value
        return value


def _own_loc(obj: LocDict | LocList) -> Location:
    pos = getattr(obj, "_at", None)
    return Location() if pos is None else _location(obj._file, pos)


def _key_locs(obj: LocDict) -> dict[str, Location]:
    keys = getattr(obj, "_keys", None) or {}
    return {key: _location(obj._file, pos) for key, pos in keys.items()}


def _value_locs(obj: LocDict) -> dict[str, Location]:
    values = getattr(obj, "_values", None) or {}
    return {key: _location(obj._file, pos) for key, pos in values.items()}


def _item_locs(obj: LocList) -> list[Location]:
    return [_location(obj._file, pos) for pos in getattr(obj, "_items", None) or ()]


class LocDict(dict[str, Any]):
    """A dict that knows where it and each of its keys and values sit in the file.

    ``loc``, ``key_locs`` and ``value_locs`` may be assigned (data gathered from
    several places); until they are, they are built from the parser's positions.
    """

    # Slots for the parser's positions, so that most instances never grow a __dict__;
    # an instance the parser did not make has none of them set.
    __slots__ = ("__dict__", "_at", "_file", "_keys", "_values")
    _file: str | None
    _at: int
    _keys: dict[Any, int]
    _values: dict[Any, int]
    loc = _Lazy(_own_loc)
    key_locs = _Lazy(_key_locs)
    value_locs = _Lazy(_value_locs)

    def key_loc(self, key: str) -> Location:
        if "key_locs" in self.__dict__:
            return self.key_locs.get(key, self.loc)
        pos = getattr(self, "_keys", {}).get(key)
        return self.loc if pos is None else _location(self._file, pos)

    def value_loc(self, key: str) -> Location:
        own: Location | None = getattr(self.get(key), "loc", None)
        return own or self.value_locs.get(key) or self.key_loc(key)


class LocList(list[Any]):
    """A list that knows where it and each of its items sit in the file."""

    __slots__ = ("__dict__", "_at", "_file", "_items")
    _file: str | None
    _at: int
    _items: list[int]
    loc = _Lazy(_own_loc)
    item_locs = _Lazy(_item_locs)

    def item_loc(self, index: int) -> Location:
        if "item_locs" not in self.__dict__ and hasattr(self, "_items"):
            items = self._items
            return _location(self._file, items[index]) if index < len(items) else self.loc
        locs = self.item_locs
        return locs[index] if index < len(locs) else self.loc


class NotSimple(Exception):
    """The text is outside what ``read_block`` reads: parse it with PyYAML."""


# Characters libyaml refuses or reads as line breaks (and tabs, CR and the BOM, which
# the block reader leaves to it): any of them sends the document to PyYAML.
_UNUSUAL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")
_KEY = re.compile(r"(\w[\w.\-/]{0,1023}):(?: +|$)")  # libyaml's longest implicit key: 1024
# A key and a one-word-or-more plain value with no ':' or '#' at all (so no comment, no
# nested key): most lines of a tea file, read with one match.
_ENTRY = re.compile(r"(\w[\w.\-/]{0,1023}): +([^\s\-?:,\[\]{}#&*!|>'\"%@`][^:#]*)$")
_AFTER = re.compile(r"(?: +#.*| *)$")  # what may follow a quoted scalar or a flow collection
_LITERAL = re.compile(r"\|([-+]?)(?: +#.*| *)$")
_SINGLE = re.compile(r"'((?:[^']|'')*)'")
_DOUBLE = re.compile(r'"([^"\\]*)"')
_NAMES = re.compile(r"\[((?: *[A-Za-z_][\w.\-/]* *,)* *[A-Za-z_][\w.\-/]* *)\]")  # [a, b, c]
_FLOW_PLAIN = re.compile(r"-?[^\s\-?:,\[\]{}#&*!|>'\"%@`][^:,\[\]{}#]*")
_NOT_PLAIN = frozenset(",[]{}#&*!|>'\"%@`?:")  # what cannot start a plain scalar


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


class _Reader:
    """One pass over the lines; ``i`` is the line being read (0-based)."""

    def __init__(self, text: str, file: str | None, scalar: Callable[[str], Any]) -> None:
        self.lines = text.split("\n")
        self.ends_with_newline = text.endswith("\n")
        self.file = file
        self.scalar = scalar
        self.i = 0

    def document(self) -> Any:
        indent = self.next_indent()
        if indent < 0:
            raise NotSimple  # empty (or comments only)
        value = self.block(indent)
        if self.next_indent() >= 0:
            raise NotSimple  # content after the top-level collection
        return value

    def next_indent(self) -> int:
        """Move to the next line with content (not blank, not a comment); its indent, or -1 at the end."""
        lines = self.lines
        i = self.i
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
        line = self.lines[self.i]
        if _dash(line, indent):
            return self.sequence(indent)
        if _KEY.match(line, indent):
            return self.mapping(indent)
        raise NotSimple

    def mapping(self, indent: int) -> LocDict:
        out = LocDict()
        keys: dict[Any, int] = {}
        values: dict[Any, int] = {}
        out._file, out._at, out._keys, out._values = self.file, (self.i + 1) << _SHIFT | (indent + 1), keys, values
        lines = self.lines
        scalar = self.scalar
        while True:
            row = self.i
            line = lines[row]
            base = (row + 1) << _SHIFT
            simple = _ENTRY.match(line, indent)  # most lines: "key: word"
            found = simple or _KEY.match(line, indent)
            if found is None:
                raise NotSimple
            name = found.group(1)
            key = scalar(name)
            if key in out:
                raise NotSimple  # PyYAML words the duplicate
            keys[key] = base | (indent + 1)
            if simple is not None:
                out[key] = scalar(simple.group(2).rstrip(" "))
                values[key] = base | (simple.start(2) + 1)
                self.i = row + 1
            else:
                out[key], values[key] = self.value(line, found.end(), indent + len(name), indent, row, True)
            nxt = self.next_indent()
            if nxt < indent:
                return out
            if nxt > indent:
                raise NotSimple

    def sequence(self, indent: int) -> LocList:
        out = LocList()
        items: list[int] = []
        out._file, out._at, out._items = self.file, (self.i + 1) << _SHIFT | (indent + 1), items
        lines = self.lines
        while True:
            row = self.i
            line = lines[row]
            start = len(line) - len(line[indent + 1:].lstrip(" "))
            if _KEY.match(line, start):  # a compact mapping: "- key: v"
                out.append(self.mapping(start))
                items.append((row + 1) << _SHIFT | (start + 1))
            elif _dash(line, start):  # "- - v"
                out.append(self.sequence(start))
                items.append((row + 1) << _SHIFT | (start + 1))
            else:
                value, pos = self.value(line, start, indent, indent, row, False)
                out.append(value)
                items.append(pos)
            nxt = self.next_indent()
            if nxt < indent or not _dash(lines[self.i], indent):
                return out
            if nxt > indent:
                raise NotSimple

    def value(self, line: str, start: int, mark: int, indent: int, row: int, in_map: bool) -> tuple[Any, int]:
        """The value at ``line[start:]`` of a key or item (its indicator at ``mark``) in a collection at ``indent``."""
        if start >= len(line) or line[start] == "#":
            return self.below(mark, indent, row, in_map)
        self.i = row + 1
        pos = (row + 1) << _SHIFT | (start + 1)
        first = line[start]
        if first not in _NOT_PLAIN and (first != "-" or line[start + 1:start + 2] not in ("", " ")):
            cut = line.find(" #", start)
            text = line[start:cut if cut >= 0 else len(line)].rstrip(" ")
            if ": " in text or text[-1] == ":":
                raise NotSimple
            return self.scalar(text), pos
        if first == "|":
            return self.literal(line, start, indent, row), pos
        if first not in "[{\"'":
            raise NotSimple
        value, end = self.flow(line, start, row)
        if not _AFTER.match(line, end):
            raise NotSimple
        return value, pos

    def below(self, mark: int, indent: int, row: int, in_map: bool) -> tuple[Any, int]:
        """A key or item with nothing after it: a collection on the lines below, or null."""
        self.i = row + 1
        nxt = self.next_indent()
        if nxt > indent or (nxt == indent and in_map and _dash(self.lines[self.i], indent)):
            pos = (self.i + 1) << _SHIFT | (nxt + 1)
            return self.block(nxt), pos
        self.i = row + 1
        return self.scalar(""), (row + 1) << _SHIFT | (mark + 2)

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

    def flow(self, line: str, start: int, row: int) -> tuple[Any, int]:
        """A flow collection or scalar on one line; the value and the index after it."""
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
        return self.scalar(found.group().rstrip(" ")), found.end()

    def flow_list(self, line: str, start: int, row: int) -> tuple[LocList, int]:
        out = LocList()
        items: list[int] = []
        base = (row + 1) << _SHIFT
        out._file, out._at, out._items = self.file, base | (start + 1), items
        names = _NAMES.match(line, start)
        if names is not None:  # the common case, [a, b, c]: split, no walk
            p = start + 1
            for part in names.group(1).split(","):
                name = part.strip(" ")
                items.append(base | (p + len(part) - len(part.lstrip(" ")) + 1))
                out.append(self.scalar(name))
                p += len(part) + 1
            return out, names.end()
        p = _skip(line, start + 1)
        if line[p] == "]":
            return out, p + 1
        while True:
            items.append(base | (p + 1))
            value, p = self.flow(line, p, row)
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
        base = (row + 1) << _SHIFT
        out._file, out._at, out._keys, out._values = self.file, base | (start + 1), keys, values
        p = _skip(line, start + 1)
        if line[p] == "}":
            return out, p + 1
        while True:
            if line[p] in "[{":
                raise NotSimple
            key_pos = base | (p + 1)
            key, p = self.flow(line, p, row)
            p = _skip(line, p)
            if line[p] != ":" or line[p + 1] != " " or key in out:
                raise NotSimple
            p = _skip(line, p + 1)
            if line[p] in ",}":
                raise NotSimple  # an empty value
            keys[key], values[key] = key_pos, base | (p + 1)
            out[key], p = self.flow(line, p, row)
            p = _skip(line, p)
            if line[p] == "}":
                return out, p + 1
            if line[p] != ",":
                raise NotSimple
            p = _skip(line, p + 1)


def _dash(line: str, col: int) -> bool:
    """Whether ``line`` has a sequence entry's ``-`` at ``col``."""
    return line.startswith("-", col) and line[col + 1:col + 2] in ("", " ")


def _skip(line: str, p: int) -> int:
    while line[p] == " ":
        p += 1
    return p
