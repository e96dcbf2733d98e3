"""The ``tea`` command line, run as a real subprocess: output, exit codes and error messages."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tea
from tea import version

DATA = Path(__file__).resolve().parents[1] / "data"

RunTea = Callable[..., subprocess.CompletedProcess[str]]
WriteYaml = Callable[..., Path]


@pytest.fixture
def data(tmp_path: Path) -> Callable[[str], Path]:
    """Copy a workflow from tests/data into the temp dir (checkpoints land beside it)."""

    def copy(name: str) -> Path:
        return Path(shutil.copy(DATA / name, tmp_path / name))

    return copy


def assert_clean_failure(proc: subprocess.CompletedProcess[str], code: int) -> None:
    """The exit code is ``code``, stdout is empty and no Python traceback reached stderr."""
    assert proc.returncode == code, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr


def problem_lines(stderr: str) -> list[str]:
    """The ``file:line...: message`` lines of stderr (hints excluded)."""
    return [line for line in stderr.splitlines() if not line.startswith(" ")]


# --- tea --version and tea run -----------------------------------------------------


def test_version(run_tea: RunTea) -> None:
    """tea --version prints the package version."""
    proc = run_tea("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"tea {tea.__version__} (The Edge Agent dialect {version.DIALECT_VERSION})"


def test_version_text_is_one_helper() -> None:
    """tea.version builds the line for the package and, with a build hash, for the frozen binary."""
    assert version.__version__ == tea.__version__
    dialect = f"The Edge Agent dialect {version.DIALECT_VERSION}"
    assert version.version_text() == f"tea {tea.__version__} ({dialect})"
    assert version.version_text("1a2b3c4d5e6f") == f"tea {tea.__version__} (build 1a2b3c4d5e6f, {dialect})"


def test_run_prints_the_final_state(run_tea: RunTea, data: Callable[[str], Path]) -> None:
    """tea run prints the final state as JSON and exits 0."""
    proc = run_tea("run", data("chain.yaml"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "greeting": "hello", "name": "world", "text": "HELLO, WORLD!", "length": 13,
    }


def test_run_input_json_wins_over_initial_state(run_tea: RunTea, data: Callable[[str], Path]) -> None:
    """-i JSON is merged over initial_state."""
    proc = run_tea("run", data("chain.yaml"), "-i", '{"name": "tea"}')
    assert json.loads(proc.stdout)["text"] == "HELLO, TEA!"


def test_run_input_from_a_json_file(
    run_tea: RunTea, data: Callable[[str], Path], tmp_path: Path
) -> None:
    """-i @file.json reads the input from a file."""
    (tmp_path / "in.json").write_text('{"greeting": "hi"}', encoding="utf-8")
    proc = run_tea("run", data("chain.yaml"), "--input", "@in.json")
    assert json.loads(proc.stdout)["text"] == "HI, WORLD!"


def test_run_input_from_a_yaml_file(
    run_tea: RunTea, data: Callable[[str], Path], tmp_path: Path
) -> None:
    """-i @file.yaml reads YAML input."""
    (tmp_path / "in.yaml").write_text("greeting: yo\nname: you\n", encoding="utf-8")
    proc = run_tea("run", data("chain.yaml"), "-i", "@in.yaml")
    assert json.loads(proc.stdout)["text"] == "YO, YOU!"


def test_run_output_file(run_tea: RunTea, data: Callable[[str], Path], tmp_path: Path) -> None:
    """-o writes the final state to a file and nothing to stdout."""
    proc = run_tea("run", data("chain.yaml"), "-o", "out.json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert json.loads((tmp_path / "out.json").read_text())["length"] == 13


def ndjson(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_stream_prints_ndjson_events(run_tea: RunTea, data: Callable[[str], Path]) -> None:
    """-s prints one JSON event per line (updates mode by default)."""
    events = ndjson(run_tea("run", data("chain.yaml"), "-s").stdout)
    assert [e["type"] for e in events] == ["start", "node_end", "node_end", "node_end", "end"]
    assert events[1] == {**events[1], "node": "compose", "update": {"text": "hello, world"}}
    assert events[-1]["state"]["length"] == 13


def test_stream_mode_values(run_tea: RunTea, data: Callable[[str], Path]) -> None:
    """--stream-mode values prints the state after each node."""
    events = ndjson(run_tea("run", data("chain.yaml"), "-s", "--stream-mode", "values").stdout)
    assert [e["type"] for e in events] == ["start", "state", "state", "state", "end"]


def test_stream_mode_debug(run_tea: RunTea, data: Callable[[str], Path]) -> None:
    """--stream-mode debug adds node_start and state events."""
    events = ndjson(run_tea("run", data("chain.yaml"), "-s", "--stream-mode", "debug").stdout)
    assert [e["type"] for e in events].count("node_start") == 3


def test_run_fan_out_workflow(run_tea: RunTea, data: Callable[[str], Path]) -> None:
    """A workflow with a static fan-out and a dynamic_parallel runs from the CLI."""
    proc = run_tea("run", data("fanout.yaml"), "-i", '{"text": "tea runs edge agents"}')
    assert proc.returncode == 0, proc.stderr
    final = json.loads(proc.stdout)
    assert (final["count"], final["longest"]) == (4, "agents")
    assert final["uppers"] == ["TEA", "RUNS", "EDGE", "AGENTS"]


def test_stream_of_a_fan_out_has_branch_events(run_tea: RunTea, data: Callable[[str], Path]) -> None:
    """Streaming a fan-out shows each branch's end."""
    events = ndjson(run_tea("run", data("fanout.yaml"), "-s", "-i", '{"text": "a bb"}').stdout)
    ends = sorted(e["branch"] for e in events if e["type"] == "branch_end")
    assert ends == ["per_word[0]", "per_word[1]", "prepare[count]", "prepare[longest]"]


