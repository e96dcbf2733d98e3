"""Loading a mission: every problem is a LoadError at its file and line, with a hint."""

from __future__ import annotations

import random
from collections import deque
from itertools import pairwise
from pathlib import Path

import pytest
from mission_helpers import LoadMission, WriteMission

from tea.checkpoint import workflow_hash
from tea.errors import LoadError, LoadErrors
from tea.mission import collect_errors, is_mission, load_mission, loads_mission


def problems(load: LoadMission, text: str) -> list[LoadError]:
    with pytest.raises(LoadError) as caught:
        load(text)
    error = caught.value
    return list(error.errors) if isinstance(error, LoadErrors) else [error]


def only(load: LoadMission, text: str) -> LoadError:
    found = problems(load, text)
    assert len(found) == 1, [str(e) for e in found]
    return found[0]


def test_a_valid_mission_loads_into_records(load: LoadMission) -> None:
    """Fields, defaults and per-step overrides land in the records."""
    mission = load("""
        name: build
        version: 1.0
        description: compile and test
        config: {timeout_seconds: 60, fail_fast: false, max_concurrent_steps: 3, retry_attempts: 2,
                 retry_delay_ms: 50}
        steps:
          - id: fetch
            step_type: noop
          - id: build
            name: Build it
            step_type: noop
            depends_on: [fetch]
            timeout_seconds: 5
            continue_on_error: true
            retry_attempts: 0
    """)
    assert (mission.name, mission.version, mission.description) == ("build", "1.0", "compile and test")
    assert mission.config.fail_fast is False and mission.max_concurrent == 3
    fetch, build = mission.steps
    assert fetch.name == "fetch" and fetch.retry_attempts is None and fetch.location.line == 7
    assert build.depends_on == ("fetch",) and build.timeout_seconds == 5 and build.continue_on_error
    assert build.retry_attempts == 0 and mission.strategy == "thread"


def test_a_cycle_is_named_in_run_order_at_its_line(load: LoadMission) -> None:
    """a -> b -> c -> a: each must run before the next, so none can start."""
    error = only(load, """
        name: loop
        steps:
          - id: a
            step_type: noop
            depends_on: [c]
          - id: b
            step_type: noop
            depends_on: [a]
          - id: c
            step_type: noop
            depends_on: [b]
          - id: free
            step_type: noop
    """)
    assert "dependency cycle: a -> b -> c -> a" in str(error)
    assert error.location.line == 5 and error.location.file.endswith("mission.yaml")
    assert error.hint is not None and "c depends on b" in error.hint


def test_a_step_depending_on_itself_is_a_cycle(load: LoadMission) -> None:
    error = only(load, "steps:\n  - {id: a, step_type: noop, depends_on: [a]}\n")
    assert "a -> a" in error.message


def test_unknown_dependency_suggests_the_nearest_id(load: LoadMission) -> None:
    error = only(load, """
        steps:
          - id: fetch_data
            step_type: noop
          - id: use
            step_type: noop
            depends_on: [fetch_dat]
    """)
    assert "depends on 'fetch_dat', which is not a step" in error.message
    assert error.hint == "did you mean 'fetch_data'?" and error.location.line == 6


def test_duplicate_ids_point_at_both(load: LoadMission) -> None:
    error = only(load, """
        steps:
          - id: a
            step_type: noop
          - id: a
            step_type: noop
    """)
    assert "duplicate step id 'a'" in error.message and error.location.line == 4
    assert error.hint is not None and ":2:" in error.hint


def test_unknown_step_type_gives_did_you_mean_and_the_list(load: LoadMission) -> None:
    error = only(load, "steps:\n  - id: a\n    step_type: read_fil\n")
    assert "unknown step type 'read_fil'" in error.message and error.location.line == 3
    assert error.hint is not None and "did you mean 'read_file'?" in error.hint
    assert "create_file" in error.hint and "validate_schema" in error.hint


@pytest.mark.parametrize("name", ["rag_add", "generate_embedding", "agent", "redis_set", "websocket_connect"])
def test_a_seed_step_type_that_is_not_built_says_so(load: LoadMission, name: str) -> None:
    error = only(load, f"steps:\n  - id: a\n    step_type: {name}\n")
    assert f"step type '{name}' is not built in tea" in error.message
    assert error.hint is not None and "built step types: command" in error.hint


def test_unknown_and_missing_parameters(load: LoadMission) -> None:
    """Each at its own line: the unknown key with did-you-mean, the missing one at parameters."""
    found = problems(load, """
        steps:
          - id: write
            step_type: create_file
            parameters:
              pth: out.txt
              content: hi
    """)
    messages = [(e.location.line, e.message, e.hint) for e in found]
    assert (4, "step 'write': missing parameter 'path' for step type create_file",
            "a path under the files root") in messages
    assert any(line == 5 and "unknown parameter 'pth'" in m and h == "did you mean 'path'?"
               for line, m, h in messages)


def test_parameter_values_of_the_wrong_kind(load: LoadMission) -> None:
    error = only(load, "steps:\n  - {id: a, step_type: file_search, parameters: {pattern: '*', max_results: lots}}\n")
    assert "parameter 'max_results' must be an integer, got 'lots'" in error.message


