"""Where the process strategy's workers come from: the start method, the forkserver's
preload, and starting that server ahead of the first pool.

A module of its own, light to import (``multiprocessing`` only), so that
``executors.prestart("process")`` can boot the server before the strategy's own
module (cloudpickle, the pool, the resilience layer) has been imported.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.context import BaseContext

__all__ = ["PRELOAD", "prestart", "start_context"]

PRELOAD = ["executors._worker", "tea.program"]
"""What the forkserver imports once, so that every worker starts with it: the worker
loop, and the engine that branch programs run on (named, never imported here)."""


def start_context() -> BaseContext:
    """forkserver where it exists, else spawn; never fork.

    fork copies the driver as it is, threads and all: a lock held by another thread
    at that moment (logging, the runner's drivers, an asyncssh loop) stays locked
    forever in the child. forkserver forks workers from a clean, single-threaded
    server that imported tea once (``PRELOAD``), so a worker starts in milliseconds;
    spawn (a fresh interpreter per worker) is the fallback where forkserver does not
    exist (Windows).
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        return context
    return multiprocessing.get_context("spawn")


def prestart() -> None:
    """Boot the forkserver now, before any pool needs it (``executors.prestart``).

    Its boot (a fresh interpreter importing ``PRELOAD``) is most of a cold pool's
    start; begun early, it overlaps the front end's own imports and loading, and the
    first pool only forks its workers. Returns at once (the server imports in its own
    process), is safe to call more than once, and the server exits with this process.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        from multiprocessing import forkserver  # POSIX only, hence here

        start_context()
        forkserver.ensure_running()
