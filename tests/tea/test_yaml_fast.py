"""tea._yamlparse: the block reader gives exactly what PyYAML gives, values and positions, or hands over."""

from __future__ import annotations

import pickle
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tea._yamlparse import LocDict, LocList, NotSimple, read_block
from tea.errors import Location, WorkflowSyntaxError
from tea.yamlsrc import _load_with_pyyaml, _Scalars, load_yaml

ROOT = Path(__file__).resolve().parents[2]


def fast(text: str) -> Any:
    return read_block(text, "f.yaml", _Scalars(yaml).plain)


def slow(text: str) -> Any:
    return _load_with_pyyaml(yaml, text, "f.yaml", _Scalars(yaml))


def same(a: Any, b: Any, path: str = "$") -> None:
    """``a`` and ``b`` are equal, of the same types, with the same locations throughout."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, LocDict):
        assert list(a) == list(b), path
        assert (a.loc, a.key_locs, a.value_locs) == (b.loc, b.key_locs, b.value_locs), path
        for key in a:
            assert type(key) is type(next(k for k in b if k == key)), f"{path}: key {key!r}"
            same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, LocList):
        assert len(a) == len(b) and (a.loc, a.item_locs) == (b.loc, b.item_locs), path
        for n, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{path}[{n}]")
    else:
        assert a == b or (a != a and b != b), f"{path}: {a!r} != {b!r}"  # nan is not nan


SIMPLE = [
    "a: 1\nb: two\nc: 2.5\nd: true\ne: ~\nf: null\ng: 0x1f\nh: 1_000\ni: .inf\nj: 2024-01-31\nk: 1:30\n",
    "yes: on\nno: off\n3: three\n2.0: float key\nnull: nothing\nY: n\n",
    "a:\nb:   # comment\nc: x # trailing comment\nd: x#not a comment\n",
    "# head\n\nlist:\n- a\n-   b\n- c: 1\n  d: 2\n-\n- - x\n  - y\nafter: 1\n",
    "nested:\n  deeper:\n    deepest: [1, 2, {x: y, z: [a, 'b', \"c\"]}]\n  back: {}\n  empty: []\n",
    "q: 'it''s'\nr: \"double # not comment\"\ns: '  spaced  '\nt: \"\"\nu: ''\n",
    "steps:\n  - id: s1\n    depends_on: [s0, s2,s3 ,  s4]\n  - id: s2\n    depends_on: []\n",
    "text: |\n  line one\n\n    indented\n  last\n\nnext: 1\n",
    "keep: |+\n  x\n\n\nstrip: |-\n  y\n\nclip: |\n  z\n\n\n",
    "seq:\n  - |\n    in a list\n  - |-\n    stripped\n  - k: |\n      in a map\n",
    "lead: |\n\n  after a blank\nend: |\n  at the end\n",
    "  indented: top\n  level: 2\n",
    "- top\n- [level, list]\n- {a: 1}\n",
    "url: http://example.com/x?y=1\npath: /a/b c/d\nneg: -5\ndash: -x\nsign: +3\n",
    "unicode: héllo wörld ✓\nclé: valeur\n",
    "cmd: echo {{ x }} && ls [a] {b}\ntpl: \"{{ step.output }}\"\n",
    "a: [x, y]   # c\nb: {k: v}  \nc: 'q'   \n",
    "flow: [ a , 'b' , \"c\" , -1, 2.5, yes, ~ ]\nmap: { a: 1 , 'b': [x], c: {d: e} }\n",
    # the shapes read straight from the split lines, and their near misses
    "steps:\n  - id: s1\n    kind: noop\n    deps: [s0, s2]\n  - id: s2\n\n    # between\n    deps: []\n"
    "  - word\n  -  two\n",
    "settings:\n parallel:\n    strategy: thread\n    max: 4\n next: 1\n",
    "a:   spaced\nb: trailing   \nc: [x, y]  \nd: [x, y] # c\ne: [é, b2, _c]\nf: [a, 1]\ng: [yes, null, on]\n",
    "- a: 1\n  b: [p, q]\n-   c: 2\n    d: 3\n- - x\n  - k: v\n    j: w\n-\n  - deep\n",
    "1: one\nnull: ~\n2.5: x\nno: 0\n",
    "top:\n  - id: a\n  # a comment at the items' column\n    \n  - id: b\n"
    "    run: |\n      echo: hi\n      - not an item\n    after: 1\n",
]

HANDED_OVER = [
    "a: &anchor {x: 1}\nb: *anchor\n",
    "a: >\n  folded\n",
    "a: multi\n  line plain\n",
    "a: \"escape \\n\"\n",
    "a: 'multi\n  line'\n",
    "a: 1\r\nb: 2\r\n",
    "? complex\n: key\n",
    "a: [1,\n  2]\n",
    "a: |2\n   x\n",
    "base: &b {retry: 2}\nuse: {<<: *b}\n",
    "just a scalar\n",
    "{a: 1}\n",
    "",
    "# only a comment\n",
    "trailing: |\n  no final newline",
    "x: 1\n...\n",
    "a: x\n - y\n",
    "a: 'x\ty'\n",
    "a: [x, y,]\n",
    "key with: spaces\n",
]

ERRORS = [
    "a: 1\nb: 2\na: 3\n",
    "a: 1\n  b: 2\n",
    "a:\n  - x\n  y: 1\n",
    "a: b: c\n",
    "a: [x, y\n",
    "a: 'open\n",
    "- a\nb: 1\n",
    "a: 2024-13-45\n",
    "x: 1\n---\ny: 2\n",
    "a: !tag x\n",
    "a:\n\tb: 1\n",
    "- id: a\n  id: b\n",
    "a: [x, , y]\n",
    "steps:\n  - id: a\n    run: x\n    run: y\n",
    "1: a\n1.0: b\n",
    "a:\n  b: 1\n   c: 2\n",
]


@pytest.mark.parametrize("text", SIMPLE)
def test_the_block_reader_matches_pyyaml(text: str) -> None:
    """The plain block style is read without PyYAML's composer: values, their types and
    every location are what the PyYAML path gives."""
    same(fast(text), slow(text))
    same(load_yaml(text, "f.yaml"), slow(text))


@pytest.mark.parametrize("text", HANDED_OVER)
def test_what_it_does_not_read_goes_to_pyyaml(text: str) -> None:
    """Anchors, tags, folded and multi-line scalars, escapes, tabs, CR: handed over, same result."""
    with pytest.raises(NotSimple):
        fast(text)
    assert load_yaml(text, "f.yaml") == yaml.safe_load(text)


@pytest.mark.parametrize("text", ERRORS)
def test_errors_are_worded_by_the_pyyaml_path(text: str) -> None:
    """Malformed input is never read by the block reader: the error, file and line are PyYAML's."""
    with pytest.raises(NotSimple):
        fast(text)
    with pytest.raises(Exception) as expected:  # whatever the PyYAML path raises
        slow(text)
    with pytest.raises(type(expected.value)) as got:
        load_yaml(text, "f.yaml")
    assert str(got.value) == str(expected.value)
    if isinstance(expected.value, WorkflowSyntaxError):
        assert got.value.location == expected.value.location  # type: ignore[attr-defined]


