"""Whole workflows on the remote strategy: the example, and the same final state as thread/process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import tea

pytestmark = pytest.mark.timeout(180)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _with_strategy(source: Path, where: Path, strategy: str, remote: dict | None) -> Path:
    """A copy of ``source`` (and its neighbour files) using ``strategy`` on the test hosts."""
    doc = yaml.safe_load(source.read_text())
    parallel = doc.setdefault("settings", {}).setdefault("parallel", {})
    parallel["strategy"] = strategy
    parallel.pop("remote", None)
    if remote is not None:
        parallel["remote"] = remote
    target = source.parent / f".{where.name}-{strategy}-{source.name}"
    target.write_text(yaml.safe_dump(doc, sort_keys=False))
    return target


@pytest.fixture
def variant(tmp_path: Path):
    made: list[Path] = []

    def make(source: Path, strategy: str, remote: dict | None = None) -> Path:
        path = _with_strategy(source, tmp_path, strategy, remote)
        made.append(path)
        return path

    yield make
    for path in made:
        path.unlink(missing_ok=True)


@pytest.mark.parametrize(
    ("example", "given"),
    [
        ("remote_fanout.yaml", {"numbers": [3, 1, 4, 1, 5, 9, 2, 6]}),
        ("parallel_fanout.yaml", {"topic": "edge agents"}),
        ("dynamic_parallel.yaml", {"words": ["tea", "edge", "agent"]}),
    ],
)
def test_same_final_state_on_thread_process_and_remote(example, given, variant, remote_settings):
    source = EXAMPLES / example
    finals = {
        strategy: _comparable(tea.load(variant(source, strategy, remote)).invoke(dict(given)))
        for strategy, remote in [
            ("thread", None),
            ("process", None),
            ("remote", remote_settings(slots=2)),
        ]
    }
    assert finals["remote"] == finals["thread"] == finals["process"]


def _comparable(final: dict) -> dict:
    """The final state, with the last fan-out's results reduced to what the branches did
    (where and how long they ran differs by strategy)."""
    results = final.get("parallel_results") or []
    return {**final, "parallel_results": [(r.branch_id, r.success, r.update) for r in results]}


def test_remote_example_runs_through_the_cli_on_the_test_hosts(variant, remote_settings, tmp_path):
    path = variant(EXAMPLES / "remote_fanout.yaml", "remote", remote_settings())
    done = subprocess.run(
        [str(Path(sys.executable).with_name("tea")), "run", str(path), "-q",
         "-c", str(tmp_path / "checkpoints"),  # not shared with runs of other test workers
         "-i", json.dumps({"numbers": [3, 1, 4, 1, 5, 9, 2, 6]})],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    final = json.loads(done.stdout)
    assert final["sum"] == 31 and final["min"] == 1 and final["max"] == 9
    assert final["sum_of_squares"] == 173


def test_the_remote_example_runs_on_the_hosts_given_by_flags(remote_settings, tmp_path):
    """The example as the docs run it: the fleet from --hosts, the rest from --set."""
    settings = remote_settings()
    flags = [f"--set=settings.parallel.remote.{key}={settings[key]}"
             for key in ("basefile", "identity_file", "known_hosts", "workdir", "cache_dir")]
    done = subprocess.run(
        [str(Path(sys.executable).with_name("tea")), "run", str(EXAMPLES / "remote_fanout.yaml"), "-q",
         "--hosts", ",".join(f"2/{host}" for host in settings["hosts"]), *flags,
         "-c", str(tmp_path / "checkpoints"), "-i", json.dumps({"numbers": [3, 1, 4, 1, 5, 9, 2, 6]})],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    final = json.loads(done.stdout)
    assert (final["sum"], final["min"], final["max"], final["sum_of_squares"]) == (31, 1, 9, 173)


def test_tea_run_warns_on_stderr_about_a_host_it_cannot_use(variant, remote_settings, tmp_path):
    settings = remote_settings()
    settings["hosts"] = ["teatest@no-such-host.invalid", *settings["hosts"]]
    path = variant(EXAMPLES / "remote_fanout.yaml", "remote", settings)
    done = subprocess.run(
        [str(Path(sys.executable).with_name("tea")), "run", str(path),
         "-c", str(tmp_path / "checkpoints"), "-i", json.dumps({"numbers": [3, 1, 4]})],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sum"] == 8
    # However the CLI prints a warning, the remote backend's says "remote host NAME ...".
    warnings = [line for line in done.stderr.splitlines() if "remote host " in line]
    assert len(warnings) == 1, done.stderr
    assert "teatest@no-such-host.invalid" in warnings[0] and "cannot resolve" in warnings[0]


def test_parallel_results_carry_the_host_in_declaration_order(
    tmp_path, remote_settings, ssh_cluster
):
    flow = tmp_path / "hosts.yaml"
    flow.write_text(yaml.safe_dump({
        "name": "hosts",
        "settings": {"parallel": {"strategy": "remote", "remote": remote_settings(slots=1)}},
        "nodes": [
            {"name": "start", "run": "return {}"},
            *({"name": f"b{i}", "run": f"return {{'i': {i}}}"} for i in range(6)),
            {"name": "join", "run": "return {'seen': [[r.branch_id, r['i'], r.host]"
                                    " for r in parallel_results]}"},
        ],
        "edges": [{"from": "start", "to": [f"b{i}" for i in range(6)], "parallel": True,
                   "fan_in": "join"}],
    }, sort_keys=False))
    seen = tea.load(flow).invoke({})["seen"]
    assert [(branch, i) for branch, i, _ in seen] == [(f"start[b{i}]", i) for i in range(6)]
    assert {host for _, _, host in seen} == {h.login for h in ssh_cluster.hosts}
