"""tea.overrides: the same workflow on another fleet, strategy or setting, checked like the YAML."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import tea
from tea import overrides
from tea.errors import InputError, LoadError

FLOW = """
settings:
  parallel: {strategy: thread, max_workers: 2}
nodes:
  - name: a
    run: |
      return {"n": 1}
"""


def parallel_of(path: Path, *given: overrides.Override) -> object:
    return tea.load(path, overrides=given).graph.parallel


def test_set_reads_its_value_as_yaml(write_yaml: Callable[..., Path]) -> None:
    path = write_yaml(FLOW)
    config = parallel_of(path, overrides.setting("settings.parallel.max_workers=7"))
    assert config.max_workers == 7  # type: ignore[attr-defined]


def test_precedence_is_yaml_then_config_then_set_then_strategy(write_yaml: Callable[..., Path]) -> None:
    path = write_yaml(FLOW)
    given = [
        overrides.strategy("process"),
        overrides.setting("settings.parallel.strategy=thread"),
        overrides.config('{"settings": {"parallel": {"strategy": "thread", "max_workers": 3}}}'),
    ]
    config = parallel_of(path, *given)
    assert config.strategy == "process" and config.max_workers == 3  # type: ignore[attr-defined]


def test_config_reads_files(write_yaml: Callable[..., Path], tmp_path: Path) -> None:
    path = write_yaml(FLOW)
    (tmp_path / "c.yaml").write_text("settings:\n  parallel:\n    max_workers: 5\n", encoding="utf-8")
    config = parallel_of(path, overrides.config(f"@{tmp_path / 'c.yaml'}"))
    assert config.max_workers == 5  # type: ignore[attr-defined]


def test_a_bad_override_is_a_load_error_at_the_flag(write_yaml: Callable[..., Path]) -> None:
    path = write_yaml(FLOW)
    with pytest.raises(LoadError) as caught:
        tea.load(path, overrides=[overrides.setting("settings.parallel.max_wrokers=3")])
    text = str(caught.value)
    assert text.startswith("--set settings.parallel.max_wrokers=3:") and "did you mean 'max_workers'" in text
    with pytest.raises(LoadError, match=r"^--strategy nope: .*unknown parallel strategy 'nope'"):
        tea.load(path, overrides=[overrides.strategy("nope")])


def test_hosts_spec_and_hosts_file(tmp_path: Path) -> None:
    assert overrides.hosts("a@h1, 2/h2:2222").value == ["a@h1", "2/h2:2222"]
    (tmp_path / "hosts.txt").write_text("# fleet\nalice@edge1\n\n4/edge2  # big one\n", encoding="utf-8")
    assert overrides.hosts("@hosts.txt", cwd=tmp_path).value == ["alice@edge1", "4/edge2"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: overrides.hosts(" , "), "no hosts given"),
        (lambda: overrides.hosts("@/nonexistent/hosts.txt"), "cannot read"),
        (lambda: overrides.setting("novalue"), "KEY=VALUE"),
        (lambda: overrides.setting("a..b=1"), "KEY=VALUE"),
        (lambda: overrides.setting("a=[1"), "not valid YAML"),
        (lambda: overrides.config("[1, 2]"), "must be a mapping"),
        (lambda: overrides.config("{nope"), "not valid JSON"),
    ],
)
def test_bad_flags_are_input_errors(make: Callable[[], object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        make()


def test_a_path_through_a_scalar_is_an_input_error(write_yaml: Callable[..., Path]) -> None:
    path = write_yaml(FLOW)
    with pytest.raises(InputError, match="not a mapping"):
        tea.load(path, overrides=[overrides.setting("settings.parallel.strategy.x=1")])


def test_a_large_final_state_is_printed_compact_and_small_one_indented(tmp_path: Path) -> None:
    """Output over PRETTY_LIMIT (1,000,000 characters, the default) is one line of JSON."""
    flow = tmp_path / "big.yaml"
    flow.write_text('nodes:\n  - name: a\n    run: |\n      return {"big": "x" * state["n"]}\n', encoding="utf-8")
    tea_bin = Path(sys.executable).with_name("tea")
    for n, lines in ((10, 4), (1_200_000, 1)):
        done = subprocess.run([str(tea_bin), "run", str(flow), "-q", "-i", json.dumps({"n": n})],
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert len(done.stdout.strip().splitlines()) == lines
        assert len(json.loads(done.stdout)["big"]) == n