def test_every_yaml_file_of_the_project_reads_the_same() -> None:
    """Examples, benchmark workflows and test fixtures: the same values and locations either way."""
    files = [p for p in ROOT.glob("**/*.yaml") if ".venv" not in p.parts and ".cache" not in p.parts]
    assert len(files) > 10
    for path in files:
        text = path.read_text(encoding="utf-8")
        try:
            expected = slow(text)
        except WorkflowSyntaxError:
            continue
        same(load_yaml(text, "f.yaml"), expected, str(path))


def _random_document(rnd: random.Random) -> str:
    scalars = ["a", "b c", "1", "-2", "3.5", "yes", "no", "~", "null", "'q'", '"d q"', "x # c",
               "[p, q]", "{k: v}", "[]", "{}", "on", "0o7", "2020-01-01", "a-b/c.d"]
    lines: list[str] = []

    def block(indent: int, depth: int) -> None:
        pad = " " * indent
        if rnd.random() < 0.5:
            for n in range(rnd.randint(1, 3)):
                key = rnd.choice(["k", "key", "x1", "long_key", "y", "n"]) + str(n)
                if depth < 3 and rnd.random() < 0.4:
                    lines.append(f"{pad}{key}:")
                    block(indent + rnd.choice([0, 2, 4]) if rnd.random() < 0.3 else indent + 2, depth + 1)
                else:
                    lines.append(f"{pad}{key}: {rnd.choice(scalars)}")
                if rnd.random() < 0.1:
                    lines.append(f"{pad}# a comment")
                if rnd.random() < 0.1:
                    lines.append("")
        else:
            for _ in range(rnd.randint(1, 3)):
                if depth < 3 and rnd.random() < 0.3:
                    lines.append(f"{pad}- k: {rnd.choice(scalars)}")
                    lines.append(f"{pad}  m: {rnd.choice(scalars)}")
                elif depth < 3 and rnd.random() < 0.2:
                    lines.append(f"{pad}-")
                    block(indent + 2, depth + 1)
                else:
                    lines.append(f"{pad}- {rnd.choice(scalars)}")

    block(0, 0)
    return "\n".join(lines) + "\n"


def test_random_documents_read_the_same() -> None:
    """Generated documents (seeded): whatever the block reader accepts, PyYAML reads the same."""
    rnd = random.Random(7)
    assert _read_alike(_random_document(rnd) for _ in range(400)) > 200


