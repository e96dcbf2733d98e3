"""The head start ``tea run`` gives the pools a workflow names (``tea.prestart``,
``executors.prestart``): which spellings count, that the process strategy's server
really starts and is then the one its pool uses, and that a bad guess is harmless."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import executors
from tea.overrides import setting, strategy
from tea.prestart import prestart, strategies_named
from tests.tea.cli_helpers import tea, write

# A child Python that prestarts from argv[1], optionally runs the workflow, and prints how
# many forkservers it has as children (found through /proc, as a user would with ps; a child
# still between fork and exec shows our own command line, so it waits for them to settle).
CHILD = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path

    def children():
        for task in Path(f"/proc/{os.getpid()}/task").iterdir():
            for pid in (task / "children").read_text().split():
                yield Path(f"/proc/{pid}/cmdline").read_bytes()

    def forkservers():
        ours = Path("/proc/self/cmdline").read_bytes()
        deadline = time.monotonic() + 10
        while any(c == ours for c in children()) and time.monotonic() < deadline:
            time.sleep(0.01)
        return sum(b"multiprocessing.forkserver" in c for c in children())

    if __name__ == "__main__":
        from tea.prestart import prestart
        prestart(sys.argv[1])
        print(forkservers())
        if len(sys.argv) > 2:
            import tea
            print(tea.load(sys.argv[1]).invoke({})["n"], forkservers())
""")

PROCESS_FLOW = """
    settings: {parallel: {strategy: process}}
    nodes:
      - name: start
      - {name: a, run: "x = 1"}
      - {name: b, run: "y = 2"}
      - name: m
        run: |
          return {"n": len(parallel_results)}
    edges:
      - {from: start, to: [a, b], parallel: true, fan_in: m}
    """


def _child(tmp_path: Path, *args: str) -> list[str]:
    script = write(tmp_path / "child.py", CHILD)
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          timeout=120, check=True, cwd=tmp_path)
    return done.stdout.split()


@pytest.mark.parametrize(("text", "named"), [
    ("settings:\n  parallel:\n    strategy: process\n", {"process"}),
    ("settings: {parallel: {strategy: process, max_workers: 2}}\n", {"process"}),
    ("- {from: a, to: [b, c], parallel: true, parallel_strategy: 'remote'}\n", {"remote"}),
    ('{"settings": {"parallel": {"strategy": "dask"}}}', {"dask"}),
    ("  - name: grid\n    strategy:\n      matrix: {x: [1, 2]}\n", set()),
    ("nodes:\n  - name: a\n    run: x = 1\n", set()),
])
def test_the_spellings_of_a_strategy_are_found(text: str, named: set[str]) -> None:
    """Block and flow style, parallel_strategy, JSON quoting; a matrix names no strategy."""
    assert strategies_named(text) == named


def test_a_process_workflow_starts_the_server_its_pool_then_uses(tmp_path: Path) -> None:
    """prestart boots one forkserver; the run's pool forks its workers from that one."""
    flow = write(tmp_path / "flow.yaml", PROCESS_FLOW)
    started, result, after = _child(tmp_path, str(flow), "run")
    assert (started, result, after) == ("1", "2", "1")


def test_a_thread_workflow_starts_nothing(tmp_path: Path) -> None:
    flow = write(tmp_path / "flow.yaml", PROCESS_FLOW.replace("process", "thread"))
    assert _child(tmp_path, str(flow)) == ["0"]


def test_the_command_line_names_strategies_too(tmp_path: Path) -> None:
    """--strategy and --set reach the guess (as overrides), beside the file's text."""
    flow = write(tmp_path / "flow.yaml", "nodes: [{name: a}]\n")
    calls: list[str] = []
    executors.register_executor("prestart-probe", _ProbeFactory(calls))
    prestart(flow, [strategy("prestart-probe"), setting("settings.parallel.strategy=thread")])
    assert calls == ["prestart-probe"]


@pytest.mark.parametrize("what", ["missing", "fifo", "directory", "binary"])
def test_a_file_it_cannot_read_is_no_error_and_a_pipe_is_left_alone(tmp_path: Path, what: str) -> None:
    """Nothing raised, nothing blocked on a named pipe (its data belongs to the loader)."""
    path = tmp_path / "flow.yaml"
    if what == "fifo":
        os.mkfifo(path)
    elif what == "directory":
        path.mkdir()
    elif what == "binary":
        path.write_bytes(b"\xff\xfe strategy: \x00process")
    prestart(path)


def test_an_unknown_or_failing_strategy_is_no_error() -> None:
    """A name nobody registered, or a backend whose module cannot be imported: no head start."""
    executors.prestart("no-such-strategy")
    executors.register_executor("prestart-broken", _BrokenFactory())
    executors.prestart("prestart-broken")


def test_tea_run_of_a_process_workflow_with_the_guess_wrong_still_runs(tmp_path: Path) -> None:
    """The text names process, --strategy says thread: the run is on threads, exit 0."""
    flow = write(tmp_path / "flow.yaml", PROCESS_FLOW)
    done = tea("run", "-q", "--strategy", "thread", flow, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert '"n": 2' in done.stdout


class _ProbeFactory:
    """A registered factory with a ``prestart`` (what a third-party backend may have)."""

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def __call__(self) -> executors.ParallelExecutor:
        raise AssertionError("prestart must not build an executor")

    def prestart(self) -> None:
        self.calls.append("prestart-probe")


class _BrokenFactory:
    def __call__(self) -> executors.ParallelExecutor:
        raise AssertionError("prestart must not build an executor")

    def prestart(self) -> None:
        raise ImportError("its module is not installed")
