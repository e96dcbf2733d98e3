"""The remote strategy: fan-out branches run on SSH hosts (see ``remote.executor``).

Layers, bottom up: ``errors`` (the backend's error tree), ``config`` (settings and
host lists, parsed once at load), ``statejson`` and ``payload`` (what travels to a
host, as JSON, keyed by content), ``local_files`` (the binaries and key files),
``scripts`` (the shell a host runs), ``hosts`` (the host pool and its breakers).
The host side: ``branches`` (one branch process's programs, states and runs),
``pool`` (a host's branch processes), ``worker`` (``tea worker``, resident) and
``server`` (its GNU Parallel form). The driver side: ``channel`` (one worker seen
from the driver), ``ssh`` (asyncssh sessions), ``cluster`` (the hosts of a run),
``gnu_parallel``, ``gnu_transport``, ``gnu_jobs`` and ``gnu_batch`` (the GNU
Parallel transport), ``check`` (``tea hosts check``), ``bundle`` (the frozen
binary), ``executor`` (``RemoteExecutor``). Nothing is imported here, and asyncssh
only once hosts are needed, so ``tea --version`` and loading a workflow never pay
for it.

The branches themselves reach a host as a standalone YAML workflow cut by
``tea.subset`` (through ``executors.base.PortableProgram.workflow_files``), or
cloudpickled when the program has no YAML source.
"""
