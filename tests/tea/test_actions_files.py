"""file.read and file.write: confined to the workflow directory or settings.files.root."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tea.actions import ActionContext, ActionFailed, builtin_registry, call_action
from tea.secrets import Secrets

ACTIONS = builtin_registry(entry_points=False)


def run(workdir: Path, action: str, params: dict[str, Any],
        settings: dict[str, Any] | None = None) -> Any:
    ctx = ActionContext(node="io", workflow_dir=workdir, settings=settings or {},
                        secrets=Secrets(), variables={})
    return call_action(ACTIONS[action], {}, params, ctx, name=action)


def test_write_then_read_inside_the_workflow_directory(tmp_path):
    written = run(tmp_path, "file.write", {"path": "out/notes.txt", "content": "héllo"})
    assert written == {"path": str((tmp_path / "out" / "notes.txt").resolve())}
    assert run(tmp_path, "file.read", {"path": "out/notes.txt"}) == {"content": "héllo"}
    run(tmp_path, "file.write", {"path": "out/notes.txt", "content": "!", "append": True})
    assert (tmp_path / "out" / "notes.txt").read_text() == "héllo!"


def test_write_turns_data_into_json_text(tmp_path):
    run(tmp_path, "file.write", {"path": "n.txt", "content": 5})
    run(tmp_path, "file.write", {"path": "d.json", "content": {"a": [1, "é"]}})
    assert (tmp_path / "n.txt").read_text() == "5"
    written = (tmp_path / "d.json").read_text(encoding="utf-8")
    assert written == '{\n  "a": [\n    1,\n    "é"\n  ]\n}'


def test_absolute_path_inside_the_root_is_allowed(tmp_path):
    (tmp_path / "a.txt").write_text("A")
    assert run(tmp_path, "file.read", {"path": str(tmp_path / "a.txt")}) == {"content": "A"}


@pytest.mark.parametrize("action", ["file.read", "file.write"])
@pytest.mark.parametrize("path", ["../outside.txt", "/etc/hostname", "sub/../../x.txt"])
def test_paths_outside_the_root_are_refused(tmp_path, action, path):
    workdir = tmp_path / "flow"
    workdir.mkdir()
    params = {"path": path, "content": "x"} if action == "file.write" else {"path": path}
    with pytest.raises(ActionFailed, match="is outside the allowed directory") as info:
        run(workdir, action, params)
    assert info.value.node == "io"
    assert not (tmp_path / "outside.txt").exists()


def test_symlink_leading_outside_is_refused(tmp_path):
    workdir, outside = tmp_path / "flow", tmp_path / "secret"
    workdir.mkdir()
    outside.mkdir()
    (outside / "key.txt").write_text("k")
    os.symlink(outside, workdir / "link")
    with pytest.raises(ActionFailed, match="outside the allowed directory"):
        run(workdir, "file.read", {"path": "link/key.txt"})


def test_settings_files_root_moves_the_confinement(tmp_path):
    workdir = tmp_path / "flow"
    data = tmp_path / "data"
    workdir.mkdir()
    data.mkdir()
    (data / "in.txt").write_text("data!")
    settings = {"files": {"root": "../data"}}
    assert run(workdir, "file.read", {"path": "in.txt"}, settings) == {"content": "data!"}
    with pytest.raises(ActionFailed, match="outside"):
        run(workdir, "file.read", {"path": "../flow/x"}, settings)


@pytest.mark.parametrize(("action", "params", "message"), [
    ("file.read", {"path": "missing.txt"}, "no such file 'missing.txt'"),
    ("file.read", {"path": "."}, "is a directory"),
    ("file.read", {"path": ""}, "path must be a non-empty path string"),
    ("file.write", {"path": "x.json", "content": None}, "content must be text, got NoneType"),
    ("file.write", {"path": "new/x.txt", "content": "x", "mkdir": False},
     "the directory of 'new/x.txt' does not exist"),
])
def test_clear_errors(tmp_path, action, params, message):
    with pytest.raises(ActionFailed, match=message):
        run(tmp_path, action, params)


def test_undecodable_file(tmp_path):
    (tmp_path / "bin.dat").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ActionFailed, match="is not valid utf-8 text"):
        run(tmp_path, "file.read", {"path": "bin.dat"})
    assert run(tmp_path, "file.read", {"path": "bin.dat", "encoding": "latin-1"})["content"]