def test_secrets_reach_templates_but_not_the_output(run_tea: RunTea, write_yaml: WriteYaml) -> None:
    """--secrets values are usable in templates and redacted from printed state."""
    path = write_yaml(
        """
        nodes:
          - name: use
            uses: json.parse
            with: {text: "1"}
            output: {token: "{{ secrets.api_key }}", length: "{{ secrets.api_key | length }}"}
        """
    )
    proc = run_tea("run", path, "--secrets", '{"api_key": "s3cr3t-value"}')
    assert proc.returncode == 0, proc.stderr
    assert "s3cr3t-value" not in proc.stdout
    assert json.loads(proc.stdout)["length"] == 12


LOOP = """
nodes:
  - name: spin
    type: while_loop
    condition: "true"
    max_iterations: 2
    body:
      - run: "x = 1"
"""


def test_warnings_go_to_stderr(run_tea: RunTea, write_yaml: WriteYaml) -> None:
    """Warnings (a while_loop cut off by max_iterations) are logged on stderr, not stdout."""
    proc = run_tea("run", write_yaml(LOOP))
    assert proc.returncode == 0, proc.stderr
    assert "max_iterations" in proc.stderr
    assert json.loads(proc.stdout) == {"x": 1}


def test_quiet_silences_warnings(run_tea: RunTea, write_yaml: WriteYaml) -> None:
    """-q leaves only errors on stderr."""
    proc = run_tea("run", "-q", write_yaml(LOOP))
    assert proc.returncode == 0
    assert proc.stderr == ""
    assert json.loads(proc.stdout) == {"x": 1}


# --- failures at run time ----------------------------------------------------------


def test_failing_node_exits_1_naming_the_node(run_tea: RunTea, data: Callable[[str], Path]) -> None:
    """A failing node exits 1; stderr names the node and its YAML line, with no traceback."""
    path = data("failing.yaml")
    proc = run_tea("run", path)
    assert_clean_failure(proc, 1)
    assert "explode" in proc.stderr
    assert "KeyError" in proc.stderr
    assert f"{path}:11" in proc.stderr


