"""The remote backend's own errors (a leaf module: nothing of ``remote`` is imported).

::

    tea.errors.BranchError
    ├── RemoteSetupError       "setup": a problem no other host can fix (authentication,
    │   │                      host key, basefile, architecture, a missing key file):
    │   │                      the fan-out fails fast, its message says what to change
    │   └── ProgramLoadError   "setup": the shipped workflow does not load on the host
    ├── AllHostsDown           "setup": no host can take a branch any more; the message
    │                          names each host and why
    ├── WorkerStopped          "cancelled": the driver stopped a worker on purpose (a
    │                          branch on it timed out or was cancelled, or the run is
    │                          over); its other branches are sent again, no host fault
    └── tea.errors.WorkerDied
        └── HostDown           "worker_died": a host unreachable or lost (refused, timed
                               out, connection gone, worker died); a fault on its
                               breaker, and its branches move to the other hosts

``WorkerStopped`` and ``HostDown`` are both ``WorkerGone``: what a worker's pending
branches fail with when it can take no more work. Only ``HostDown`` is a fault.
Every class carries ``category`` (``executors.base.ERROR_CATEGORIES``), which is what
callers decide on; nothing matches class names.
"""

from __future__ import annotations

from tea.errors import BranchError, WorkerDied

__all__ = [
    "AllHostsDown",
    "HostDown",
    "ProgramLoadError",
    "RemoteSetupError",
    "WorkerGone",
    "WorkerStopped",
]


class RemoteSetupError(BranchError):
    """A configuration problem no other host can fix: the fan-out fails fast."""

    category = "setup"


class ProgramLoadError(RemoteSetupError):
    """The workflow shipped to a host (or its cloudpickle) does not load there."""


class AllHostsDown(BranchError):
    """No host can take a branch any more; the message names each host and why."""

    category = "setup"


class WorkerStopped(BranchError):
    """The driver stopped the worker on purpose: no host fault; its branches are sent again."""

    category = "cancelled"


class HostDown(WorkerDied):
    """A host that cannot be reached or was lost; its branches go to other hosts.

    ``permanent`` marks a host that will not get better during the run (its workdir
    cannot be created): it is never tried again. ``counted`` is set once the host's
    breaker was told (one fault per loss, not one per branch that was on it).
    """

    category = "worker_died"

    def __init__(
        self,
        message: str,
        *,
        host: str | None = None,
        exit_status: int | None = None,
        stderr_tail: str | None = None,
        permanent: bool = False,
    ) -> None:
        super().__init__(message, host=host, exit_status=exit_status, stderr_tail=stderr_tail)
        self.permanent = permanent
        self.counted = False


WorkerGone = HostDown | WorkerStopped
"""Why a worker takes no more work: lost (a fault) or stopped by the driver (none)."""
