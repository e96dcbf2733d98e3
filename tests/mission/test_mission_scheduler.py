"""Scheduling: dependency-driven starts, concurrency, fail-fast, skips, retries, timeouts, stops."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

from mission_helpers import LoadMission, RunMission

from tea.mission import run_mission
from tea.signals import StopFlag

SHELL = "\n        settings: {shell: {enabled: true}}"


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not count: nothing runs in it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_step_starts_when_its_own_dependencies_finish_not_its_level(run: RunMission) -> None:
    """`waits` (level 0) only ends once `late` (level 1, after the quick `first`) ran: a scheduler
    that finished level 0 before starting level 1 would leave it waiting until it fails."""
    result = run(SHELL + """
        config: {max_concurrent_steps: 4}
        steps:
          - id: first
            step_type: noop
          - id: waits
            step_type: command
            parameters:
              command: [sh, -c, "for i in $(seq 400); do [ -f flag ] && exit 0; sleep 0.05; done; exit 1"]
          - id: late
            step_type: create_file
            depends_on: [first]
            parameters: {path: flag, content: go}
    """)
    assert result.status == "completed", result.to_json()
    assert result.step_results["late"].started_at < result.step_results["waits"].finished_at


def test_at_most_max_concurrent_steps_run_at_once(run: RunMission, tmp_path: Path) -> None:
    (tmp_path / "running").mkdir()
    probe = "touch running/$0; ls running | wc -l; sleep 0.2; rm running/$0"
    steps = "".join(
        f"  - {{id: s{n}, step_type: command, parameters: {{command: [sh, -c, '{probe}', s{n}]}}}}\n"
        for n in range(6)
    )
    result = run("settings: {shell: {enabled: true}}\nconfig: {max_concurrent_steps: 2}\nsteps:\n" + steps)
    assert result.status == "completed"
    seen = [int(r.output["stdout"]) for r in result.step_results.values()]
    assert max(seen) <= 2


def test_fail_fast_starts_nothing_new_and_skips_the_rest(run: RunMission) -> None:
    result = run(SHELL + """
        config: {max_concurrent_steps: 1}
        steps:
          - {id: broken, step_type: command, parameters: {command: [sh, -c, "echo bad input >&2; exit 3"]}}
          - {id: after, step_type: noop, depends_on: [broken]}
          - {id: independent, step_type: noop}
    """)
    steps = result.step_results
    assert result.status == "failed" and result.exit_code == 1
    assert steps["broken"].status == "failed"
    assert steps["broken"].error == ("step 'broken' (command): 'sh' exited with status 3\n"
                                     "stderr (last lines):\nbad input")
    assert steps["broken"].output == {"exit_code": 3, "stderr": "bad input"}
    assert steps["after"].status == "skipped" and steps["after"].error == "skipped: dependency 'broken' failed"
    assert steps["independent"].status == "skipped"
    assert steps["independent"].error == "skipped: not started (step 'broken' failed and fail_fast is on)"
    assert result.error == steps["broken"].error


def test_fail_fast_lets_running_steps_finish(run: RunMission, tmp_path: Path) -> None:
    result = run(SHELL + """
        steps:
          - {id: broken, step_type: command, parameters: {command: ["false"]}}
          - {id: slow, step_type: command, parameters: {command: [sh, -c, "sleep 0.3; echo done > slow.txt"]}}
    """)
    assert result.status == "failed"
    assert result.step_results["slow"].status == "success" and (tmp_path / "slow.txt").exists()


def test_without_fail_fast_independent_steps_go_on_and_dependents_are_skipped(run: RunMission) -> None:
    result = run(SHELL + """
        config: {fail_fast: false}
        steps:
          - {id: broken, step_type: command, parameters: {command: ["false"]}}
          - {id: child, step_type: noop, depends_on: [broken]}
          - {id: grandchild, step_type: noop, depends_on: [child]}
          - {id: other, step_type: noop}
          - {id: after_other, step_type: noop, depends_on: [other]}
    """)
    status = {k: r.status for k, r in result.step_results.items()}
    assert status == {"broken": "failed", "child": "skipped", "grandchild": "skipped",
                      "other": "success", "after_other": "success"}
    assert result.step_results["grandchild"].error == "skipped: dependency 'child' was skipped"
    assert result.status == "failed"


def test_continue_on_error_lets_dependents_run(run: RunMission) -> None:
    """The seed's error-handling mission: the fallback runs after the risky step fails."""
    result = run(SHELL + """
        config: {fail_fast: true}
        steps:
          - id: risky
            step_type: command
            continue_on_error: true
            parameters: {command: test, args: [-f, nonexistent_file.txt]}
          - id: fallback
            step_type: create_file
            depends_on: [risky]
            parameters: {path: fallback.txt, content: "risky said {{ risky.status }} {{ risky.output.exit_code }}"}
    """)
    assert result.status == "completed" and result.exit_code == 0
    assert result.step_results["risky"].status == "failed"
    assert result.step_results["fallback"].status == "success"
    assert (Path(result.step_results["fallback"].output["path"]).name) == "fallback.txt"