def test_stream_of_a_failing_run_ends_with_an_error_event(
    run_tea: RunTea, data: Callable[[str], Path]
) -> None:
    """With -s, a failing node's error event is the last NDJSON line; exit 1."""
    proc = run_tea("run", "-s", data("failing.yaml"))
    assert proc.returncode == 1
    events = ndjson(proc.stdout)
    assert events[-1]["type"] == "error"
    assert events[-1]["node"] == "explode"
    assert "Traceback" not in proc.stderr


def test_verbose_shows_the_traceback_with_the_users_line(
    run_tea: RunTea, data: Callable[[str], Path]
) -> None:
    """-v prints the traceback, including the user's own line of the YAML file."""
    path = data("failing.yaml")
    proc = run_tea("run", "-v", path)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr
    assert f'File "{path}", line 11' in proc.stderr
    assert 'c = state["does_not_exist"]' in proc.stderr


def test_failing_node_writes_no_output_file(
    run_tea: RunTea, data: Callable[[str], Path], tmp_path: Path
) -> None:
    """-o is not written when the run fails."""
    proc = run_tea("run", data("failing.yaml"), "-o", "out.json")
    assert proc.returncode == 1
    assert not (tmp_path / "out.json").exists()


def test_recursion_limit_exits_1(run_tea: RunTea, write_yaml: WriteYaml) -> None:
    """An endless loop stops at the recursion limit: exit 1, the cycle named."""
    path = write_yaml(
        """
        settings: {recursion_limit: 10}
        nodes:
          - name: spin
            run: "x = 1"
            goto: spin
        """
    )
    proc = run_tea("run", path)
    assert_clean_failure(proc, 1)
    assert "recursion limit" in proc.stderr
    assert "spin" in proc.stderr


# --- bad input: one clear message, exit 2, no traceback ---------------------------


def bad_run(run_tea: RunTea, path: Path, *args: str) -> str:
    proc = run_tea("run", path, *args)
    assert_clean_failure(proc, 2)
    return proc.stderr


def test_yaml_syntax_error(run_tea: RunTea, write_yaml: WriteYaml) -> None:
    """A YAML syntax error names the file and line."""
    path = write_yaml('nodes:\n  - name: a\n    run: "x = 1\n  - name: b\n')
    stderr = bad_run(run_tea, path)
    assert stderr.startswith(f"{path}:3:")
    assert "YAML syntax error" in stderr


def test_unknown_top_level_key(run_tea: RunTea, write_yaml: WriteYaml) -> None:
    """An unknown top-level key is reported at file:line:col with a suggestion."""
    path = write_yaml("name: x\nedgse: []\nnodes:\n  - name: a\n")
    stderr = bad_run(run_tea, path)
    assert stderr.startswith(f"{path}:2:1: unknown top-level key 'edgse'")
    assert "did you mean 'edges'?" in stderr


def test_unknown_node_key(run_tea: RunTea, write_yaml: WriteYaml) -> None:
    """An unknown node key is reported at its line with a suggestion."""
    path = write_yaml("nodes:\n  - name: a\n    gotoo: b\n  - name: b\n")
    stderr = bad_run(run_tea, path)
    assert stderr.startswith(f"{path}:3:5: unknown key 'gotoo'")
    assert "did you mean 'goto'?" in stderr


def test_duplicate_node_names(run_tea: RunTea, write_yaml: WriteYaml) -> None:
    """Duplicate node names are reported at the second one."""
    path = write_yaml("nodes:\n  - name: a\n  - name: a\n")
    assert bad_run(run_tea, path).startswith(f"{path}:3:5: duplicate node name 'a'")


