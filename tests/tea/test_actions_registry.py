"""The action registry: dict-like access, suggestions, global registration, entry points, calls."""

from __future__ import annotations

import ast
import importlib
import logging
import sys
import textwrap
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

import tea.actions.registry as registry_module
from tea.actions import (
    ActionContext,
    ActionRegistry,
    UnknownAction,
    builtin_registry,
    call_action,
    register_action,
    takes_context,
    validate_action_params,
)
from tea.actions.builtin import BUILTIN_ACTIONS
from tea.errors import NodeError, SchemaError
from tea.secrets import Secrets

BUILTINS = {"llm.call", "llm.chat", "http.get", "http.post", "file.read", "file.write",
            "json.parse", "json.stringify", "yaml.parse", "log", "shell.run"}


def make_ctx(tmp_path: Path, secrets: dict[str, Any] | None = None) -> ActionContext:
    return ActionContext(node="step", workflow_dir=tmp_path, settings={},
                         secrets=Secrets(secrets or {}), variables={})


def test_builtins_are_registered():
    names = builtin_registry(entry_points=False).names()
    assert set(names) >= BUILTINS
    assert names == sorted(names)


def test_registry_is_dict_like():
    registry = ActionRegistry()
    registry["my.echo"] = lambda state, **kw: kw
    assert "my.echo" in registry and len(registry) == 1
    assert list(registry) == ["my.echo"]
    assert registry.get("missing") is None
    registry.update({"a": print})
    del registry["a"]
    assert registry.names() == ["my.echo"]
    with pytest.raises(KeyError):
        registry["missing"]
    with pytest.raises(TypeError, match="must be callable"):
        registry["bad"] = 3


def test_resolve_suggests_close_names():
    registry = builtin_registry(entry_points=False)
    with pytest.raises(UnknownAction) as info:
        registry.resolve("llm.cal")
    err = info.value
    assert isinstance(err, KeyError) and isinstance(err, SchemaError)
    assert "unknown action 'llm.cal'" in str(err)
    assert "did you mean 'llm.call'" in str(err)
    assert err.suggestions[0] == "llm.call"


def test_register_action_reaches_later_registries(monkeypatch):
    monkeypatch.setattr(registry_module, "_global_actions", {})
    register_action("custom.double", lambda state, x: {"y": 2 * x})
    register_action("json.parse", lambda state, text: {"mine": True})
    registry = builtin_registry(entry_points=False)
    assert registry["custom.double"]({}, x=2) == {"y": 4}
    assert registry["json.parse"]({}, text="1") == {"mine": True}


def test_call_action_passes_state_positionally_and_params_as_keywords(tmp_path):
    def action(s: dict[str, Any], a: int, b: int = 1) -> dict[str, Any]:
        return {"sum": s["base"] + a + b}

    assert call_action(action, {"base": 10}, {"a": 2}, make_ctx(tmp_path)) == {"sum": 13}


def test_context_actions_receive_ctx_and_extras_go_only_where_accepted(tmp_path):
    @takes_context
    def with_ctx(state: dict[str, Any], *, ctx: ActionContext) -> str:
        return ctx.node

    def with_kwargs(state: dict[str, Any], **kw: Any) -> dict[str, Any]:
        return kw

    def plain(state: dict[str, Any], x: int) -> int:
        return x

    ctx = make_ctx(tmp_path)
    assert call_action(with_ctx, {}, {}, ctx) == "step"
    extra = {"parallel_results": [1]}
    assert call_action(with_kwargs, {}, {"x": 1}, ctx, extra=extra) == {
        "x": 1, "parallel_results": [1]}
    assert call_action(plain, {}, {"x": 5}, ctx, extra=extra) == 5


def test_foreign_exceptions_become_node_errors_with_cause_and_redaction(tmp_path):
    def boom(state: dict[str, Any]) -> None:
        raise ValueError("token sk-abcdef leaked")

    ctx = make_ctx(tmp_path, {"k": "sk-abcdef"})
    with pytest.raises(NodeError) as info:
        call_action(boom, {}, {}, ctx, name="my.boom")
    err = info.value
    assert err.node == "step"
    assert isinstance(err.__cause__, ValueError)
    assert str(err) == "node 'step': action 'my.boom' failed: ValueError: token *** leaked"