def test_retries_with_a_fixed_delay_until_success(run: RunMission, tmp_path: Path) -> None:
    counter = "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; [ $n -ge 3 ]"
    result = run(SHELL + f"""
        config: {{retry_attempts: 1, retry_delay_ms: 10}}
        steps:
          - {{id: flaky, step_type: command, retry_attempts: 2, parameters: {{command: [sh, -c, "{counter}"]}}}}
          - {{id: once, step_type: command, parameters: {{command: ["false"]}}}}
    """)
    assert result.step_results["flaky"].status == "success" and result.step_results["flaky"].attempts == 3
    assert result.step_results["once"].status == "failed" and result.step_results["once"].attempts == 2
    assert (tmp_path / "count").read_text().strip() == "3"


def test_a_bad_parameter_value_is_not_retried(run: RunMission) -> None:
    result = run("""
        config: {retry_attempts: 3}
        steps:
          - {id: a, step_type: read_file, parameters: {path: ../outside.txt}}
    """)
    step = result.step_results["a"]
    assert step.status == "failed" and step.attempts == 1 and "outside the allowed directory" in (step.error or "")


def test_a_step_over_its_timeout_fails_and_its_processes_are_killed(run: RunMission, tmp_path: Path) -> None:
    result = run(SHELL + """
        steps:
          - id: stuck
            step_type: command
            timeout_seconds: 0.5
            parameters: {command: [sh, -c, "echo $$ > shell.pid; sleep 30 & echo $! > child.pid; wait"]}
          - {id: after, step_type: noop, depends_on: [stuck]}
    """)
    stuck = result.step_results["stuck"]
    assert stuck.status == "failed" and "timed out after 0.5s" in (stuck.error or "")
    assert stuck.error is not None and stuck.error.startswith("step 'stuck' (command):")
    assert result.step_results["after"].status == "skipped"
    for name in ("shell.pid", "child.pid"):
        assert not alive(int((tmp_path / name).read_text())), name


def test_the_mission_timeout_stops_running_steps_and_skips_the_rest(run: RunMission, tmp_path: Path) -> None:
    result = run(SHELL + """
        config: {timeout_seconds: 0.5, fail_fast: false}
        steps:
          - {id: quick, step_type: noop}
          - id: long
            step_type: command
            parameters: {command: [sh, -c, "echo $$ > long.pid; exec sleep 30"]}
          - {id: after, step_type: noop, depends_on: [long]}
    """)
    assert result.status == "failed" and result.error == "the mission timed out after 0.5s"
    assert result.step_results["quick"].status == "success"
    long = result.step_results["long"]
    assert long.status == "skipped" and long.error == "step 'long' (command): stopped: the mission timed out after 0.5s"
    assert result.step_results["after"].status == "skipped"
    assert not alive(int((tmp_path / "long.pid").read_text()))


