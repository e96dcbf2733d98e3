"""The reference's CLI habits: ``--actions-file``, ``--actions-module`` and ``tea --version``,
run as ``python -m tea`` in a real subprocess."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import tea
from tea import version
from tests.tea.cli_helpers import tea_module as tea_cmd
from tests.tea.cli_helpers import write

FLOW = """
name: greet
nodes:
  - name: hello
    uses: my.greet
    with: {who: "{{ state.who }}"}
    output: greeting
"""

GREET = """
def greet(state, who):
    return f"hello {who}"


def register_actions(registry, engine):
    registry["my.greet"] = greet
"""




def assert_clean_failure(proc: subprocess.CompletedProcess[str], *named: str) -> None:
    """Exit 2, nothing on stdout, no traceback, and stderr names each of ``named``."""
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    for text in named:
        assert text in proc.stderr


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    return write(tmp_path / "flow.yaml", FLOW)


def test_actions_file_registers_the_actions_of_register_actions(tmp_path: Path, flow: Path) -> None:
    write(tmp_path / "acts.py", GREET)
    proc = tea_cmd("run", flow, "-i", '{"who": "ada"}', "--actions-file", "acts.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["greeting"] == "hello ada"


def test_without_the_flag_the_action_is_unknown(tmp_path: Path, flow: Path) -> None:
    proc = tea_cmd("run", flow, "-i", '{"who": "ada"}', cwd=tmp_path)
    assert_clean_failure(proc, "unknown action 'my.greet'")


def test_actions_module_imports_a_module(tmp_path: Path, flow: Path) -> None:
    write(tmp_path / "lib" / "greetings" / "__init__.py", GREET)
    proc = tea_cmd("run", flow, "-i", '{"who": "bo"}', "--actions-module", "greetings", cwd=tmp_path,
                   env={"PYTHONPATH": str(tmp_path / "lib")})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["greeting"] == "hello bo"


def test_a_flag_action_replaces_a_builtin_and_the_workflows_imports_replace_it(tmp_path: Path) -> None:
    """As the reference: built-ins < --actions-* < the workflow's own imports:."""
    write(tmp_path / "mock_llm.py", """
        def call(state, **params):
            return {"content": "mocked"}

        def shout(state, text):
            return text.upper()

        def register_actions(registry, engine):
            registry["llm.call"] = call
            registry["shout"] = shout
    """)
    write(tmp_path / "own.py", """
        def register_actions(registry, engine):
            registry["shout"] = lambda state, text: text + "!"
    """)
    flow = write(tmp_path / "flow.yaml", """
        imports:
          - path: own.py
        nodes:
          - name: ask
            uses: llm.call
            with: {model: gpt-4o-mini, messages: [{role: user, content: hi}]}
            output: answer
          - name: loud
            uses: shout
            with: {text: hey}
            output: said
    """)
    proc = tea_cmd("run", flow, "--actions-file", "mock_llm.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    final = json.loads(proc.stdout)
    assert final["answer"] == {"content": "mocked"}
    assert final["said"] == "hey!"


def test_modules_load_before_files_so_a_file_wins(tmp_path: Path, flow: Path) -> None:
    write(tmp_path / "lib" / "greetings.py", GREET)
    write(tmp_path / "other.py", """
        def register_actions(registry, engine):
            registry["my.greet"] = lambda state, who: f"hi {who}"
    """)
    proc = tea_cmd("run", flow, "-i", '{"who": "cy"}', "--actions-file", "other.py",
                   "--actions-module", "greetings", cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "lib")})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["greeting"] == "hi cy"


def test_a_missing_actions_file_is_exit_2_naming_it(tmp_path: Path, flow: Path) -> None:
    proc = tea_cmd("run", flow, "--actions-file", "nope.py", cwd=tmp_path)
    assert_clean_failure(proc, "--actions-file nope.py", "no such file")


def test_an_actions_file_that_fails_to_import_is_exit_2_naming_it(tmp_path: Path, flow: Path) -> None:
    write(tmp_path / "broken.py", "import no_such_dependency_xyz\n")
    proc = tea_cmd("run", flow, "--actions-file", "broken.py", cwd=tmp_path)
    assert_clean_failure(proc, "--actions-file broken.py", "no_such_dependency_xyz")


def test_an_actions_file_with_a_syntax_error_is_exit_2_at_its_line(tmp_path: Path, flow: Path) -> None:
    write(tmp_path / "typo.py", "def register_actions(registry, engine):\n    registry['x'] = (\n")
    proc = tea_cmd("run", flow, "--actions-file", "typo.py", cwd=tmp_path)
    assert_clean_failure(proc, "typo.py:", "syntax error")


def test_register_actions_that_raises_is_exit_2_naming_the_file(tmp_path: Path, flow: Path) -> None:
    write(tmp_path / "raises.py", """
        def register_actions(registry, engine):
            raise RuntimeError("no licence")
    """)
    proc = tea_cmd("run", flow, "--actions-file", "raises.py", cwd=tmp_path)
    assert_clean_failure(proc, "--actions-file raises.py", "no licence")


def test_a_missing_actions_module_is_exit_2_naming_it(tmp_path: Path, flow: Path) -> None:
    proc = tea_cmd("run", flow, "--actions-module", "no_such_module_xyz", cwd=tmp_path)
    assert_clean_failure(proc, "--actions-module no_such_module_xyz", "cannot import")


def test_validate_takes_the_actions_flags(tmp_path: Path, flow: Path) -> None:
    write(tmp_path / "acts.py", GREET)
    assert tea_cmd("validate", flow, cwd=tmp_path).returncode == 2
    proc = tea_cmd("validate", flow, "--actions-file", "acts.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("OK:")


def test_resume_takes_the_actions_flags(tmp_path: Path, flow: Path) -> None:
    write(tmp_path / "acts.py", GREET)
    stopped = tea_cmd("run", flow, "-i", '{"who": "di"}', "--actions-file", "acts.py",
                      "--interrupt-before", "hello", cwd=tmp_path)
    assert stopped.returncode == 3, stopped.stderr
    checkpoint = next(line.split(": ", 1)[1] for line in stopped.stderr.splitlines()
                      if line.startswith("checkpoint: "))
    assert tea_cmd("resume", checkpoint, cwd=tmp_path).returncode == 2
    proc = tea_cmd("resume", checkpoint, "--actions-file", "acts.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["greeting"] == "hello di"


def test_flag_actions_run_in_process_workers(tmp_path: Path) -> None:
    """The flag's file travels like an imports: entry, so branches on processes find it."""
    write(tmp_path / "acts.py", GREET)
    flow = write(tmp_path / "fan.yaml", """
        settings:
          parallel: {strategy: process, max_workers: 2}
        nodes:
          - name: each
            type: dynamic_parallel
            items: "{{ state.names }}"
            fan_in: collect
            steps:
              - uses: my.greet
                with: {who: "{{ state.item }}"}
                output: g
          - name: collect
            run: |
              return {"all": sorted(r["g"] for r in parallel_results)}
    """)
    proc = tea_cmd("run", flow, "-i", '{"names": ["x", "y"]}', "--actions-file", "acts.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["all"] == ["hello x", "hello y"]


def test_version_names_the_dialect_it_follows(tmp_path: Path) -> None:
    proc = tea_cmd("--version", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"tea {tea.__version__} (The Edge Agent dialect {version.DIALECT_VERSION})"
    assert version.DIALECT_VERSION == "0.9.105"
    assert version.version_text("abc123") == (
        f"tea {tea.__version__} (build abc123, The Edge Agent dialect {version.DIALECT_VERSION})"
    )
