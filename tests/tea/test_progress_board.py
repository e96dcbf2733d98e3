"""The shared board: fan-outs whose branches start as workers take them, panels, joining."""

from __future__ import annotations

import threading
from typing import Any

from tea.progress import ProgressBoard, progress_board


def start(branch: str, total: int | None = None, **where: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "branch_start", "fanout": "f", "branch": branch, "strategy": "process", **where}
    if total is not None:
        event["total"] = total
    return event


def end(branch: str, success: bool = True) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "branch_end", "fanout": "f", "branch": branch, "success": success}
    if not success:
        event["error"] = {"type": "X", "message": "m", "category": "error"}
    return event


def test_a_sized_fan_out_keeps_one_line_while_branches_start_one_by_one() -> None:
    """Two workers, four branches: branches start as others end. The start says the
    fan-out's size, so the line is not done (and replaced) after the first two."""
    with ProgressBoard.open(enabled=False) as board:
        board.branch_event(start("f[0]", 4, pid=1))
        board.branch_event(start("f[1]", 4, pid=2))
        counter = board._fanouts["f"]
        board.branch_event(end("f[0]"))
        board.branch_event(end("f[1]", success=False))
        assert not counter.complete
        board.branch_event(start("f[2]", 4, pid=1))
        board.branch_event(start("f[3]", 4, pid=2))
        assert board._fanouts["f"] is counter
        assert (counter.total, counter.counts["running"]) == (4, 2)
        board.branch_event(end("f[2]"))
        board.branch_event(end("f[3]"))
        assert counter.complete and counter.detail() == "done 3 · running 0 · failed 1"


def test_starts_from_many_threads_make_one_line() -> None:
    with ProgressBoard.open(enabled=False) as board:
        barrier = threading.Barrier(8)

        def begin(index: int) -> None:
            barrier.wait()
            board.branch_event(start(f"f[{index}]", 8, thread=f"t{index}"))

        threads = [threading.Thread(target=begin, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        counter = board._fanouts["f"]
        assert (counter.total, counter.counts["running"]) == (8, 8)
        for index in range(8):
            board.branch_event(end(f"f[{index}]"))
        assert counter.complete


def test_join_shares_the_open_board_and_opens_one_when_none_is() -> None:
    board = ProgressBoard.open(enabled=False)
    try:
        joined, owned = ProgressBoard.join()
        assert joined is board and not owned
    finally:
        board.close()
    alone, owned = ProgressBoard.join(enabled=False)
    try:
        assert owned and progress_board() is alone and not alone.live
    finally:
        alone.close()
    assert ProgressBoard._active is None


def test_panels_render_in_the_order_they_came() -> None:
    with ProgressBoard.open(enabled=False) as board:
        first = board.panel(lambda: "first")
        board.panel(lambda: "second")
        assert board._renderables() == ["first", "second"]
        first.close()
        first.close()  # idempotent
        assert board._renderables() == ["second"]
