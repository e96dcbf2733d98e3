"""Stop at a safe point on SIGINT/SIGTERM instead of dying mid-node.

::

    with graceful_signals() as stop:
        for node in ...:                # the run loop
            stop.raise_if_requested()   # safe point: between nodes
            ...
    # Interrupted(signum).exit_code is 130 for SIGINT, 143 for SIGTERM

The first SIGINT or SIGTERM only records the signal; the runner sees it at its
next safe point, saves a checkpoint and exits. A second signal puts the default
handlers back and re-sends itself, so the process dies at once (the way out of
a node that never returns). Off the main thread (Python only delivers signals
there) the context manager installs nothing and the flag is never set.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from executors._sync import run_hard_stop_hooks
from tea.errors import Interrupted

__all__ = ["HANDLED_SIGNALS", "StopFlag", "graceful_signals"]

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopFlag:
    """Whether a stop was asked for, and by which signal.

    ``event`` is set shortly after the first signal (by a helper thread, since
    setting an ``Event`` inside a signal handler can deadlock); pass it as the
    ``cancel`` of waits that should end early, e.g. retry backoff sleeps.
    Reading ``requested`` is safe from any thread.
    """

    def __init__(self) -> None:
        self._signum: int | None = None
        self.event = threading.Event()

    @property
    def requested(self) -> int | None:
        """The number of the first signal received, or ``None``."""
        return self._signum

    def raise_if_requested(self) -> None:
        """Raise ``Interrupted(signum)`` if a stop was asked for (call at safe points)."""
        if self._signum is not None:
            raise Interrupted(self._signum)

    def request(self, signum: int = signal.SIGTERM) -> None:
        """Ask for a stop as if ``signum`` had arrived (from any thread; not from a handler)."""
        if self._signum is None:
            self._signum = signum
        self.event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep up to ``timeout`` seconds or until a stop is asked for; True if it was."""
        return self.event.wait(timeout) or self._signum is not None


@contextlib.contextmanager
def graceful_signals() -> Iterator[StopFlag]:
    """Install the stop-at-safe-point handlers for the ``with`` block; restore the old ones."""
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    read_fd, write_fd = os.pipe()
    waker = threading.Thread(target=_set_on_wake, args=(read_fd, flag), name="tea-signal-waker", daemon=True)
    waker.start()
    previous: dict[signal.Signals, Any] = {}

    def handle(signum: int, frame: FrameType | None) -> None:
        if flag._signum is None:
            flag._signum = signum
            # A plain write is safe here; Event.set takes a lock the main
            # thread may be holding at the moment the handler runs.
            with contextlib.suppress(OSError):
                os.write(write_fd, b"s")
            return
        for number in HANDLED_SIGNALS:
            signal.signal(number, signal.SIG_DFL)
        run_hard_stop_hooks()  # e.g. shell.run's commands: no atexit after this kill
        os.kill(os.getpid(), signum)

    try:
        for number in HANDLED_SIGNALS:
            previous[number] = signal.signal(number, handle)
        yield flag
    finally:
        for restored, old in previous.items():
            # None: the old handler was not installed from Python; the default is the best guess.
            signal.signal(restored, signal.SIG_DFL if old is None else old)
        os.close(write_fd)
        waker.join(timeout=5)
        os.close(read_fd)


def _set_on_wake(read_fd: int, flag: StopFlag) -> None:
    """Block until the handler writes (set the event) or the pipe closes (return)."""
    try:
        if os.read(read_fd, 1):
            flag.event.set()
    except OSError:
        return
