"""The dask backend's own errors (a leaf module: nothing of ``executors.dask`` is imported).

::

    tea.errors.BranchError
    └── DaskSetupError            "setup": the cluster cannot run tea's branches (the
        │                         embedded LocalCluster does not start, no worker is
        │                         running, the workers cannot import tea); the message
        │                         says what to change, nothing is retried
        └── SchedulerUnreachable  "setup": no Dask scheduler answers at the address
                                  within connect_timeout; names the address and where
                                  it came from (the setting or DASK_SCHEDULER_ADDRESS)

A Dask worker that dies mid-branch is ``tea.errors.WorkerDied`` ("worker_died"),
as in the other backends: the retry policy decides.
"""

from __future__ import annotations

from tea.errors import BranchError

__all__ = ["DaskSetupError", "SchedulerUnreachable"]


class DaskSetupError(BranchError):
    """The Dask cluster cannot run tea's branches: a setup problem no retry fixes."""

    category = "setup"


class SchedulerUnreachable(DaskSetupError):
    """No Dask scheduler answered at the configured address in time."""
