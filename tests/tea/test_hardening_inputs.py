"""Inputs and secrets that are binary or nested without end are exit 2 naming the flag and file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

WORKFLOW = """\
nodes:
  - name: n
    run: |
      return {"seen": sorted(state)}
"""


def tea_run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m tea run flow.yaml ARGS`` in ``cwd``, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "tea", "run", "flow.yaml", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL)


def nested(depth: int) -> str:
    return '{"a": ' + "[" * depth + "]" * depth + "}"


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    (tmp_path / "flow.yaml").write_text(WORKFLOW)
    (tmp_path / "binary.dat").write_bytes(b'{"a": "\xff\xfe\x00\x80"}')
    (tmp_path / "deep.json").write_text(nested(100_000))
    (tmp_path / "deep.yaml").write_text("a: " + "[" * 100_000 + "]" * 100_000 + "\n")
    (tmp_path / "just_too_deep.json").write_text(nested(100))
    levels = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    levels += [f"{b}: &{b} [{', '.join(['*' + a] * 10)}]" for a, b in zip("abcdef", "bcdefg", strict=True)]
    (tmp_path / "bomb.yaml").write_text("\n".join(levels) + "\n")  # 10**7 values from 70 aliases
    return tmp_path


@pytest.mark.parametrize(("args", "message"), [
    (["-i", "@binary.dat"], "--input file binary.dat is not UTF-8 text"),
    (["--secrets", "@binary.dat"], "--secrets file binary.dat is not UTF-8 text"),
    (["-i", "@deep.json"], "--input file deep.json is nested more than 100 levels deep"),
    (["--secrets", "@deep.json"], "--secrets file deep.json is nested more than 100 levels deep"),
    (["-i", "@just_too_deep.json"], "--input file just_too_deep.json is nested more than 100 levels"),
    (["-i", nested(5_000)], "--input is nested more than 100 levels deep"),
    (["--secrets", nested(5_000)], "--secrets is nested more than 100 levels deep"),
    (["-i", "@deep.yaml"], "--input file deep.yaml is"),  # not valid YAML, or nested too deeply
    (["--secrets", "@deep.yaml"], "--secrets file deep.yaml is"),
    (["-i", "@bomb.yaml"], "YAML aliases expand to more than 100,000 values"),
    (["--secrets", "@bomb.yaml"], "--secrets file bomb.yaml is not valid YAML"),
])
def test_unusable_inputs_are_exit_2_naming_the_flag_and_the_file(flow, args, message):
    done = tea_run(flow, *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "internal error" not in done.stderr
    assert done.stdout == ""


def test_inputs_nested_up_to_the_limit_run(flow):
    (flow / "deep_enough.json").write_text(nested(99))
    done = tea_run(flow, "-i", "@deep_enough.json", "--secrets", nested(99).replace('"a"', '"key"'))
    assert done.returncode == 0, done.stderr
    assert '"seen"' in done.stdout


def test_the_library_refuses_a_secrets_alias_bomb_too(flow: Path) -> None:
    """``parse_secrets_arg`` (what library callers use) counts aliases like the workflow loader."""
    import tea.errors
    from tea.secrets import parse_secrets_arg

    with pytest.raises(tea.errors.InputError, match="expands too many aliases") as caught:
        parse_secrets_arg("@bomb.yaml", cwd=flow)
    assert '"x"' not in str(caught.value) and "*a" not in str(caught.value)  # the file is never quoted
