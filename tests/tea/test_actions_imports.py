"""imports: loading reference-style action modules from files and packages, with namespaces."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import cloudpickle
import pytest

from tea.actions import ActionRegistry, load_imports
from tea.errors import LoadError, SchemaError, WorkflowSyntaxError
from tea.yamlsrc import load_yaml

MODULE = textwrap.dedent("""
    LOADS = []
    LOADS.append(1)

    def shout(state, text):
        return {"shout": text.upper() + "!" * len(LOADS)}

    def count(state, **kwargs):
        return len(state)

    def register_actions(registry, engine):
        registry["shout"] = shout
        registry["count"] = count
        registry["engine_name"] = lambda state: getattr(engine, "name", None)
""")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_path_import_with_namespace_relative_to_base_dir(tmp_path):
    write(tmp_path / "actions" / "mine.py", MODULE)
    registry = ActionRegistry()

    class Engine:
        name = "the-engine"

    load_imports(registry, [{"path": "actions/mine.py", "namespace": "x"}], tmp_path, Engine())
    assert sorted(registry) == ["x.count", "x.engine_name", "x.shout"]
    assert registry["x.shout"]({}, text="hi") == {"shout": "HI!"}
    assert registry["x.engine_name"]({}) == "the-engine"


def test_without_namespace_names_are_kept(tmp_path):
    write(tmp_path / "mine.py", MODULE)
    registry = ActionRegistry()
    load_imports(registry, [{"path": "mine.py"}], tmp_path)
    assert "shout" in registry


def test_duplicate_loads_are_skipped_but_a_second_namespace_loads(tmp_path):
    write(tmp_path / "mine.py", MODULE)
    registry = ActionRegistry()
    imports = [{"path": "mine.py", "namespace": "a"}, {"path": "./mine.py", "namespace": "a"}]
    load_imports(registry, imports, tmp_path)
    load_imports(registry, imports, tmp_path)
    assert registry["a.shout"]({}, text="x") == {"shout": "X!"}
    load_imports(registry, [{"path": "mine.py", "namespace": "b"}], tmp_path)
    assert "b.shout" in registry


def test_package_import(tmp_path, monkeypatch):
    write(tmp_path / "tea_pkg_actions" / "__init__.py", MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = ActionRegistry()
    load_imports(registry, [{"package": "tea_pkg_actions", "namespace": "pkg"}], tmp_path)
    assert registry["pkg.shout"]({}, text="ok") == {"shout": "OK!"}
    sys.modules.pop("tea_pkg_actions", None)


def test_imported_actions_travel_by_value_through_cloudpickle(tmp_path):
    write(tmp_path / "mine.py", MODULE)
    registry = ActionRegistry()
    load_imports(registry, [{"path": "mine.py", "namespace": "x"}], tmp_path)
    restored = cloudpickle.loads(cloudpickle.dumps(registry))
    assert restored["x.shout"]({}, text="far") == {"shout": "FAR!"}


def load_from_yaml(tmp_path: Path, text: str) -> None:
    doc = load_yaml(textwrap.dedent(text), str(tmp_path / "flow.yaml"))
    load_imports(ActionRegistry(), doc["imports"], tmp_path)


@pytest.mark.parametrize(("yaml_text", "error", "message", "line"), [
    ("imports: {path: a.py}\n", SchemaError, "must be a list", 1),
    ("imports:\n  - path: a.py\n    package: b\n", SchemaError, "exactly one of path: or package:",
     2),
    ("imports:\n  - path: a.py\n    nmespace: x\n", SchemaError, "unknown key 'nmespace'", 3),
    ("imports:\n  - path: 3\n", SchemaError, "path: must be a non-empty string", 2),
    ("imports:\n  - namespace: x\n    path: nothere.py\n", LoadError,
     "action module 'nothere.py' not found", 3),
    ("imports:\n  - package: tea_no_such_package_xyz\n", LoadError,
     "cannot import package 'tea_no_such_package_xyz'", 2),
])
def test_bad_imports_are_located_load_errors(tmp_path, yaml_text, error, message, line):
    with pytest.raises(error, match=message) as info:
        load_from_yaml(tmp_path, yaml_text)
    assert info.value.location.file == str(tmp_path / "flow.yaml")
    assert info.value.location.line == line


def test_module_without_register_actions(tmp_path):
    write(tmp_path / "empty.py", "X = 1\n")
    with pytest.raises(LoadError, match=r"no callable register_actions\(registry, engine\)"):
        load_imports(ActionRegistry(), [{"path": "empty.py"}], tmp_path)


def test_syntax_error_points_into_the_action_file(tmp_path):
    path = write(tmp_path / "broken.py", "def register_actions(registry, engine):\n    return (\n")
    with pytest.raises(WorkflowSyntaxError) as info:
        load_imports(ActionRegistry(), [{"path": "broken.py"}], tmp_path)
    assert info.value.location.file == str(path.resolve())
    assert info.value.location.line is not None


def test_failures_inside_the_module_are_load_errors(tmp_path):
    write(tmp_path / "raises.py", "raise RuntimeError('no config')\n")
    write(tmp_path / "badreg.py", "def register_actions(registry, engine):\n"
                                  "    registry['x'] = 42\n")
    with pytest.raises(LoadError, match=r"importing action module .* RuntimeError: no config"):
        load_imports(ActionRegistry(), [{"path": "raises.py"}], tmp_path)
    with pytest.raises(LoadError, match="registered 'x' as int, not a function"):
        load_imports(ActionRegistry(), [{"path": "badreg.py"}], tmp_path)
