"""File and archive steps on real files, confined to the files root like tea's file actions."""

from __future__ import annotations

import os
import tarfile
import zipfile
from pathlib import Path

from mission_helpers import RunMission


def test_create_edit_read_copy_move_delete(run: RunMission, tmp_path: Path) -> None:
    result = run("""
        steps:
          - {id: create, step_type: create_file, parameters: {path: a/notes.txt, content: "one\\n", mode: "600"}}
          - {id: append, step_type: edit_file, depends_on: [create],
             parameters: {path: a/notes.txt, content: "two\\n", append: true}}
          - {id: swap, step_type: edit_file, depends_on: [append],
             parameters: {path: a/notes.txt, find: two, replace: TWO, backup: true}}
          - {id: read, step_type: read_file, depends_on: [swap], parameters: {path: a/notes.txt}}
          - {id: copy, step_type: copy_file, depends_on: [read], parameters: {source: a/notes.txt, destination: b/}}
          - {id: move, step_type: move_file, depends_on: [copy],
             parameters: {source: b/notes.txt, destination: b/moved.txt}}
          - {id: delete, step_type: delete_file, depends_on: [move], parameters: {path: a/notes.txt.bak}}
          - {id: gone, step_type: delete_file, depends_on: [delete],
             parameters: {path: a/notes.txt.bak, missing_ok: true}}
    """)
    out = {k: r.output for k, r in result.step_results.items()}
    assert result.status == "completed", result.to_json()
    assert out["create"] == {"path": "a/notes.txt", "bytes": 4}
    assert (tmp_path / "a/notes.txt").stat().st_mode & 0o777 == 0o600
    assert out["append"] == {"path": "a/notes.txt", "bytes": 8}
    assert out["swap"] == {"path": "a/notes.txt", "replacements": 1, "backup": "a/notes.txt.bak", "bytes": 8}
    assert out["read"] == {"path": "a/notes.txt", "content": "one\nTWO\n", "bytes": 8}
    assert out["copy"] == {"source": "a/notes.txt", "destination": "b/notes.txt", "bytes": 8}
    assert out["move"] == {"source": "b/notes.txt", "destination": "b/moved.txt"}
    assert (tmp_path / "b/moved.txt").read_text() == "one\nTWO\n" and not (tmp_path / "b/notes.txt").exists()
    assert out["delete"]["deleted"] is True and out["gone"]["deleted"] is False


def test_json_content_and_create_without_overwrite(run: RunMission, tmp_path: Path) -> None:
    (tmp_path / "exists.txt").write_text("keep")
    result = run("""
        config: {fail_fast: false}
        steps:
          - {id: data, step_type: create_file, parameters: {path: d.json, content: {a: [1, 2]}}}
          - {id: keep, step_type: create_file, parameters: {path: exists.txt, content: x, overwrite: false}}
    """)
    assert (tmp_path / "d.json").read_text() == '{\n  "a": [\n    1,\n    2\n  ]\n}'
    assert result.step_results["keep"].status == "failed" and (tmp_path / "exists.txt").read_text() == "keep"


def test_paths_outside_the_files_root_are_refused(run: RunMission, tmp_path: Path) -> None:
    outside = tmp_path.parent / "outside-mission.txt"
    (tmp_path / "link").symlink_to(tmp_path.parent)
    result = run(f"""
        config: {{fail_fast: false}}
        steps:
          - {{id: dotdot, step_type: create_file, parameters: {{path: ../outside-mission.txt, content: x}}}}
          - {{id: absolute, step_type: read_file, parameters: {{path: {outside}}}}}
          - {{id: symlink, step_type: create_file, parameters: {{path: link/outside-mission.txt, content: x}}}}
    """)
    assert not outside.exists()
    for step in ("dotdot", "absolute", "symlink"):
        assert "is outside the allowed directory" in (result.step_results[step].error or ""), step


def test_files_root_setting_confines_and_roots_relative_paths(run: RunMission, tmp_path: Path) -> None:
    result = run("""
        settings: {files: {root: work}}
        steps:
          - {id: w, step_type: create_file, parameters: {path: x.txt, content: hi}}
    """)
    assert result.status == "completed" and (tmp_path / "work/x.txt").read_text() == "hi"


def test_list_directory_and_file_search(run: RunMission, tmp_path: Path) -> None:
    for name, text in {"src/a.py": "import os\n", "src/pkg/b.py": "print(1)\n", "src/c.txt": "os\n",
                       "src/.hidden.py": "x"}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    os.symlink("/etc", tmp_path / "src" / "etc_link")
    result = run("""
        steps:
          - {id: top, step_type: list_directory, parameters: {path: src}}
          - {id: py, step_type: list_directory, parameters: {path: src, pattern: "*.py", recursive: true}}
          - {id: search, step_type: file_search, parameters: {pattern: "**/*.py", path: src}}
          - {id: grep, step_type: file_search, parameters: {pattern: "**/*", contains: os, path: src}}
    """)
    out = {k: r.output for k, r in result.step_results.items()}
    assert [(e["name"], e["type"]) for e in out["top"]["entries"]] == [
        ("pkg", "directory"), ("a.py", "file"), ("c.txt", "file")]
    assert [e["path"] for e in out["py"]["entries"]] == ["src/a.py", "src/pkg/b.py"]
    assert out["search"] == {"matches": ["src/.hidden.py", "src/a.py", "src/pkg/b.py"], "count": 3}
    assert out["grep"]["matches"] == ["src/a.py", "src/c.txt"]


def test_compress_zip_and_tar(run: RunMission, tmp_path: Path) -> None:
    (tmp_path / "dist/app").mkdir(parents=True)
    (tmp_path / "dist/app/main.py").write_text("print('hi')\n")
    (tmp_path / "dist/app/data.txt").write_text("data\n")
    (tmp_path / "README").write_text("readme\n")
    result = run("""
        steps:
          - {id: z, step_type: compress, parameters: {sources: [dist/app, README], destination: out/app.zip}}
          - {id: t, step_type: compress, parameters: {sources: dist/app, destination: out/app.tar.gz}}
    """)
    assert result.status == "completed", result.to_json()
    assert result.step_results["z"].output["files"] == 3 and result.step_results["t"].output["format"] == "tar.gz"
    with zipfile.ZipFile(tmp_path / "out/app.zip") as archive:
        assert sorted(archive.namelist()) == ["README", "app/data.txt", "app/main.py"]
    with tarfile.open(tmp_path / "out/app.tar.gz") as tar:
        assert sorted(tar.getnames()) == ["app/data.txt", "app/main.py"]


def test_compress_needs_a_known_format(run: RunMission, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    result = run("steps:\n  - {id: z, step_type: compress, parameters: {sources: f, destination: f.rar}}\n")
    assert "cannot tell the archive format" in (result.step_results["z"].error or "")