def test_tea_errors_pass_through_and_get_the_node(tmp_path):
    def fails(state: dict[str, Any]) -> None:
        raise NodeError("already explained")

    with pytest.raises(NodeError) as info:
        call_action(fails, {}, {}, make_ctx(tmp_path))
    assert info.value.node == "step" and info.value.message == "already explained"


def test_parameter_mistakes_are_reported_before_calling(tmp_path):
    calls = []

    def greet(state: dict[str, Any], name: str, greeting: str = "hi") -> None:
        calls.append(name)

    with pytest.raises(NodeError, match=r"unknown parameter 'greting' \(did you mean 'greeting'"):
        call_action(greet, {}, {"name": "a", "greting": "yo"}, make_ctx(tmp_path), name="greet")
    with pytest.raises(NodeError, match="missing parameter 'name'"):
        call_action(greet, {}, {}, make_ctx(tmp_path), name="greet")
    assert calls == []


def test_validate_action_params_checks_names_and_values():
    registry = ActionRegistry({"greet": lambda state, name: None})
    assert validate_action_params("greet", {"name": "{{ state.x }}"}, registry=registry) == []
    assert validate_action_params("greet", {"nme": 1}, registry=registry) == [
        "unknown parameter 'nme' (did you mean 'name'?)", "missing parameter 'name'"]
    assert validate_action_params("nobody", {"x": 1}, registry=registry) == []
    assert validate_action_params("http.get", {"url": "ftp://x"}) == [
        "url 'ftp://x' is not an http(s) URL (expected like http://localhost:8080)"]


def test_registry_with_builtins_survives_cloudpickle():
    registry = builtin_registry(entry_points=False)
    restored = cloudpickle.loads(cloudpickle.dumps(registry))
    assert restored.names() == registry.names()
    assert restored["json.parse"]({}, text="[1]") == {"data": [1], "success": True}


def test_entry_point_group_tea_actions_is_discovered(tmp_path, monkeypatch, caplog):
    (tmp_path / "tea_demo_plugin.py").write_text(textwrap.dedent("""
        def hello(state, name="world"):
            return {"greeting": "hello " + name}

        def register_actions(registry, engine):
            registry["hello"] = hello
    """))
    dist = tmp_path / "tea_demo_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tea-demo-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent("""
        [tea.actions]
        demo = tea_demo_plugin
        direct = tea_demo_plugin:register_actions
        broken = tea_demo_plugin_missing
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    with caplog.at_level(logging.WARNING, logger="tea.actions.imports"):
        registry = builtin_registry()
    assert registry["demo.hello"]({}, name="tea") == {"greeting": "hello tea"}
    assert "direct.hello" in registry
    assert "skipping tea.actions entry point 'broken'" in caplog.text
    sys.modules.pop("tea_demo_plugin", None)


def test_imports_run_one_way_from_builtin_to_the_registry():
    """The registry imports no action module and the built-ins see only ``_common``: no cycle."""
    package = Path(registry_module.__file__).parent

    def tea_imports(name: str) -> set[str]:
        tree = ast.parse((package / f"{name}.py").read_text(encoding="utf-8"))
        found = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        found |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        return {module for module in found if module.startswith("tea.actions")}

    assert tea_imports("registry") == set()
    assert tea_imports("_common") == {"tea.actions.registry"}
    for name in ("data", "files", "http", "shell"):
        assert tea_imports(name) == {"tea.actions._common"}, name
    assert tea_imports("llm") == {"tea.actions._common", "tea.actions.llm_client", "tea.actions.llm_shell"}
    assert tea_imports("builtin") >= {f"tea.actions.{n}" for n in ("data", "files", "http", "llm", "shell")}
    assert "tea.actions" not in tea_imports("builtin")


def test_every_builtin_is_in_a_fresh_registry():
    """builtin_registry holds every name of BUILTIN_ACTIONS, and each registry is independent."""
    first, second = builtin_registry(entry_points=False), builtin_registry(entry_points=False)
    assert set(BUILTIN_ACTIONS) <= set(first.names())
    first["json.parse"] = lambda state: {}
    assert second["json.parse"] is BUILTIN_ACTIONS["json.parse"]