def test_templates_may_read_only_steps_they_depend_on(load: LoadMission) -> None:
    found = problems(load, """
        steps:
          - id: a
            step_type: noop
          - id: b
            step_type: noop
          - id: c
            step_type: read_file
            depends_on: [b]
            parameters:
              path: "{{ a.output.path }}/{{ nothing.here }}"
    """)
    text = "\n".join(str(e) for e in found)
    assert "reads the output of 'a', which it does not depend on" in text and "add 'a' to its depends_on" in text
    assert "reads 'nothing', which is neither a step nor a variable" in text
    assert all(e.location.line == 10 for e in found)


def test_a_template_may_read_an_indirect_dependency_and_loop_variables(load: LoadMission) -> None:
    mission = load("""
        steps:
          - {id: a, step_type: noop}
          - {id: b, step_type: noop, depends_on: [a]}
          - id: c
            step_type: create_file
            depends_on: [b]
            parameters:
              path: x.txt
              content: "{% for k in a.output %}{{ k }}{% endfor %}{{ env.HOME }}{{ context.x }}{{ secrets.y }}"
    """)
    assert mission.by_id["c"].reads == ("a",)


def test_jinja_syntax_errors_are_load_errors(load: LoadMission) -> None:
    error = only(load, "steps:\n  - id: a\n    step_type: read_file\n    parameters: {path: '{{ oops'}\n")
    assert "Jinja syntax error" in error.message


def test_command_needs_shell_enabled(load: LoadMission) -> None:
    error = only(load, "steps:\n  - id: a\n    step_type: command\n    parameters: {command: [ls]}\n")
    assert "does not allow" in error.message and "shell: {enabled: true}" in error.message


@pytest.mark.parametrize(("text", "expected"), [
    ("config: {fail_fst: true}\nsteps: [{id: a, step_type: noop}]\n", "unknown key 'fail_fst' in config"),
    ("config: {timeout_seconds: 0}\nsteps: [{id: a, step_type: noop}]\n",
     "timeout_seconds must be a number greater than 0"),
    ("config: {max_concurrent_steps: 0}\nsteps: [{id: a, step_type: noop}]\n", "must be an integer at least 1"),
    ("stepz: []\nsteps: [{id: a, step_type: noop}]\n", "unknown key 'stepz' in a mission"),
    ("steps: []\n", "steps must be a non-empty list"),
    ("steps: [{id: 1a, step_type: noop}]\n", "is not a name"),
    ("steps: [{id: env, step_type: noop}]\n", "reserved for template variables"),
    ("steps: [{id: a, step_type: noop, depends_on: b}]\n", "depends_on must be a list of step ids"),
    ("steps: [{id: a, step_type: noop, continue_on_error: maybe}]\n", "must be true or false"),
    ("steps: [{id: a, steptype: noop}]\n", "unknown key 'steptype' in a step"),
    ("settings: {parallel: {strategy: threads}}\nsteps: [{id: a, step_type: noop}]\n",
     "unknown parallel strategy 'threads'"),
    ("settings: {parallel: {retry: {max_attempts: 2}}}\nsteps: [{id: a, step_type: noop}]\n",
     "settings.parallel.retry does not apply to missions"),
    ("settings: {shell: {enabled: yes please}}\nsteps: [{id: a, step_type: noop}]\n", "must be true or false"),
    ("settings: {llm: {modle: x}}\nsteps: [{id: a, step_type: noop}]\n", "unknown key 'modle' in settings.llm"),
])
def test_schema_problems(load: LoadMission, text: str, expected: str) -> None:
    found = problems(load, text)
    assert any(expected in str(e) for e in found), [str(e) for e in found]
    assert all(e.location.line is not None for e in found)


def test_every_problem_is_reported_at_once(write_mission: WriteMission) -> None:
    """collect_errors (tea validate) lists each problem, sorted by line."""
    path = write_mission("""
        steps:
          - {id: a, step_type: nop}
          - {id: b, step_type: noop, depends_on: [zz]}
          - {id: b, step_type: noop}
    """)
    errors = collect_errors(path)
    assert [e.location.line for e in errors] == [2, 3, 4]
    assert all(str(e).startswith(f"{path}:") for e in errors)


def test_remote_options_are_checked_by_the_backend(load: LoadMission) -> None:
    """settings.parallel.<strategy> goes to the backend's own parser at load."""
    error = only(load, """
        settings:
          parallel:
            strategy: remote
            remote: {hostz: [a]}
        steps: [{id: a, step_type: noop}]
    """)
    assert "settings.parallel.remote.hosts" in str(error) and error.location.line == 4


def test_is_mission_reads_top_level_keys(write_mission: WriteMission, tmp_path: Path) -> None:
    mission = write_mission("steps:\n  - {id: a, step_type: noop}\n")
    workflow = write_mission("nodes:\n  - name: a\n    steps:\n      - run: x\n", "flow.yaml")
    flow_style = write_mission('{"steps": [{"id": "a", "step_type": "noop"}]}\n', "flow.json.yaml")
    assert is_mission(mission) and is_mission(str(flow_style))
    assert not is_mission(workflow) and not is_mission(tmp_path / "missing.yaml")
    assert is_mission({"steps": []}) and not is_mission({"steps": [], "nodes": []})


