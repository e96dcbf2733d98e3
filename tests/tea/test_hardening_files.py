"""file.read/file.write open their file without following a symlink swapped in after the check."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

import tea.actions.files as files
from tea.actions import ActionContext, ActionFailed, builtin_registry, call_action
from tea.actions.files import open_beneath
from tea.secrets import Secrets

ACTIONS = builtin_registry(entry_points=False)


def run(workdir: Path, action: str, params: dict[str, Any]) -> Any:
    ctx = ActionContext(node="io", workflow_dir=workdir, settings={}, secrets=Secrets(), variables={})
    return call_action(ACTIONS[action], {}, params, ctx, name=action)


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A root with sub/a.txt inside, and an outside directory with its own a.txt."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "sub" / "a.txt").write_text("inside")
    (outside / "a.txt").write_text("SECRET")
    return root.resolve(), outside.resolve()


def swap_for_link(path: Path, to: Path) -> None:
    """Replace ``path`` (a file or a directory) with a symlink to ``to``."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
    os.symlink(to, path)


def test_a_directory_swapped_for_a_symlink_after_the_check_is_refused(tree):
    root, outside = tree
    target = root / "sub" / "a.txt"  # checked: inside the root
    swap_for_link(root / "sub", outside)
    with pytest.raises(OSError) as info:
        open_beneath(root, target, os.O_RDONLY)
    assert info.value.errno == errno.ELOOP


def test_a_file_swapped_for_a_symlink_after_the_check_is_refused(tree):
    root, outside = tree
    target = root / "sub" / "a.txt"
    swap_for_link(target, outside / "a.txt")
    with pytest.raises(OSError) as info:
        open_beneath(root, target, os.O_WRONLY | os.O_TRUNC)
    assert info.value.errno == errno.ELOOP
    assert (outside / "a.txt").read_text() == "SECRET"


def test_directories_made_for_a_write_do_not_follow_a_symlink(tree):
    root, outside = tree
    target = root / "new" / "deeper" / "x.txt"  # checked while "new" did not exist
    os.symlink(outside, root / "new")
    with pytest.raises(OSError) as info:
        open_beneath(root, target, os.O_WRONLY | os.O_CREAT, make_dirs=True)
    assert info.value.errno == errno.ELOOP
    assert sorted(p.name for p in outside.iterdir()) == ["a.txt"]


def test_open_beneath_makes_missing_directories_and_refuses_paths_outside(tree):
    root, outside = tree
    fd = open_beneath(root, root / "m" / "n" / "x.txt", os.O_WRONLY | os.O_CREAT, make_dirs=True)
    os.close(fd)
    assert (root / "m" / "n" / "x.txt").is_file()
    with pytest.raises(ValueError):
        open_beneath(root, outside / "a.txt", os.O_RDONLY)


@pytest.mark.parametrize("action", ["file.read", "file.write"])
def test_the_actions_refuse_a_link_swapped_in_between_check_and_open(tree, monkeypatch, action):
    root, outside = tree
    checked = files.confine

    def confine_then_swap(*args: Any, **kwargs: Any) -> Path:
        target = checked(*args, **kwargs)
        swap_for_link(root / "sub", outside)  # the attacker wins the race every time
        return target

    monkeypatch.setattr(files, "confine", confine_then_swap)
    params = {"path": "sub/a.txt", "content": "overwritten"} if action == "file.write" else {"path": "sub/a.txt"}
    with pytest.raises(ActionFailed, match="became a symbolic link while it was opened") as info:
        run(root, action, params)
    assert "SECRET" not in str(info.value)
    assert (outside / "a.txt").read_text() == "SECRET"


def test_a_racing_symlink_never_leaks_the_outside_file(tree):
    root, outside = tree
    stop = threading.Event()

    def flip() -> None:  # swaps sub between a real directory and a link to outside, until told
        while not stop.is_set():
            # the writes below may make sub again meanwhile: that only skips a turn
            with contextlib.suppress(OSError):
                swap_for_link(root / "sub", outside)
                os.unlink(root / "sub")
                (root / "sub").mkdir()
                (root / "sub" / "a.txt").write_text("inside")

    flipper = threading.Thread(target=flip)
    flipper.start()
    seen: set[str] = set()
    try:
        for _ in range(400):
            try:
                seen.add(run(root, "file.read", {"path": "sub/a.txt"})["content"])
            except ActionFailed as exc:
                seen.add(type(exc).__name__)
            with contextlib.suppress(ActionFailed):
                run(root, "file.write", {"path": "sub/a.txt", "content": "inside"})
    finally:
        stop.set()
        flipper.join(timeout=30)
    assert "SECRET" not in seen
    assert (outside / "a.txt").read_text() == "SECRET"
    assert sorted(p.name for p in outside.iterdir()) == ["a.txt"]


def test_a_symlink_that_stays_inside_the_root_still_works(tree):
    root, _ = tree
    os.symlink(root / "sub", root / "alias")
    assert run(root, "file.read", {"path": "alias/a.txt"}) == {"content": "inside"}
    run(root, "file.write", {"path": "alias/b.txt", "content": "b"})
    assert (root / "sub" / "b.txt").read_text() == "b"


def test_a_fifo_is_refused_instead_of_waiting_for_a_writer(tree):
    root, _ = tree
    os.mkfifo(root / "pipe")
    with pytest.raises(ActionFailed, match="is not a regular file"):
        run(root, "file.read", {"path": "pipe"})
