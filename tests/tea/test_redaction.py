"""A secret's value never reaches stream events, checkpoints or the CLI's output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import tea

TOKEN = "s3cr3t-token-value"
FLOW = """
name: leaky
nodes:
  - name: copy
    uses: json.parse
    with:
      text: '{"t": "{{ secrets.token }}"}'
    output: parsed
  - name: stop
    interrupt: before
"""


def test_stream_events_are_redacted(tmp_path: Path) -> None:
    """Even when a node copies a secret into the state, events show ***."""
    path = tmp_path / "leaky.yaml"
    path.write_text(FLOW)
    events = list(tea.load(path).stream({}, secrets={"token": TOKEN}, stream_mode="debug"))
    text = json.dumps(events, default=str)
    assert TOKEN not in text
    assert "***" in text


def test_checkpoint_is_redacted(tmp_path: Path) -> None:
    """The checkpoint saved at an interrupt holds *** where the secret was."""
    path = tmp_path / "leaky.yaml"
    path.write_text(FLOW)
    run = tea.load(path).run({}, secrets={"token": TOKEN}, checkpoint_dir=tmp_path / "ck")
    run.invoke()
    assert run.stopped is not None
    saved = Path(run.checkpoint_path).read_text()
    assert TOKEN not in saved
    assert "***" in saved


def test_cli_output_and_stream_are_redacted(tmp_path: Path) -> None:
    """`tea run --stream --secrets` never prints the value, on stdout or stderr."""
    path = tmp_path / "leaky.yaml"
    path.write_text(FLOW.replace("  - name: stop\n    interrupt: before\n", ""))
    tea_bin = str(Path(sys.executable).parent / "tea")
    done = subprocess.run(
        [tea_bin, "run", str(path), "--stream", "-v", "--secrets", json.dumps({"token": TOKEN})],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert TOKEN not in done.stdout + done.stderr
    assert '"type": "end"' in done.stdout
