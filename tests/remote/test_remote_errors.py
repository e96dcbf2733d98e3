"""The remote error tree: every error carries its category, and a stopped worker is no host fault."""

from __future__ import annotations

import pytest

from executors.base import ERROR_CATEGORIES, ErrorInfo, RetryPolicy
from executors.retry import retryable
from remote.errors import AllHostsDown, HostDown, ProgramLoadError, RemoteSetupError, WorkerStopped
from tea.errors import BranchError, WorkerDied


@pytest.mark.parametrize(
    ("error", "category"),
    [
        (RemoteSetupError("authentication failed", host="h"), "setup"),
        (ProgramLoadError("the workflow does not load"), "setup"),
        (AllHostsDown("every host is down"), "setup"),
        (WorkerStopped("another branch timed out", host="h"), "cancelled"),
        (HostDown("connection lost", host="h"), "worker_died"),
    ],
)
def test_each_error_says_what_kind_of_failure_it_is(error, category):
    assert category in ERROR_CATEGORIES
    assert isinstance(error, BranchError)
    info = ErrorInfo.from_exception(error)
    assert info.category == category
    # Retries are decided by category: a setup problem or a stop is never tried again.
    assert retryable(RetryPolicy(max_attempts=3), info) is (category == "worker_died")


def test_a_stopped_worker_is_not_a_lost_host():
    assert not issubclass(WorkerStopped, HostDown) and not issubclass(WorkerStopped, WorkerDied)
    assert issubclass(HostDown, WorkerDied)  # retry_on: [WorkerDied] covers a lost host


def test_a_lost_host_carries_the_whole_story():
    error = HostDown("worker exited with status 137 mid-branch", host="u@h:22", exit_status=137,
                     stderr_tail="Killed", permanent=False)
    assert (error.host, error.exit_status, error.stderr_tail, error.permanent, error.counted) == (
        "u@h:22", 137, "Killed", False, False,
    )
    assert str(error) == "host u@h:22: worker exited with status 137 mid-branch\n  stderr: Killed"
