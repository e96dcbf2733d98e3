"""graceful_signals: the first SIGINT/SIGTERM stops at a safe point, a second one kills."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from tea.errors import Interrupted
from tea.signals import StopFlag, graceful_signals

ROOT = Path(__file__).resolve().parents[2]

# The child works in "nodes" of 10 ms and checks the flag between them, as the
# runner does; it reports what it saw and exits with Interrupted's exit code.
CHILD = textwrap.dedent(
    """
    import sys, time
    from tea.errors import Interrupted
    from tea.signals import graceful_signals
    with graceful_signals() as stop:
        print("ready", flush=True)
        try:
            for _ in range(2000):
                time.sleep(0.01)
                stop.raise_if_requested()
        except Interrupted as exc:
            print(f"stopped {exc.signum} event={stop.event.wait(10)}", flush=True)
            sys.exit(exc.exit_code)
    print("never stopped", flush=True)
    """
)

# A node that never returns: only the second signal gets the child out.
STUCK_CHILD = textwrap.dedent(
    """
    import time
    from tea.signals import graceful_signals
    with graceful_signals() as stop:
        print("ready", flush=True)
        for _ in range(2000):
            time.sleep(0.01)
            if stop.requested:
                print(f"flag {stop.requested}", flush=True)
                break
        time.sleep(20)
    """
)


def start(code: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert read_line(proc) == b"ready\n"
    return proc


def read_line(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> bytes:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        proc.kill()
        pytest.fail("child did not answer in time")
    return proc.stdout.readline()


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_first_signal_stops_at_the_next_safe_point(signum: int, code: int) -> None:
    proc = start(CHILD)
    try:
        proc.send_signal(signum)
        assert read_line(proc) == f"stopped {signum} event=True\n".encode()
        assert proc.wait(timeout=20) == code
    finally:
        proc.kill()
        proc.wait(timeout=20)
        assert proc.stdout is not None
        proc.stdout.close()


def test_second_signal_kills_at_once() -> None:
    proc = start(STUCK_CHILD)
    try:
        proc.send_signal(signal.SIGTERM)
        assert read_line(proc) == f"flag {signal.SIGTERM}\n".encode()
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == -signal.SIGTERM
    finally:
        proc.kill()
        proc.wait(timeout=20)
        assert proc.stdout is not None
        proc.stdout.close()


def test_previous_handlers_come_back() -> None:
    def mine(signum: int, frame: object) -> None:
        raise AssertionError("not expected to run")

    before_int = signal.getsignal(signal.SIGINT)
    before_term = signal.signal(signal.SIGTERM, mine)
    try:
        with graceful_signals() as stop:
            assert signal.getsignal(signal.SIGTERM) is not mine
            assert signal.getsignal(signal.SIGINT) is not before_int
            assert stop.requested is None
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGINT) is before_int
    finally:
        signal.signal(signal.SIGTERM, before_term)


def test_off_the_main_thread_nothing_is_installed() -> None:
    seen: list[object] = []

    def work() -> None:
        with graceful_signals() as stop:
            seen.append(signal.getsignal(signal.SIGTERM))
            seen.append(stop.requested)

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=20)
    assert seen == [before, None]


def test_a_stop_can_be_requested_without_a_signal() -> None:
    stop = StopFlag()
    assert not stop.wait(0)
    stop.raise_if_requested()
    threading.Thread(target=stop.request).start()
    assert stop.wait(20)
    assert stop.requested == signal.SIGTERM
    with pytest.raises(Interrupted) as info:
        stop.raise_if_requested()
    assert info.value.exit_code == 143
