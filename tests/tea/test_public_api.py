"""The public API of ``tea``: its names and the signatures users call, pinned."""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

import tea

PUBLIC = [
    "BranchResult",
    "CheckpointError",
    "END",
    "LoadError",
    "ParallelConfig",
    "RetryPolicy",
    "Run",
    "RunError",
    "START",
    "STREAM_MODES",
    "Send",
    "StateGraph",
    "TeaError",
    "Workflow",
    "__version__",
    "load",
    "loads",
    "register_action",
    "register_executor",
    "register_reducer",
    # what a command line needs besides (tea.cli uses only this module)
    "RedactingFilter",
    "Secrets",
    "collect_errors",
    "graceful_signals",
    "json_schema",
    "load_checkpoint",
    "parse_secrets_arg",
    "ProgressBoard",
    "progress_board",
    "render_diagram",
    "secrets_from_env",
    "version_text",
]

P = inspect.Parameter
EMPTY = P.empty

# (name, kind, default) of every parameter, in order.
SIGNATURES: dict[str, list[tuple[str, Any, Any]]] = {
    "load": [("path", P.POSITIONAL_OR_KEYWORD, EMPTY), ("overrides", P.KEYWORD_ONLY, ())],
    "loads": [
        ("text", P.POSITIONAL_OR_KEYWORD, EMPTY),
        ("path", P.POSITIONAL_OR_KEYWORD, None),
        ("overrides", P.KEYWORD_ONLY, ()),
    ],
    "Workflow.invoke": [
        ("self", P.POSITIONAL_OR_KEYWORD, EMPTY),
        ("state", P.POSITIONAL_OR_KEYWORD, None),
        ("checkpoint", P.KEYWORD_ONLY, None),
        ("options", P.VAR_KEYWORD, EMPTY),
    ],
    "Workflow.stream": [
        ("self", P.POSITIONAL_OR_KEYWORD, EMPTY),
        ("state", P.POSITIONAL_OR_KEYWORD, None),
        ("checkpoint", P.KEYWORD_ONLY, None),
        ("options", P.VAR_KEYWORD, EMPTY),
    ],
    "StateGraph.__init__": [
        ("self", P.POSITIONAL_OR_KEYWORD, EMPTY),
        ("state_schema", P.POSITIONAL_OR_KEYWORD, None),
        ("context_schema", P.POSITIONAL_OR_KEYWORD, None),
        ("input_schema", P.KEYWORD_ONLY, None),
        ("output_schema", P.KEYWORD_ONLY, None),
        ("name", P.KEYWORD_ONLY, "graph"),
        ("reducers", P.KEYWORD_ONLY, None),
        ("legacy", P.VAR_KEYWORD, EMPTY),
    ],
    "StateGraph.add_node": [
        ("self", P.POSITIONAL_OR_KEYWORD, EMPTY),
        ("node", P.POSITIONAL_OR_KEYWORD, EMPTY),
        ("action", P.POSITIONAL_OR_KEYWORD, None),
        ("options", P.VAR_KEYWORD, EMPTY),
    ],
    "StateGraph.add_edge": [
        ("self", P.POSITIONAL_OR_KEYWORD, EMPTY),
        ("source", P.POSITIONAL_OR_KEYWORD, EMPTY),
        ("target", P.POSITIONAL_OR_KEYWORD, EMPTY),
    ],
    "StateGraph.add_conditional_edges": [
        ("self", P.POSITIONAL_OR_KEYWORD, EMPTY),
        ("source", P.POSITIONAL_OR_KEYWORD, EMPTY),
        ("path", P.POSITIONAL_OR_KEYWORD, EMPTY),
        ("path_map", P.POSITIONAL_OR_KEYWORD, None),
    ],
    "StateGraph.add_parallel_edges": [
        ("self", P.POSITIONAL_OR_KEYWORD, EMPTY),
        ("source", P.POSITIONAL_OR_KEYWORD, EMPTY),
        ("targets", P.POSITIONAL_OR_KEYWORD, EMPTY),
        ("fan_in", P.KEYWORD_ONLY, EMPTY),
        ("config", P.KEYWORD_ONLY, None),
    ],
    "StateGraph.set_entry_point": [
        ("self", P.POSITIONAL_OR_KEYWORD, EMPTY),
        ("name", P.POSITIONAL_OR_KEYWORD, EMPTY),
    ],
    "StateGraph.compile": [
        ("self", P.POSITIONAL_OR_KEYWORD, EMPTY),
        ("checkpointer", P.POSITIONAL_OR_KEYWORD, None),
        ("parallel", P.KEYWORD_ONLY, None),
        ("recursion_limit", P.KEYWORD_ONLY, None),
        ("interrupt_before", P.KEYWORD_ONLY, None),
        ("interrupt_after", P.KEYWORD_ONLY, None),
        ("debug", P.KEYWORD_ONLY, False),
        ("name", P.KEYWORD_ONLY, None),
    ],
    "register_action": [
        ("name", P.POSITIONAL_OR_KEYWORD, EMPTY),
        ("fn", P.POSITIONAL_OR_KEYWORD, EMPTY),
    ],
    "register_reducer": [
        ("name", P.POSITIONAL_OR_KEYWORD, EMPTY),
        ("fn", P.POSITIONAL_OR_KEYWORD, EMPTY),
    ],
    "register_executor": [
        ("name", P.POSITIONAL_OR_KEYWORD, EMPTY),
        ("factory", P.POSITIONAL_OR_KEYWORD, EMPTY),
    ],
    "json_schema": [("kind", P.POSITIONAL_OR_KEYWORD, "all")],
    "ProgressBoard.open": [("enabled", P.POSITIONAL_OR_KEYWORD, None)],
    "progress_board": [],
}


