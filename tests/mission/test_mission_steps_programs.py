"""command and git steps: real programs, argument lists, never a shell."""

from __future__ import annotations

import subprocess
from pathlib import Path

from mission_helpers import RunMission

SHELL = "\n        settings: {shell: {enabled: true}}"


def test_a_command_string_is_split_into_words_never_given_to_a_shell(run: RunMission) -> None:
    result = run(SHELL + """
        steps:
          - {id: words, step_type: command, parameters: {command: "echo 'two words' $HOME | cat"}}
          - {id: listed, step_type: command, parameters: {command: [printf, "%s-%s"], args: [a, b]}}
    """)
    assert result.step_results["words"].output == {"stdout": "two words $HOME | cat\n", "stderr": "", "exit_code": 0}
    assert result.step_results["listed"].output["stdout"] == "a-b"


def test_cwd_env_input_and_accepted_exit_codes(run: RunMission, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    result = run(SHELL + """
        steps:
          - id: all
            step_type: command
            parameters:
              command: [sh, -c, 'pwd; echo "$GREETING"; cat; exit 4']
              cwd: sub
              env: {GREETING: hello}
              input: from stdin
              ok_exit_codes: [0, 4]
    """)
    out = result.step_results["all"].output
    assert out == {"stdout": f"{tmp_path / 'sub'}\nhello\nfrom stdin", "stderr": "", "exit_code": 4}


def test_command_failures_name_the_cause(run: RunMission) -> None:
    result = run(SHELL + """
        config: {fail_fast: false}
        steps:
          - {id: missing, step_type: command, parameters: {command: [no-such-program-xyz]}}
          - {id: outside, step_type: command, parameters: {command: [ls], cwd: ..}}
          - {id: unsplittable, step_type: command, parameters: {command: "echo 'open"}}
    """)
    errors = {k: r.error for k, r in result.step_results.items()}
    assert errors["missing"] == "step 'missing' (command): program 'no-such-program-xyz' not found"
    assert "cwd '..' is outside the allowed directory" in (errors["outside"] or "")
    assert "cannot be split into words" in (errors["unsplittable"] or "")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def test_git_status_diff_and_commit(run: RunMission, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "tracked.txt").write_text("one\n")
    git(repo, "add", "tracked.txt")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "first")
    (repo / "tracked.txt").write_text("one\ntwo\n")
    (repo / "new.txt").write_text("new\n")
    result = run(SHELL + """
        steps:
          - {id: status, step_type: git_status, parameters: {repo: repo}}
          - {id: diff, step_type: git_diff, parameters: {repo: repo}}
          - id: commit
            step_type: git_commit
            depends_on: [status, diff]
            parameters: {repo: repo, message: "second: {{ status.output.entries | length }} changes", all: true,
                         author_name: Mission Bot, author_email: bot@example.com}
          - {id: after, step_type: git_status, depends_on: [commit], parameters: {repo: repo}}
    """)
    out = {k: r.output for k, r in result.step_results.items()}
    assert result.status == "completed", result.to_json()
    assert out["status"] == {"branch": "main", "clean": False,
                             "entries": [{"status": "M", "path": "tracked.txt"}, {"status": "??", "path": "new.txt"}]}
    assert out["diff"]["files"] == ["tracked.txt"] and "+two" in out["diff"]["diff"]
    assert out["commit"]["message"] == "second: 2 changes"
    last = git(repo, "log", "-1", "--format=%H %an %s").strip()
    assert last == f"{out['commit']['commit']} Mission Bot second: 2 changes"
    assert out["after"]["clean"] is True


def test_git_outside_a_repository_fails_with_its_stderr(run: RunMission, tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    result = run(SHELL + "\n        steps:\n          - {id: s, step_type: git_status, parameters: {repo: plain}}\n")
    error = result.step_results["s"].error or ""
    assert error.startswith("step 's' (git_status): git status exited with status 128")
    assert "not a git repository" in error
