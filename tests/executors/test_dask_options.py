"""The dask strategy as a plugin: its entry point, ``settings.parallel.dask`` and the install line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import tea
from executors import SupportsWarm, get_factory, known_strategies, parse_options
from executors.dask import DaskExecutor, DaskOptions
from tea.errors import SchemaError
from tea.yamlsrc import load_yaml, location_of

ROOT = Path(__file__).resolve().parents[2]
TEA = Path(sys.executable).with_name("tea")

FLOW = """
name: dask-options
settings:
  parallel:
    strategy: dask
    dask: {dask}
nodes:
  - name: each
    type: dynamic_parallel
    items: "{{{{ state.xs }}}}"
    fan_in: total
    steps:
      - run: |
          return {{"y": state["item"] * 2}}
  - name: total
    run: |
      return {{"total": sum(r["y"] for r in parallel_results)}}
"""


def options(text: str) -> DaskOptions:
    parsed = parse_options("dask", load_yaml(textwrap.dedent(text), "flow.yaml"), location_of)
    assert isinstance(parsed, DaskOptions)
    return parsed


def refused(text: str) -> SchemaError:
    with pytest.raises(SchemaError) as caught:
        options(text)
    return caught.value


def test_the_strategy_comes_from_the_entry_point_group_like_a_plugin():
    (point,) = [ep for ep in entry_points(group="tea.executors") if ep.name == "dask"]
    assert point.value == "executors.dask:DaskExecutor"
    assert "dask" in known_strategies()
    assert get_factory("dask") is DaskExecutor


def test_defaults_and_every_key(monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    assert parse_options("dask", None, location_of) == DaskOptions()
    assert DaskOptions() == DaskOptions(address=None, connect_timeout=10.0, chunk_size=None)
    assert options("address: tcp://10.0.0.5:8786\nconnect_timeout: 2.5\nchunk_size: 50\n") == (
        DaskOptions("tcp://10.0.0.5:8786", 2.5, 50)
    )
    assert options("chunk_size: auto\naddress: 'tls://[::1]:8786'\n").chunk_size is None


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("\naddress: scheduler:8786\n", 2, "is not a Dask scheduler address"),
        ("\naddress: http://scheduler:8786\n", 2, "unknown scheme 'http'"),
        ("\naddress: tcp://scheduler:99999\n", 2, "port out of range"),
        ("\naddress: 8786\n", 2, "is not a Dask scheduler address"),
        ("\n\nconnect_timeout: 0\n", 3, "connect_timeout must be a positive number"),
        ("\nchunk_size: many\n", 2, "chunk_size must be a positive integer or auto"),
        ("\nchunk_size: 0\n", 2, "chunk_size must be a positive integer or auto"),
        ("\nadress: tcp://scheduler:8786\n", 2, "unknown key 'adress'"),
    ],
)
def test_bad_options_are_load_errors_at_their_line(text, line, words):
    error = refused(text)
    assert words in error.message
    assert (error.location.file, error.location.line) == ("flow.yaml", line)
    assert error.exit_code == 2


def test_a_misspelt_key_gets_the_nearest_spelling():
    assert refused("adress: tcp://s:1\n").hint == "did you mean 'address'?"


def test_a_bad_scheduler_variable_is_a_load_error_naming_it(monkeypatch):
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "not-an-address")
    with pytest.raises(SchemaError, match=r"\$DASK_SCHEDULER_ADDRESS is not a Dask scheduler address"):
        parse_options("dask", None, location_of)
    assert options("address: tcp://s:8786\n").address == "tcp://s:8786"  # the setting wins


def test_a_workflow_names_the_fan_outs_options(tmp_path):
    path = tmp_path / "flow.yaml"
    path.write_text(FLOW.format(dask="{address: 'tcp://127.0.0.1:8786', chunk_size: 7}"))
    assert tea.load(path).name == "dask-options"
    path.write_text(FLOW.format(dask="{address: 'localhost'}"))
    with pytest.raises(SchemaError, match="is not a Dask scheduler address") as caught:
        tea.load(path)
    assert caught.value.location.line == 6


def test_without_distributed_the_workflow_fails_at_load_with_the_install_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    path = tmp_path / "flow.yaml"
    path.write_text(FLOW.format(dask="{}"))
    with pytest.raises(SchemaError) as caught:
        tea.load(path)
    assert "needs Dask's 'distributed' package, which is not installed" in caught.value.message
    assert caught.value.hint is not None and "pip install 'tea-engine[dask]'" in caught.value.hint
    assert caught.value.exit_code == 2


def test_without_distributed_the_cli_exits_2_with_the_install_line(tmp_path):
    path = tmp_path / "flow.yaml"
    path.write_text(FLOW.format(dask="{}"))
    hide = "import sys; sys.modules['distributed'] = None; from tea._entry import main; sys.argv[0] = 'tea'; main()"
    done = subprocess.run(
        [sys.executable, "-c", hide, "run", str(path), "-i", '{"xs": [1]}'],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert done.returncode == 2, done.stderr
    assert "pip install 'tea-engine[dask]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_loading_a_dask_workflow_does_not_import_dask(tmp_path):
    path = tmp_path / "flow.yaml"
    path.write_text(FLOW.format(dask="{chunk_size: 3}"))
    probe = f"import sys, tea; tea.load({str(path)!r}); print('distributed' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.stdout.strip() == "False", done.stderr


def test_the_executor_warms_and_closes_without_a_cluster():
    executor = DaskExecutor()
    assert isinstance(executor, SupportsWarm)
    executor.warm()  # imports Dask in the background; nothing connects yet
    executor.close()
    executor.close()