def resolve(dotted: str) -> Callable[..., Any]:
    obj: Any = tea
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[no-any-return]


def test_all_is_pinned() -> None:
    """tea.__all__ is exactly the curated public names."""
    assert sorted(tea.__all__) == sorted(PUBLIC)


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_resolves(name: str) -> None:
    """Every name in __all__ can be read from the package."""
    assert getattr(tea, name) is not None


def test_dir_lists_the_public_names() -> None:
    """dir(tea) shows the public API (the names are lazy attributes)."""
    assert set(PUBLIC) <= set(dir(tea))


def test_unknown_attribute_raises_attribute_error() -> None:
    """A name outside the API is an AttributeError."""
    with pytest.raises(AttributeError):
        tea.nothing_here  # noqa: B018 - the attribute access is the test


@pytest.mark.parametrize("dotted", sorted(SIGNATURES))
def test_signature_is_pinned(dotted: str) -> None:
    """Parameter names, kinds and defaults of the public callables do not drift."""
    params = inspect.signature(resolve(dotted)).parameters.values()
    assert [(p.name, p.kind, p.default) for p in params] == SIGNATURES[dotted]


def test_constants() -> None:
    """START/END are the dialect's names and STREAM_MODES the three modes."""
    assert (tea.START, tea.END) == ("__start__", "__end__")
    assert tuple(tea.STREAM_MODES) == ("updates", "values", "debug")


def test_error_classes_form_one_tree() -> None:
    """LoadError, RunError and CheckpointError derive from TeaError."""
    for cls in (tea.LoadError, tea.RunError, tea.CheckpointError):
        assert issubclass(cls, tea.TeaError)


def test_workflow_type_of_load_and_compile(tmp_path: Any) -> None:
    """load, loads and StateGraph.compile all return a Workflow."""
    path = tmp_path / "w.yaml"
    path.write_text("nodes:\n  - name: a\n", encoding="utf-8")
    graph = tea.StateGraph()
    graph.add_node("a")
    for workflow in (tea.load(path), tea.loads(path.read_text()), graph.compile()):
        assert isinstance(workflow, tea.Workflow)


def test_retry_policy_and_parallel_config_describe_a_fan_out() -> None:
    """RetryPolicy and ParallelConfig are the records a Python caller builds."""
    config = tea.ParallelConfig(strategy="thread", retry=tea.RetryPolicy(max_attempts=3))
    assert config.retry.max_attempts == 3


def test_register_executor_adds_a_strategy_for_yaml(tmp_path: Any) -> None:
    """A strategy registered from Python is usable as parallel_strategy: in YAML (in a fresh
    interpreter: the registry is process-wide)."""
    path = tmp_path / "w.yaml"
    path.write_text(
        "nodes:\n  - name: s\n  - name: a\n    run: 'x = 1'\n  - name: f\n"
        "edges:\n  - {from: s, to: [a], fan_in: f, parallel_strategy: threads_again}\n",
        encoding="utf-8",
    )
    code = (
        "import sys, tea\n"
        "from executors.thread import ThreadExecutor\n"
        "tea.register_executor('threads_again', ThreadExecutor)\n"
        "print(tea.load(sys.argv[1]).invoke({})['parallel_results'][0]['state'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "{'x': 1}"


def test_importing_tea_is_lazy() -> None:
    """import tea loads no heavy dependency (jinja2, yaml, click), so the CLI starts fast."""
    code = "import sys, tea; print(sorted(m for m in ('jinja2', 'yaml', 'click') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"