def test_loads_mission_from_text_and_missing_file() -> None:
    assert loads_mission("steps: [{id: a, step_type: noop}]").name == "mission"
    with pytest.raises(LoadError, match="mission file not found"):
        load_mission("/nonexistent/m.yaml")


def test_a_step_is_the_same_record_written_short_or_in_full(load: LoadMission) -> None:
    """Steps with only id, type and dependencies are taken on a short path: same records."""
    mission = load("""
        steps:
          - id: a
            step_type: noop
          - id: b
            step_type: noop
            depends_on: [a]
          - id: c
            name: c
            step_type: noop
            depends_on: [a]
            parameters: {}
            continue_on_error: false
    """)
    a, b, c = mission.steps
    assert (a.depends_on, a.parameters, a.static, a.reads, a.location.line) == ((), {}, True, (), 2)
    assert (b.id, b.name, b.step_type, b.index, b.location.line) == ("b", "b", "noop", 1, 4)
    assert (c.name, c.depends_on, c.parameters, c.continue_on_error, c.index) == ("c", ("a",), {}, False, 2)
    assert [(s.timeout_seconds, s.retry_attempts, s.retry_delay_ms) for s in mission.steps] == [(None,) * 3] * 3


def test_each_step_missing_its_parameters_is_reported(load: LoadMission) -> None:
    """What a type says of empty parameters is asked once; every step still gets its own problem."""
    found = problems(load, """
        steps:
          - {id: a, step_type: read_file}
          - {id: b, step_type: read_file, parameters: {}}
          - {id: c, step_type: command}
          - {id: d, step_type: command}
    """)
    messages = [(e.location.line, e.message) for e in found]
    assert (2, "step 'a': missing parameter 'path' for step type read_file") in messages
    assert (3, "step 'b': missing parameter 'path' for step type read_file") in messages
    assert [line for line, m in messages if "runs programs" in m] == [4, 5]


def test_a_repeated_dependency_is_reported_where_it_repeats(load: LoadMission) -> None:
    error = only(load, "steps:\n  - {id: a, step_type: noop}\n  - {id: b, step_type: noop, depends_on: [a, a]}\n")
    assert error.message == "step 'b'.depends_on names 'a' twice"
    assert (error.location.line, error.location.column) == (3, 46)


def test_a_template_that_does_not_compile_is_reported_at_its_value(load: LoadMission) -> None:
    error = only(load, "steps:\n  - id: a\n    step_type: read_file\n    parameters:\n      path: x\n"
                       "      encoding: '{{ oops'\n")
    assert "Jinja syntax error" in error.message and (error.location.line, error.location.column) == (6, 17)


def test_the_source_hash_is_the_one_checkpoints_record(write_mission: WriteMission) -> None:
    """tea resume compares it with the checkpoint's workflow_hash."""
    path = write_mission("name: h\nsteps: [{id: a, step_type: noop}]  # caf\u00e9\n")
    assert load_mission(path).source_hash == workflow_hash(path.read_text(encoding="utf-8"))


def _kahn(ids: list[str], deps: dict[str, list[str]]) -> list[str]:
    """The reference order: Kahn's algorithm with a queue, ready steps in file order."""
    waiting = {s: len(deps[s]) for s in ids}
    queue, order = deque(s for s in ids if not waiting[s]), []
    while queue:
        step = queue.popleft()
        order.append(step)
        for after in (s for s in ids if step in deps[s]):
            waiting[after] -= 1
            if not waiting[after]:
                queue.append(after)
    return order


def test_the_plan_of_a_generated_mission_follows_the_definitions(load: LoadMission) -> None:
    """Order, levels, critical path and rank of a random DAG whose steps are shuffled in the file."""
    rng = random.Random(4)
    ids = [f"s{n}" for n in range(200)]
    deps = {s: rng.sample(ids[max(0, n - 15):n], min(n, rng.randint(0, 3))) for n, s in enumerate(ids)}
    rng.shuffle(ids)
    made = load("steps:\n" + "".join(
        f"  - {{id: {s}, step_type: noop, depends_on: [{', '.join(deps[s])}]}}\n" for s in ids)).plan
    assert list(made.order) == _kahn(ids, deps)
    depth: dict[str, int] = {}
    for step in made.order:
        depth[step] = 1 + max((depth[d] for d in deps[step]), default=-1)
    assert made.levels == tuple(tuple(s for s in ids if depth[s] == n) for n in range(max(depth.values()) + 1))
    path = made.critical_path
    assert len(path) == len(made.levels) and all(a in deps[b] for a, b in pairwise(path))
    assert path[-1] == next(s for s in made.order if depth[s] == len(path) - 1)
    rank: dict[str, int] = {}
    for step in reversed(made.order):
        rank[step] = 1 + max((rank[s] for s in ids if step in deps[s]), default=0)
    assert made.rank == rank and made.rank[path[0]] == len(path)