def test_goto_missing_node(run_tea: RunTea, write_yaml: WriteYaml) -> None:
    """A goto to a missing node is reported at the goto."""
    path = write_yaml("nodes:\n  - name: a\n    goto: b\n")
    stderr = bad_run(run_tea, path)
    assert stderr.startswith(f"{path}:3:")
    assert "unknown node 'b'" in stderr


def test_edge_missing_node(run_tea: RunTea, write_yaml: WriteYaml) -> None:
    """An edge to a missing node is reported at the edge."""
    path = write_yaml("nodes:\n  - name: a\nedges:\n  - from: a\n    to: zz\n")
    stderr = bad_run(run_tea, path)
    assert stderr.startswith(f"{path}:5:")
    assert "unknown node 'zz'" in stderr


def test_fan_in_missing_node(run_tea: RunTea, write_yaml: WriteYaml) -> None:
    """A fan_in naming a missing node is reported at the fan_in."""
    path = write_yaml(
        "nodes:\n  - name: a\n  - name: b\nedges:\n  - {from: a, to: [b], parallel: true,\n"
        "     fan_in: merge}\n"
    )
    stderr = bad_run(run_tea, path)
    assert stderr.startswith(f"{path}:6:")
    assert "unknown node 'merge'" in stderr


def test_fan_out_without_fan_in(run_tea: RunTea, write_yaml: WriteYaml) -> None:
    """A fan-out without a fan_in says what to add."""
    path = write_yaml("nodes:\n  - name: a\n  - name: b\nedges:\n  - {from: a, to: [b], parallel: true}\n")
    stderr = bad_run(run_tea, path)
    assert stderr.startswith(f"{path}:5:")
    assert "has no fan_in" in stderr
    assert "hint: add fan_in" in stderr


def test_dynamic_parallel_without_a_body(run_tea: RunTea, write_yaml: WriteYaml) -> None:
    """dynamic_parallel with no body is refused."""
    path = write_yaml(
        "nodes:\n  - name: d\n    type: dynamic_parallel\n    items: '{{ [1] }}'\n    fan_in: j\n"
        "  - name: j\n"
    )
    stderr = bad_run(run_tea, path)
    assert stderr.startswith(f"{path}:2:")
    assert "exactly one of action, steps, subgraph" in stderr


def test_dynamic_parallel_with_two_bodies(run_tea: RunTea, write_yaml: WriteYaml) -> None:
    """dynamic_parallel with two bodies is refused."""
    path = write_yaml(
        "nodes:\n  - name: d\n    type: dynamic_parallel\n    items: '{{ [1] }}'\n    fan_in: j\n"
        "    steps: [{run: 'x = 1'}]\n    action: {uses: log}\n  - name: j\n"
    )
    assert "exactly one of action, steps, subgraph" in bad_run(run_tea, path)


def test_python_syntax_error(run_tea: RunTea, write_yaml: WriteYaml) -> None:
    """A Python syntax error in run: names the YAML line of the bad statement."""
    path = write_yaml("nodes:\n  - name: a\n    run: |\n      x = 1\n      if x\n        y = 2\n")
    stderr = bad_run(run_tea, path)
    assert stderr.startswith(f"{path}:5")
    assert "Python syntax error" in stderr


def test_jinja_syntax_error(run_tea: RunTea, write_yaml: WriteYaml) -> None:
    """A Jinja syntax error names the YAML line of the template."""
    path = write_yaml(
        "nodes:\n  - name: a\n    uses: log\n    with:\n      message: '{{ state.x | }}'\n"
    )
    stderr = bad_run(run_tea, path)
    assert stderr.startswith(f"{path}:5")
    assert "Jinja syntax error" in stderr


def test_input_that_is_not_json(run_tea: RunTea, data: Callable[[str], Path]) -> None:
    """--input that is not JSON is refused with the position of the problem."""
    stderr = bad_run(run_tea, data("chain.yaml"), "-i", "{name: tea}")
    assert "--input is not valid JSON" in stderr
    assert "line 1 column 2" in stderr
    assert "<workflow>" not in stderr


