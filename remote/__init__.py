"""The remote strategy: fan-out branches run on SSH hosts (see ``remote.executor``).

Layers, bottom up: ``config`` and ``hosts`` (settings, host lists, the host pool),
``statejson`` (state that survives JSON unchanged), ``subset`` (branch → standalone
YAML), ``gnu_parallel`` and ``gnu_transport`` (the GNU Parallel transport),
``worker`` (the remote side), ``channel`` (one worker seen from the driver),
``ssh`` (asyncssh sessions), ``cluster`` (the hosts of a run), ``bundle`` (the
frozen binary), ``executor`` (``RemoteExecutor``). Nothing is imported here, so
``tea --version`` never pays for asyncssh.
"""
