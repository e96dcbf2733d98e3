"""The remote strategy: fan-out branches run on SSH hosts (see ``remote.executor``).

Layers, bottom up: ``config`` and ``hosts`` (settings, host lists, the host pool),
``subset`` (branch → standalone YAML), ``gnu_parallel`` (command builder, joblog
parser), ``ssh`` (asyncssh sessions), ``worker`` (the remote side), ``bundle``
(the frozen binary), ``executor`` (``RemoteExecutor``). Nothing is imported here,
so ``tea --version`` never pays for asyncssh.
"""