def test_input_that_is_not_an_object(run_tea: RunTea, data: Callable[[str], Path]) -> None:
    """--input that is JSON but not an object is refused."""
    stderr = bad_run(run_tea, data("chain.yaml"), "-i", "[1, 2]")
    assert "--input must be a JSON object, not list" in stderr
    assert "<workflow>" not in stderr


def test_input_file_missing(run_tea: RunTea, data: Callable[[str], Path]) -> None:
    """--input @missing.json names the missing file."""
    stderr = bad_run(run_tea, data("chain.yaml"), "-i", "@missing.json")
    assert "missing.json" in stderr
    assert "not found" in stderr


def test_input_file_with_bad_json_names_the_file_and_line(
    run_tea: RunTea, data: Callable[[str], Path], tmp_path: Path
) -> None:
    """A JSON input file that does not parse is reported with its name and line."""
    (tmp_path / "in.json").write_text('{\n  "a": 1,\n  oops\n}\n', encoding="utf-8")
    stderr = bad_run(run_tea, data("chain.yaml"), "-i", "@in.json")
    assert "in.json" in stderr
    assert "line 3" in stderr


def test_workflow_file_missing(run_tea: RunTea) -> None:
    """A workflow path that does not exist exits 2 with a clear message."""
    proc = run_tea("run", "nope.yaml")
    assert_clean_failure(proc, 2)
    assert "nope.yaml" in proc.stderr


# --- tea validate ------------------------------------------------------------------