def test_a_stop_cancels_running_steps_and_saves_a_checkpoint(load: LoadMission, tmp_path: Path) -> None:
    mission = load(SHELL + """
        steps:
          - {id: done_first, step_type: create_file, parameters: {path: a.txt, content: a}}
          - id: long
            step_type: command
            depends_on: [done_first]
            parameters: {command: [sh, -c, "echo $$ > long.pid; exec sleep 30"]}
          - {id: after, step_type: noop, depends_on: [long]}
    """)
    stop = StopFlag()

    def stop_when_running() -> None:
        for _ in range(600):
            if (tmp_path / "long.pid").exists():
                stop.request(signal.SIGTERM)
                return
            stop.wait(0.05)

    threading.Thread(target=stop_when_running, daemon=True).start()
    result = run_mission(mission, stop_flag=stop, checkpoint_dir=tmp_path / "ckpt", progress=False)
    assert result.status == "cancelled" and result.exit_code == 143 and result.signum == signal.SIGTERM
    assert result.step_results["done_first"].status == "success"
    assert result.step_results["long"].status == "skipped"
    assert result.step_results["long"].error == "step 'long' (command): stopped by signal 15"
    assert result.step_results["after"].error == "skipped: dependency 'long' was stopped"
    assert result.checkpoint_path is not None and result.checkpoint_path.parent == tmp_path / "ckpt"
    assert not alive(int((tmp_path / "long.pid").read_text()))


def test_a_template_that_fails_at_run_time_fails_its_step(run: RunMission) -> None:
    result = run("""
        steps:
          - {id: a, step_type: noop}
          - id: b
            step_type: create_file
            depends_on: [a]
            parameters: {path: x.txt, content: "{{ a.output.missing + 1 }}"}
    """)
    error = result.step_results["b"].error or ""
    assert result.step_results["b"].status == "failed" and error.startswith("step 'b' (create_file): template")


def test_secrets_reach_steps_and_are_redacted_from_outputs_and_errors(run: RunMission, tmp_path: Path) -> None:
    result = run(SHELL + """
        config: {fail_fast: false}
        steps:
          - {id: write, step_type: create_file, parameters: {path: token.txt, content: "{{ secrets.token }}"}}
          - {id: read, step_type: read_file, depends_on: [write], parameters: {path: token.txt}}
          - {id: leak, step_type: command, parameters: {command: [sh, -c, "echo {{ secrets.token }} >&2; exit 1"]}}
    """, secrets={"token": "s3cr3t-value"})
    assert (tmp_path / "token.txt").read_text() == "s3cr3t-value"
    text = result.to_json()
    assert "s3cr3t-value" not in text
    assert result.step_results["read"].output["content"] == "***"
    assert "***" in (result.step_results["leak"].error or "")


def test_context_config_and_env_variables(run: RunMission, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TEA_MISSION_TEST", "from-env")
    result = run("""
        config: {retry_attempts: 2}
        steps:
          - id: a
            step_type: create_file
            parameters:
              path: vars.json
              content: {ctx: "{{ context.user }}", env: "{{ env.TEA_MISSION_TEST }}",
                        retries: "{{ config.retry_attempts }}"}
    """, {"user": "ana"})
    assert result.status == "completed"
    assert json.loads((tmp_path / "vars.json").read_text()) == {"ctx": "ana", "env": "from-env", "retries": 2}


def test_steps_run_in_worker_processes_with_the_process_strategy(run: RunMission) -> None:
    result = run("""
        settings: {shell: {enabled: true}, parallel: {strategy: process, max_workers: 2}}
        steps:
          - {id: where, step_type: command, parameters: {command: [sh, -c, "echo $PPID"]}}
          - {id: write, step_type: create_file, depends_on: [where],
             parameters: {path: p.txt, content: "{{ where.output.stdout }}"}}
    """)
    assert result.status == "completed", result.to_json()
    assert int(result.step_results["where"].output["stdout"]) != os.getpid()
    assert result.step_results["write"].output["bytes"] > 0
