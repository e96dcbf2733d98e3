"""Small threading primitives shared by the backends: a cancel token and reusable daemon threads.

Private: the backends and ``executors.resilience`` use them; nothing else should.
The threads live as long as the process: idle ones just wait for the next job.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

__all__ = ["CancelToken", "DaemonThreads", "shared_threads"]


class CancelToken:
    """A cancel flag that wakes its waiters and runs callbacks when set. Thread-safe.

    A token made with ``parent`` is cancelled when its parent is; cancelling the
    child leaves the parent alone (a timed-out attempt does not stop its batch).
    ``detach()`` unhooks a child from its parent once it is no longer needed.
    """

    def __init__(self, parent: CancelToken | None = None) -> None:
        self.event = threading.Event()
        self._lock = threading.Lock()
        # Keyed by the callback (a bound method equals another of the same object and
        # function), in order: a child unhooks itself in O(1), however wide its batch.
        self._callbacks: dict[Callable[[], None], None] = {}
        self._parent = parent
        if parent is not None:
            parent.on_cancel(self.cancel)

    @property
    def cancelled(self) -> bool:
        return self.event.is_set()

    def cancel(self) -> None:
        """Set the flag and run the callbacks (once; later calls do nothing)."""
        with self._lock:
            if self.event.is_set():
                return
            self.event.set()
            callbacks, self._callbacks = list(self._callbacks), {}
        for callback in callbacks:
            callback()

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run ``callback`` when cancelled (at once if already); returns an unhook function."""
        with self._lock:
            if not self.event.is_set():
                self._callbacks[callback] = None
                return lambda: self._discard(callback)
        callback()
        return _nothing

    def sleep(self, seconds: float) -> None:
        """Sleep up to ``seconds``, waking early when cancelled."""
        self.event.wait(seconds)

    def detach(self) -> None:
        """Stop following the parent (so a finished attempt is not kept alive by its batch)."""
        if self._parent is not None:
            self._parent._discard(self.cancel)
            self._parent = None

    def _discard(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._callbacks.pop(callback, None)


def _nothing() -> None:
    return None


class DaemonThreads:
    """A cached pool of daemon threads: a job goes to an idle thread, else a new thread starts.

    Unbounded on purpose: the backends bound concurrency themselves (one driver per
    ``max_workers`` slot), and a thread left behind by a timed-out branch must not
    take a slot from the next one. Daemon, because such a thread may still be inside
    a node at interpreter exit and must not keep the process alive.
    """

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._started = 0

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` on a pool thread; ``job`` must not raise."""
        with self._lock:
            self._jobs.put(job)
            if self._idle:
                self._idle -= 1
                return
            self._started += 1
            name = f"{self._prefix}-{self._started}"
        threading.Thread(target=self._loop, name=name, daemon=True).start()

    def _loop(self) -> None:
        while True:
            self._jobs.get()()
            with self._lock:
                self._idle += 1


_shared: DaemonThreads | None = None
_shared_lock = threading.Lock()


def shared_threads() -> DaemonThreads:
    """The process-wide pool every backend draws its driver and branch threads from."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = DaemonThreads("tea")
        return _shared