_KEYS = ["id", "a", "step_type", "k-1", "x.y", "p/q", "1", "yes", "null", "é", "2024-01-01", "2024-13-45", "a b"]
_VALUES = ["word", "s01", "yes", "null", "~", "1", "1.5", "-3", "a b", "x # c", "'q'", '"d"', "[a, b]", "[a,b]",
           "[ a, b ]", "[a, , b]", "[1, a]", "[a, 1]", "[]", "{k: v}", "[é, b]", "[a, b] # c", "[a, b]  ", "word  ",
           "|", "", "# c", "a: b", "x:", "2024-01-01", "2024-13-45", "[on, off]", "- x"]


def _shaped_document(rnd: random.Random) -> str:
    """A document of the shapes the block reader reads straight from its split lines, and their near misses:
    odd indentation, "- key: v" items, names lists, spacing, comments and blank lines in between."""
    lines: list[str] = []

    def block(indent: int, depth: int) -> None:
        pad = " " * indent
        mapping = rnd.random() < 0.5
        for _ in range(rnd.randint(1, 4)):
            if mapping and depth < 3 and rnd.random() < 0.3:
                lines.append(f"{pad}{rnd.choice(_KEYS)}:" + rnd.choice(["", " ", "  # c"]))
                if rnd.random() < 0.2:
                    lines.append(" " * rnd.randint(0, 6) + rnd.choice(["", "# c"]))
                block(indent + rnd.choice([0, 1, 2, 2, 3, 4]), depth + 1)
            elif mapping:
                value = rnd.choice(_VALUES)
                lines.append(f"{pad}{rnd.choice(_KEYS)}:" + rnd.choice([" ", " ", "  "]) + value)
                if value == "|":
                    lines.append(pad + "  text: - x")
            elif depth < 3 and rnd.random() < 0.4:
                space = rnd.choice([" ", " ", "  "])
                lines.append(f"{pad}-{space}{rnd.choice(_KEYS)}: {rnd.choice(_VALUES)}")
                for _ in range(rnd.randint(0, 2)):
                    column = indent + 1 + len(space) + rnd.choice([0, 0, 0, 1, -1])
                    lines.append(" " * column + f"{rnd.choice(_KEYS)}: {rnd.choice(_VALUES)}")
            elif depth < 3 and rnd.random() < 0.2:
                lines.append(f"{pad}-" + rnd.choice(["", " - x"]))
                block(indent + rnd.choice([0, 2, 3]), depth + 1)
            else:
                lines.append(f"{pad}-" + rnd.choice([" ", " ", "  "]) + rnd.choice(_VALUES))
            if rnd.random() < 0.1:
                lines.append(rnd.choice(["", pad + "# c", " " * rnd.randint(0, 8)]))

    block(rnd.choice([0, 0, 1, 2]), 0)
    return "\n".join(lines) + rnd.choice(["\n", "", "\n\n"])


def test_shaped_documents_read_the_same() -> None:
    """Generated documents of the fast shapes (seeded): whatever the block reader accepts, PyYAML reads the same,
    and whatever PyYAML refuses, the block reader hands over."""
    rnd = random.Random(12)
    assert _read_alike(_shaped_document(rnd) for _ in range(1500)) > 300


def _read_alike(texts: Iterable[str]) -> int:
    """Each text: what PyYAML refuses (a date such as 2024-13-45 too), the block reader hands
    over; what the block reader reads, PyYAML reads the same. How many the block reader read."""
    read = 0
    for text in texts:
        try:
            expected = slow(text)
        except WorkflowSyntaxError:
            with pytest.raises(NotSimple):
                fast(text)
            continue
        try:
            mine = fast(text)
        except NotSimple:
            continue
        read += 1
        same(mine, expected, text)
    return read


def test_compact_locations_survive_changes_and_pickling() -> None:
    """The block reader's compact positions are unpacked when asked for, for the keys it read: keys added,
    removed or replaced afterwards change nothing; a pickled copy keeps them."""
    text = "steps:\n  - id: a\n    deps: [p, qq,  r]\n    run:\n      - x\n"
    doc = fast(text)
    step = doc["steps"][0]
    del step["id"]
    step["new"] = 1
    assert step.key_loc("deps") == Location("f.yaml", 3, 5) and step.key_loc("new") == step.loc
    assert step.value_loc("run") == Location("f.yaml", 5, 7)
    assert step.value_locs["id"] == Location("f.yaml", 2, 9)
    assert step["deps"].item_locs == slow(text)["steps"][0]["deps"].item_locs
    copy = pickle.loads(pickle.dumps(fast(text)))
    same(copy, slow(text))


def test_locations_are_built_on_demand_and_can_be_set() -> None:
    """A parsed mapping builds its locations when read; assigned ones replace them."""
    doc = fast("a: 1\nb:\n  - x\n")
    assert doc.key_loc("b") == Location("f.yaml", 2, 1) and doc["b"].item_loc(0) == Location("f.yaml", 3, 5)
    doc.key_locs = {"a": Location("other.yaml", 9, 9)}
    assert doc.key_loc("a") == Location("other.yaml", 9, 9) and doc.key_loc("b") == doc.loc
    blank = LocDict(x=1)
    assert blank.loc == Location() and blank.key_loc("x") == Location() and LocList([1]).item_loc(0) == Location()
