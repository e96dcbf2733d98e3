"""The remote strategy: fan-out branches run on SSH hosts (see ``remote.executor``).

Layers, bottom up: ``errors`` (the backend's error tree), ``config`` (settings and
host lists, parsed once at load), ``statejson`` and ``payload`` (what travels to a
host, as JSON, keyed by content), ``local_files`` (the binary and key files),
``hosts`` (the host pool and its breakers), ``gnu_parallel`` and ``gnu_transport``
(the GNU Parallel transport), ``worker`` (the remote side), ``channel`` (one
worker seen from the driver), ``ssh`` (asyncssh sessions), ``cluster`` (the hosts
of a run), ``bundle`` (the frozen binary), ``executor`` (``RemoteExecutor``).
Nothing is imported here, and asyncssh only once a fan-out runs, so ``tea
--version`` and loading a workflow never pay for it.

The branches themselves reach a host as a standalone YAML workflow cut by
``tea.subset`` (through ``executors.base.PortableProgram.workflow_files``), or
cloudpickled when the program has no YAML source.
"""
