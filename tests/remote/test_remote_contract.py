"""The executor contract suite (tests/executors/test_contract.py), run unchanged on the remote backend,
with each transport: one resilience layer, so retries, breakers, timeouts and fail_fast behave alike.

The suite's fixtures and tests are imported from their files; only ``backend`` is
ours: real sshd hosts, reached as root because the suite's branches write
counters into the driver's private ``tmp_path``.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sshd_hosts import SshCluster

from executors import ParallelConfig, get_executor
from remote.executor import RemoteExecutor

pytestmark = pytest.mark.timeout(90)

_SUITE = Path(__file__).resolve().parents[1] / "executors"
sys.path.insert(0, str(_SUITE))  # the suite's own modules (contract_program)


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_fixtures = _load("executors_contract_fixtures", _SUITE / "conftest.py")
_contract = _load("executors_contract_suite", _SUITE / "test_contract.py")

contract_program = _fixtures.contract_program
make_task = _fixtures.make_task
globals().update({k: v for k, v in vars(_contract).items() if k.startswith("test_")})


@pytest.fixture(params=["ssh", "gnu_parallel"])
def backend(
    request: pytest.FixtureRequest, ssh_cluster: SshCluster, launcher: Path, remote_dirs: tuple[Path, Path]
) -> Iterator[Any]:
    """The remote strategy on the three test hosts, as the contract suite's ``Backend``."""
    if request.param == "gnu_parallel" and shutil.which("parallel") is None:
        pytest.skip("GNU Parallel not installed")
    work, cache = remote_dirs
    settings = ssh_cluster.remote_settings(work, cache, basefile=str(launcher), transport=request.param)
    settings["hosts"] = [h.root_login for h in ssh_cluster.hosts]
    config = ParallelConfig(strategy="remote", options=RemoteExecutor.parse_options(settings))
    chosen = _fixtures.Backend("remote", config, lambda: get_executor("remote"))
    yield chosen
    for executor in chosen.made:
        executor.close()
