"""tea.yamlsrc: YAML parsing that remembers the file, line and column of every item."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tea.errors import Location, WorkflowSyntaxError
from tea.yamlsrc import MAX_ALIAS_EXPANSION, LocDict, LocList, load_yaml, location_of

DOC = """\
name: demo
nodes:
  - name: first
    run: |
      x = 1
  - name: second
"""


def test_mappings_and_lists_are_located_subclasses() -> None:
    """Mappings load as LocDict and lists as LocList, still equal to plain data."""
    doc = load_yaml(DOC, "flow.yaml")
    assert isinstance(doc, LocDict) and isinstance(doc, dict)
    assert isinstance(doc["nodes"], LocList) and isinstance(doc["nodes"], list)
    assert doc == {"name": "demo", "nodes": [{"name": "first", "run": "x = 1\n"}, {"name": "second"}]}


def test_key_location_is_file_line_column() -> None:
    """key_loc gives the 1-based line and column of a key."""
    doc = load_yaml(DOC, "flow.yaml")
    assert doc.key_loc("nodes") == Location("flow.yaml", 2, 1)
    assert doc["nodes"][0].key_loc("run") == Location("flow.yaml", 4, 5)


def test_value_location_points_at_the_value() -> None:
    """value_loc points at the value (for a block scalar: the '|' indicator)."""
    doc = load_yaml(DOC, "flow.yaml")
    assert doc["nodes"][0].value_loc("run") == Location("flow.yaml", 4, 10)


def test_item_location_of_a_list() -> None:
    """item_loc gives where each list item starts."""
    nodes = load_yaml(DOC, "flow.yaml")["nodes"]
    assert nodes.item_loc(0) == Location("flow.yaml", 3, 5)
    assert nodes.item_loc(1) == Location("flow.yaml", 6, 5)


def test_location_of_works_on_located_and_plain_data() -> None:
    """location_of reads LocDict/LocList locations and gives an empty Location for plain data."""
    doc = load_yaml(DOC, "flow.yaml")
    assert location_of(doc, "name") == Location("flow.yaml", 1, 1)
    assert location_of(doc["nodes"], 1).line == 6
    assert location_of({"a": 1}, "a") == Location()
    assert location_of([1, 2], 0) == Location()


def test_syntax_error_names_file_and_line() -> None:
    """A YAML syntax error is a WorkflowSyntaxError located in the file."""
    with pytest.raises(WorkflowSyntaxError) as info:
        load_yaml("nodes:\n  - name: a\n   bad: [\n", "broken.yaml")
    assert info.value.location.file == "broken.yaml"
    assert info.value.location.line is not None
    assert str(info.value).startswith("broken.yaml:")
    assert "YAML syntax error" in str(info.value)


def test_unclosed_quote_points_at_the_quote() -> None:
    """An unclosed quoted string is reported at the line where the quote opens."""
    text = 'name: x\nnodes:\n  - name: a\n    run: "x = 1\n  - name: b\n'
    with pytest.raises(WorkflowSyntaxError) as info:
        load_yaml(text, "q.yaml")
    assert info.value.location.line == 4


def test_duplicate_key_is_an_error() -> None:
    """Two equal keys in one mapping are refused at the second key."""
    with pytest.raises(WorkflowSyntaxError) as info:
        load_yaml("a: 1\nb: 2\na: 3\n", "dup.yaml")
    assert info.value.location == Location("dup.yaml", 3, 1)
    assert "duplicate key 'a'" in info.value.message


def test_non_scalar_key_is_an_error() -> None:
    """A mapping used as a key is refused."""
    with pytest.raises(WorkflowSyntaxError, match="scalar"):
        load_yaml("? {a: 1}\n: 2\n", "k.yaml")


def test_python_tags_are_not_constructed() -> None:
    """The safe loader refuses Python object tags."""
    with pytest.raises(WorkflowSyntaxError):
        load_yaml("x: !!python/object/apply:os.system ['true']\n", "evil.yaml")


def test_a_tag_on_a_mapping_or_list_is_refused_at_the_tag() -> None:
    """A custom tag on a container is an error located at the tagged value."""
    with pytest.raises(WorkflowSyntaxError, match="unsupported YAML tag '!thing'") as info:
        load_yaml("a: 1\nb: !thing {c: 1}\n", "tag.yaml")
    assert info.value.location == Location("tag.yaml", 2, 4)


def test_reading_locations_does_not_import_pyyaml() -> None:
    """Importing tea.yamlsrc leaves PyYAML unimported; the first load_yaml imports it."""
    code = (
        "import sys; import tea.yamlsrc as y; before = 'yaml' in sys.modules; "
        "y.load_yaml('a: 1'); print(before, 'yaml' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.split() == ["False", "True"]


def test_an_alias_bomb_is_refused_quickly_at_its_line() -> None:
    """A "billion laughs" document (320 bytes, 10^7 values) is refused, not expanded."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdef", "bcdefg", strict=True):
        lines.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
    with pytest.raises(WorkflowSyntaxError, match=f"expand to more than {MAX_ALIAS_EXPANSION:,} values") as caught:
        load_yaml("\n".join(lines) + "\n", "bomb.yaml")
    assert caught.value.location.file == "bomb.yaml" and caught.value.location.line is not None


def test_ordinary_aliases_still_work() -> None:
    doc = load_yaml("base: &b {retry: 2}\none: *b\ntwo: {<<: *b, extra: 1}\nthree: [*b, *b]\n")
    assert doc["one"] == {"retry": 2} and doc["two"] == {"retry": 2, "extra": 1} and len(doc["three"]) == 2


def test_an_alias_bomb_as_input_is_exit_2(tmp_path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdef", "bcdefg", strict=True):
        lines.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "flow.yaml").write_text("nodes:\n  - name: a\n", encoding="utf-8")
    tea_bin = Path(sys.executable).with_name("tea")
    for args in (["run", "flow.yaml", "-i", "@bomb.yaml"], ["validate", "bomb.yaml"]):
        done = subprocess.run([str(tea_bin), *args], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, done.stderr
        assert "aliases expand to more than" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("text", ["when: 2024-13-45\n", "a: [1, 2024-02-30]\n", "2024-13-45: x\n"])
def test_a_date_that_is_none_is_a_syntax_error_at_its_value(text: str) -> None:
    """PyYAML's constructor raises a plain ValueError; the user gets file:line and a hint."""
    with pytest.raises(WorkflowSyntaxError, match="is not a valid timestamp") as caught:
        load_yaml(text, "flow.yaml")
    assert caught.value.location.file == "flow.yaml" and caught.value.location.line == 1
    assert "quote it" in (caught.value.hint or "")
