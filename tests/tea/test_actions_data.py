"""json.parse, json.stringify, yaml.parse and log: reference result shapes and clear failures."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from tea.actions import ActionContext, builtin_registry, call_action, validate_action_params
from tea.errors import NodeError
from tea.secrets import Secrets

ACTIONS = builtin_registry(entry_points=False)


def run(tmp_path: Path, action: str, params: dict[str, Any],
        secrets: dict[str, Any] | None = None) -> Any:
    ctx = ActionContext(node="data", workflow_dir=tmp_path, settings={},
                        secrets=Secrets(secrets or {}), variables={})
    return call_action(ACTIONS[action], {}, params, ctx, name=action)


def test_json_parse(tmp_path):
    assert run(tmp_path, "json.parse", {"text": '{"a": [1, 2]}'}) == {
        "data": {"a": [1, 2]}, "success": True}
    assert run(tmp_path, "json.parse", {"text": {"already": "parsed"}}) == {
        "data": {"already": "parsed"}, "success": True}


def test_json_parse_failure_is_data_not_an_exception(tmp_path):
    result = run(tmp_path, "json.parse", {"text": '{"a": }'})
    assert result == {"success": False, "error": "JSON parse error: Expecting value",
                      "error_type": "parse", "position": {"line": 1, "column": 7}}


def test_json_parse_lenient_mode_and_default(tmp_path):
    text = '{\n  // note\n  "url": "http://x/y", /* c */ "n": [1, 2,],\n}'
    assert run(tmp_path, "json.parse", {"text": text, "strict": False})["data"] == {
        "url": "http://x/y", "n": [1, 2]}
    assert run(tmp_path, "json.parse", {"text": "nope", "strict": False, "default": []}) == {
        "data": [], "success": True}


def test_json_stringify(tmp_path):
    assert run(tmp_path, "json.stringify", {"data": {"b": 1, "a": "é"}, "sort_keys": True}) == {
        "text": '{"a": "é", "b": 1}', "success": True}
    assert run(tmp_path, "json.stringify", {"data": [1], "indent": 2})["text"] == "[\n  1\n]"


def test_yaml_parse(tmp_path):
    assert run(tmp_path, "yaml.parse", {"text": "a: 1\nb: [x, y]\n"}) == {
        "data": {"a": 1, "b": ["x", "y"]}, "success": True}
    failed = run(tmp_path, "yaml.parse", {"text": "a: [1\n"})
    assert failed["success"] is False and failed["error"].startswith("YAML parse error")
    assert run(tmp_path, "yaml.parse", {"text": "!!python/object:os.system x"})["success"] is False


def test_log_writes_redacted_message(tmp_path, caplog):
    with caplog.at_level(logging.DEBUG, logger="tea.workflow"):
        assert run(tmp_path, "log", {"message": "using key sk-12345", "level": "warning"},
                   {"k": "sk-12345"}) == {}
        run(tmp_path, "log", {"message": {"n": 1}})
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "[data] using key ***"), ("INFO", '[data] {"n": 1}')]


def test_log_rejects_unknown_level(tmp_path):
    with pytest.raises(NodeError, match="level must be one of"):
        run(tmp_path, "log", {"message": "x", "level": "loud"})
    assert validate_action_params("log", {"message": "x", "level": "loud"})
