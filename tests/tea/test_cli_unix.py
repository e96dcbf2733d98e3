"""The ``tea`` command as a Unix tool: stdout carries only data, ``-`` means stdin or stdout."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cli_helpers import TEA_BIN, tea

CHAIN = """\
name: chain
initial_state: {name: world}
nodes:
  - name: greet
    run: |
      print("greeting", state["name"])
      return {"text": "hello " + state["name"]}
"""

PRINTING_FANOUT = """\
name: printing
nodes:
  - name: main
    run: |
      print("on the main path")
      x = 1
  - name: fan
    type: dynamic_parallel
    items: "{{{{ [1, 2] }}}}"
    fan_in: done
    parallel_strategy: {strategy}
    steps:
      - run: |
          import os, sys
          print("in branch", state["item"])
          sys.stdout.write("raw stdout\\n")
          os.system("echo from a child process")
          return {{"y": state["item"]}}
  - name: done
    run: |
      return {{"ys": [r["y"] for r in parallel_results]}}
"""


def write(tmp_path: Path, text: str, name: str = "flow.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("strategy", ["thread", "process"])
def test_prints_never_reach_stdout(tmp_path: Path, strategy: str) -> None:
    """print(), sys.stdout and child processes in nodes and branches go to stderr; stdout is JSON."""
    path = write(tmp_path, PRINTING_FANOUT.format(strategy=strategy))
    proc = tea("run", path, "-v", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ys"] == [1, 2]
    assert "[main] on the main path" in proc.stderr
    assert "[fan] in branch 1" in proc.stderr and "[fan] in branch 2" in proc.stderr
    assert "raw stdout" in proc.stderr and "from a child process" in proc.stderr


def test_print_in_a_thread_branch_is_shown_without_verbose(tmp_path: Path) -> None:
    """A print in a branch is on stderr at the default verbosity, led by its node."""
    path = write(tmp_path, PRINTING_FANOUT.format(strategy="thread"))
    proc = tea("run", path, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "[fan] in branch 2" in proc.stderr


def test_stream_output_is_pure_ndjson(tmp_path: Path) -> None:
    """With --stream, every stdout line is a JSON event, whatever the nodes print."""
    path = write(tmp_path, PRINTING_FANOUT.format(strategy="thread"))
    proc = tea("run", path, "--stream", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events[0]["type"] == "start" and events[-1]["type"] == "end"


def test_input_from_stdin(tmp_path: Path) -> None:
    """-i - and -i @- read the input as JSON from stdin."""
    path = write(tmp_path, CHAIN)
    for flag in ("-", "@-"):
        proc = tea("run", path, "-i", flag, cwd=tmp_path, stdin='{"name": "pipe"}')
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["text"] == "hello pipe"


def test_workflow_from_stdin_resolves_paths_from_the_current_directory(tmp_path: Path) -> None:
    """tea run - reads the workflow from stdin; its relative paths start at the current directory."""
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "nodes:\n  - name: inner\n    run: |\n      return {'inner': True}\n", "inner.yaml")
    text = (
        "nodes:\n  - name: fan\n    type: dynamic_parallel\n    items: '{{ [1] }}'\n"
        "    fan_in: done\n    subgraph: sub/inner.yaml\n  - name: done\n"
    )
    proc = tea("run", "-", "-i", '{"a": 1}', cwd=tmp_path, stdin=text)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["parallel_results"][0]["state"]["inner"] is True


def test_a_bad_workflow_on_stdin_is_named_stdin(tmp_path: Path) -> None:
    proc = tea("run", "-", cwd=tmp_path, stdin="nodes:\n  - name: a\n    gotoo: b\n")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("<stdin>:3:")


def test_stdin_is_read_once(tmp_path: Path) -> None:
    """Two options asking for stdin are refused with exit 2, naming both."""
    proc = tea("run", "-", "-i", "-", cwd=tmp_path, stdin=CHAIN)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "--input reads stdin, but the workflow (-) already does" in proc.stderr


def test_stdin_that_is_not_json_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, CHAIN)
    proc = tea("run", path, "-i", "-", cwd=tmp_path, stdin="name: yaml")
    assert proc.returncode == 2 and "--input (stdin) is not valid JSON" in proc.stderr


def test_secrets_from_stdin(tmp_path: Path) -> None:
    """--secrets @- reads the secrets as JSON from stdin; they never reach the output."""
    path = write(tmp_path, (
        "nodes:\n  - name: use\n    run: |\n      return {'n': len(secrets['token']), 't': secrets['token']}\n"
    ))
    proc = tea("run", path, "--secrets", "@-", cwd=tmp_path, stdin='{"token": "s3cr3t-v4lue"}')
    assert proc.returncode == 0, proc.stderr
    final = json.loads(proc.stdout)
    assert final["n"] == 12 and final["t"] == "***"
    empty = tea("run", path, "--secrets", "@-", cwd=tmp_path, stdin="")
    assert empty.returncode == 2 and "--secrets @- read nothing from stdin" in empty.stderr


def test_output_dash_is_stdout(tmp_path: Path) -> None:
    """-o - prints the final state on stdout (no file named -); with --stream, as a last NDJSON line."""
    path = write(tmp_path, CHAIN)
    proc = tea("run", path, "-o", "-", cwd=tmp_path)
    assert proc.returncode == 0 and json.loads(proc.stdout)["text"] == "hello world"
    assert not (tmp_path / "-").exists()
    streamed = tea("run", path, "-o", "-", "--stream", cwd=tmp_path)
    lines = [json.loads(line) for line in streamed.stdout.splitlines()]
    assert lines[-2]["type"] == "end" and lines[-1] == {"name": "world", "text": "hello world"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-q", "-v"], "-q and -v contradict each other"),
        (["--stream-mode", "everything"], "'everything' is not one of"),
        (["-o", "missing/out.json"], "the directory missing does not exist"),
        (["--set", "nokey"], "write KEY=VALUE"),
        (["--strategy", "warp"], "unknown parallel strategy 'warp'"),
        (["--hosts", ","], "no hosts given"),
        (["-C", "[1]"], "must be a mapping"),
        (["--interrupt-before", "ghost"], "unknown node 'ghost'"),
    ],
)
def test_a_bad_flag_value_exits_2_with_a_clear_error(tmp_path: Path, args: list[str], message: str) -> None:
    path = write(tmp_path, CHAIN)
    proc = tea("run", path, *args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert message in proc.stderr


def test_strategy_and_set_retarget_a_workflow(tmp_path: Path) -> None:
    """--strategy sets settings.parallel.strategy; --set any key (both checked like the YAML)."""
    text = PRINTING_FANOUT.format(strategy="thread").replace("    parallel_strategy: thread\n", "")
    path = write(tmp_path, text)
    proc = tea("run", path, "--strategy", "process", "--set", "settings.parallel.max_workers=1",
               "-s", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    starts = [json.loads(line) for line in proc.stdout.splitlines() if '"branch_start"' in line]
    assert {e["strategy"] for e in starts} == {"process"}


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """tea run ... | head -c 1: no traceback and no complaint when the reader goes away."""
    path = write(tmp_path, "nodes:\n  - name: big\n    run: |\n      return {'x': 'y' * 4000000}\n")
    shell = f"'{TEA_BIN}' run '{path}' | head -c 1 > /dev/null; echo ${{PIPESTATUS[0]}}"
    proc = subprocess.run(["bash", "-c", shell], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.stdout.strip() in ("0", "141")
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr


def test_help_hides_the_worker_and_lists_the_new_commands(tmp_path: Path) -> None:
    proc = tea("--help", cwd=tmp_path)
    assert "worker" not in proc.stdout
    for command in ("schema", "checkpoints", "validate", "run", "resume"):
        assert command in proc.stdout