def test_validate_ok(run_tea: RunTea, data: Callable[[str], Path]) -> None:
    """A valid workflow validates with exit 0 and an OK line."""
    proc = run_tea("validate", data("fanout.yaml"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("OK: ")
    assert "6 nodes" in proc.stdout


def test_validate_prints_every_problem(run_tea: RunTea, data: Callable[[str], Path]) -> None:
    """Several problems give several file:line:col: message lines and exit 2."""
    path = data("many_problems.yaml")
    proc = run_tea("validate", path)
    assert_clean_failure(proc, 2)
    lines = problem_lines(proc.stderr)
    assert len(lines) == 4
    for line in lines:
        assert re.match(rf"^{re.escape(str(path))}:\d+:\d+: \S", line), line
    assert sorted(int(line.split(":")[1]) for line in lines) == [3, 6, 7, 11]


def test_validate_does_not_run(run_tea: RunTea, data: Callable[[str], Path]) -> None:
    """validate of a workflow whose node would fail succeeds: nothing runs."""
    proc = run_tea("validate", data("failing.yaml"))
    assert proc.returncode == 0, proc.stderr


def test_validate_several_files(
    run_tea: RunTea, data: Callable[[str], Path]
) -> None:
    """validate checks every file given and fails if any is invalid."""
    proc = run_tea("validate", data("chain.yaml"), data("many_problems.yaml"))
    assert proc.returncode == 2
    assert "OK: " in proc.stdout and "chain.yaml" in proc.stdout
    assert "many_problems.yaml" in proc.stderr


def test_validate_reports_a_syntax_error(run_tea: RunTea, write_yaml: WriteYaml) -> None:
    """A Python syntax error shows up in validate too."""
    path = write_yaml("nodes:\n  - name: a\n    run: |\n      x = (\n")
    proc = run_tea("validate", path)
    assert_clean_failure(proc, 2)
    assert problem_lines(proc.stderr) == [
        f"{path}:4:11: Python syntax error in run of node 'a': '(' was never closed"
    ]


def test_validate_reports_a_jinja_error_with_a_column(run_tea: RunTea, write_yaml: WriteYaml) -> None:
    """A Jinja syntax error shows up as file:line:col in validate."""
    path = write_yaml("nodes:\n  - name: a\n    uses: log\n    with: {message: '{{ x + }}'}\n")
    proc = run_tea("validate", path)
    assert_clean_failure(proc, 2)
    assert re.match(rf"^{re.escape(str(path))}:4:\d+: Jinja syntax error", proc.stderr)


# --- tea inspect -------------------------------------------------------------------


def test_inspect_text(run_tea: RunTea, data: Callable[[str], Path]) -> None:
    """inspect prints nodes with kinds and lines, and the routes."""
    proc = run_tea("inspect", data("fanout.yaml"))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "workflow fanout (entry: prepare)" in out
    assert re.search(r"per_word\s+dynamic_parallel\s+line 19", out)
    assert "prepare -> count  (parallel (thread))" in out
    assert "prepare -> merge  (fan-in)" in out


def test_inspect_json(run_tea: RunTea, data: Callable[[str], Path]) -> None:
    """inspect -f json describes nodes and edges."""
    info = json.loads(run_tea("inspect", "-f", "json", data("fanout.yaml")).stdout)
    assert info["entry"] == "prepare"
    assert [n["name"] for n in info["nodes"]] == [
        "prepare", "count", "longest", "merge", "per_word", "collect",
    ]
    from_dynamic = [e for e in info["edges"] if e["from"] == "per_word"]
    assert from_dynamic == [{"from": "per_word", "to": "collect", "label": "fan-in"}]


def test_inspect_mermaid(run_tea: RunTea, data: Callable[[str], Path]) -> None:
    """inspect -f mermaid prints a flowchart."""
    out = run_tea("inspect", "--format", "mermaid", data("chain.yaml")).stdout
    assert out.splitlines()[0] == "flowchart TD"
    ids = dict(re.findall(r'^    (n\d+)\["([^"]+)"\]$', out, re.M))
    by_name = {name: node_id for node_id, name in ids.items()}
    assert f"    {by_name['compose']} --> {by_name['shout']}" in out
    assert f"    {by_name['measure']} --> {by_name['__end__']}" in out


def test_inspect_mermaid_quotes_odd_names(run_tea: RunTea, tmp_path: Path) -> None:
    """Names with spaces and labels with | stay valid Mermaid (quoted, escaped)."""
    flow = tmp_path / "odd.yaml"
    flow.write_text(
        'nodes:\n  - name: "étape un"\n    goto:\n      - if: "state.x | length > 2"\n'
        '        to: "étape deux"\n      - to: __end__\n  - name: "étape deux"\n'
    )
    out = run_tea("inspect", "-f", "mermaid", flow).stdout
    assert '["étape un"]' in out
    assert '-->|"state.x #124; length > 2"|' in out


def test_inspect_dot(run_tea: RunTea, data: Callable[[str], Path]) -> None:
    """inspect -f dot prints a Graphviz digraph."""
    out = run_tea("inspect", "-f", "dot", data("chain.yaml")).stdout
    assert out.startswith('digraph "chain" {')
    assert '"compose" -> "shout";' in out
    assert out.rstrip().endswith("}")


def test_inspect_invalid_workflow(run_tea: RunTea, data: Callable[[str], Path]) -> None:
    """inspect of an invalid workflow exits 2 with the problems."""
    proc = run_tea("inspect", data("many_problems.yaml"))
    assert_clean_failure(proc, 2)
    assert "unknown top-level key" in proc.stderr


def test_help_lists_the_commands(run_tea: RunTea) -> None:
    """tea --help lists run, validate and inspect."""
    out = run_tea("--help").stdout
    for command in ("run", "validate", "inspect"):
        assert re.search(rf"^\s+{command}\b", out, re.MULTILINE)


def test_help_hides_the_worker_command(run_tea: RunTea) -> None:
    """tea worker (for remote hosts) is left out of --help but still answers its own --help."""
    assert not re.search(r"^\s+worker\b", run_tea("--help").stdout, re.MULTILINE)
    proc = run_tea("worker", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "remote hosts" in proc.stdout
