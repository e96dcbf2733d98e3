"""One connection to a Dask cluster, for the executor's life (one run).

::

    Session.open(options, branch)
      scheduler: options.address | $DASK_SCHEDULER_ADDRESS | inside a Dask task, that
                 worker's own scheduler | an embedded LocalCluster, started here (one
                 single-threaded worker process per core) and closed by close()
      Client(address, timeout=connect_timeout)    else SchedulerUnreachable
    ship(kind, key, data) ─► a Future of ``data`` (bytes), scattered once and copied to
                            every worker, under its content key; scattered again if the
                            cluster lost it (every worker that held it died)
    submit(key, *args)    ─► a Future of executors.dask._task.run_chunk(*args)

Dask's own log lines stay off the user's terminal for the embedded cluster: tea
reports what went wrong (a dead worker is a branch's ``WorkerDied``). That cluster
lets a task fail at the first death of its worker (``allowed-failures: 0``), so
tea's retry policy, not Dask, decides whether the branch runs again; and its workers
ignore the terminal's Ctrl-C (``dask_setup``): tea decides what a stop means.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
from collections import OrderedDict
from typing import Any

import dask
import distributed

from executors.dask._options import DaskOptions, resolve_address
from executors.dask._task import dask_setup, run_chunk
from executors.dask.errors import DaskSetupError, SchedulerUnreachable

__all__ = ["Session", "leave_worker_threads"]

log = logging.getLogger("tea.dask")

# The shared inputs a session keeps on the cluster: a loop around a fan-out, or nested
# fan-outs, find theirs again; older ones are released.
_SHARED_KEPT = 4
_CLOSE_SECONDS = 5.0
_seceded = threading.local()


class Session:
    """A ``distributed.Client`` (and the LocalCluster it started, if any). Thread-safe."""

    def __init__(
        self,
        client: distributed.Client,
        cluster: distributed.LocalCluster | None,
        address: str,
        origin: str,
        timeout: float,
    ) -> None:
        self.client = client
        self.cluster = cluster
        self.address = address
        self.origin = origin
        """Where the address came from (the setting, the variable, the embedded cluster)."""
        self._timeout = timeout
        self._lock = threading.Lock()
        self._programs: dict[str, distributed.Future[bytes]] = {}
        self._shared: OrderedDict[str, distributed.Future[bytes]] = OrderedDict()

    @classmethod
    def open(cls, options: DaskOptions, branch: str) -> Session:
        """Connect to the scheduler ``options`` name (raises ``DaskSetupError``; ``branch``
        is the first branch that needs the cluster, named in the error)."""
        address, origin = resolve_address(options)
        cluster = None
        if address is None:
            address = _worker_scheduler()
            if address is not None:
                origin = "the scheduler of the Dask worker running this branch"
        _quiet_dask_logs(logging.WARNING if address else logging.CRITICAL)
        if address is None:
            cluster = _local_cluster(branch)
            address = cluster.scheduler_address
        try:
            client = _connect(address, options.connect_timeout, origin, branch)
        except BaseException:
            if cluster is not None:
                cluster.close(timeout=_CLOSE_SECONDS)
            raise
        return cls(client, cluster, address, origin, options.connect_timeout)

    def threads(self) -> int:
        """Worker threads in the cluster now (at least 1)."""
        return max(1, sum(self.client.nthreads().values()))  # type: ignore[no-untyped-call]

    def ship(self, kind: str, key: str, data: bytes, branch: str) -> distributed.Future[bytes]:
        """``data`` on the cluster under ``tea-<kind>-<key>``, scattered to every worker the
        first time, or again when the cluster lost it; raises ``DaskSetupError``."""
        name = f"tea-{kind}-{key}"
        kept = self._programs if kind == "program" else self._shared
        with self._lock:
            future = kept.get(name)
            if future is None or future.status != "finished":
                future = self._scatter(name, data, kind, branch)
                kept[name] = future
            if kept is self._shared:
                self._shared.move_to_end(name)
                while len(self._shared) > _SHARED_KEPT:
                    self._shared.popitem(last=False)
            return future

    def submit(self, key: str, *args: Any) -> distributed.Future[Any]:
        """Start ``run_chunk(*args)`` as the Dask task ``key``."""
        return self.client.submit(run_chunk, *args, key=key, pure=False)

    def close(self) -> None:
        """Disconnect, and stop the embedded cluster. Errors while closing are ignored."""
        with contextlib.suppress(Exception):
            self.client.close(timeout=_CLOSE_SECONDS)  # type: ignore[no-untyped-call]
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close(timeout=_CLOSE_SECONDS)

    def _scatter(self, name: str, data: bytes, kind: str, branch: str) -> distributed.Future[bytes]:
        what = "workflow" if kind == "program" else "fan-out's shared input"
        try:
            futures = self.client.scatter(  # type: ignore[no-untyped-call]
                {name: data}, broadcast=True, hash=False, timeout=self._timeout
            )
        except TimeoutError as exc:
            raise DaskSetupError(
                f"the Dask cluster at {self.address} ({self.origin}) has no running worker "
                f"(waited {self._timeout:g}s to send it the {what})",
                branch=branch,
                hint=f"start workers (dask worker {self.address}), or keep an adaptive cluster's "
                "minimum at one worker or more",
            ) from exc
        except Exception as exc:
            raise DaskSetupError(
                f"cannot send the {what} to the Dask cluster at {self.address}: {_reason(exc)}",
                branch=branch,
            ) from exc
        future: distributed.Future[bytes] = futures[name]
        return future


def _connect(address: str, timeout: float, origin: str, branch: str) -> distributed.Client:
    # Built in two steps so that a client whose start failed can still be closed here:
    # left to the garbage collector, it prints a traceback on the terminal at exit.
    client = distributed.Client.__new__(distributed.Client)
    try:
        client.__init__(address, timeout=timeout, set_as_default=False)  # type: ignore[misc]
    except Exception as exc:
        with contextlib.suppress(Exception):
            client.close(timeout=_CLOSE_SECONDS)  # type: ignore[no-untyped-call]
        raise SchedulerUnreachable(
            f"no Dask scheduler answered at {address} ({origin}) within {timeout:g}s: {_reason(exc)}",
            branch=branch,
            hint="start one (dask scheduler), check the address, or raise "
            "settings.parallel.dask.connect_timeout",
        ) from exc
    return client


def _local_cluster(branch: str) -> distributed.LocalCluster:
    """The embedded cluster: one single-threaded worker process per core.

    Workers start from a forkserver where there is one (fast, and never ``fork``:
    that would copy the driver's threads and their locks), else with spawn.
    """
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    settings = {
        "distributed.scheduler.allowed-failures": 0,
        "distributed.worker.multiprocessing-method": method,
    }
    try:
        with dask.config.set(settings):
            cluster = distributed.LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=os.cpu_count() or 1,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                # A free port: Dask's default (8787) warns when another cluster holds it.
                dashboard_address="127.0.0.1:0",
                silence_logs=logging.CRITICAL,
                preload=[dask_setup.__module__],  # workers ignore the terminal's Ctrl-C
            )
    except Exception as exc:
        raise DaskSetupError(
            f"cannot start the embedded Dask LocalCluster: {_reason(exc)}",
            branch=branch,
            hint="a Python script that runs this workflow must guard its entry point with "
            "if __name__ == '__main__':; or point settings.parallel.dask.address at a cluster",
        ) from exc
    log.debug("embedded Dask cluster at %s, dashboard %s", cluster.scheduler_address, cluster.dashboard_link)
    return cluster


def leave_worker_threads() -> None:
    """If this thread runs a Dask task (a branch that starts a fan-out of its own), take it
    out of its worker's thread pool while it waits for the inner branches: they need the
    worker threads, and a cluster whose every thread waits on them would hang."""
    try:
        distributed.get_worker()
    except ValueError:
        return
    if not getattr(_seceded, "done", False):  # the thread ends with its task: no reset needed
        distributed.secede()  # type: ignore[no-untyped-call]
        _seceded.done = True


def _quiet_dask_logs(level: int) -> None:
    """Keep Dask's own log lines below ``level`` off tea's log (its INFO lines say that a
    scheduler started or a client connected; an embedded cluster's errors are the ones tea
    reports itself, as branch errors), unless tea logs at DEBUG (``tea -v``)."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        dask_log = logging.getLogger("distributed")
        dask_log.setLevel(max(dask_log.getEffectiveLevel(), level))


def _worker_scheduler() -> str | None:
    """The scheduler of the Dask worker running this thread's task, if any (a nested fan-out
    joins its parent's cluster instead of starting one inside a worker)."""
    try:
        worker = distributed.get_worker()
    except ValueError:
        return None
    address: str = worker.scheduler.address
    return address


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
