"""The shell a host runs for tea, written once: pure functions that return ``sh`` text.

Every word that comes from settings goes through ``shlex.quote``; nothing else of
the user's reaches a shell. A host needs ``/bin/sh``, ``mktemp``, ``uname``, ``find``
and ``sha256sum`` (or ``shasum``), nothing more.

Run directories (``tea-run.*`` under ``workdir``) hold a ``.owners`` file, one line
``HOSTNAME PID`` per process that keeps the run alive on that host (the ssh
transport's connection, the GNU Parallel transport's server), and ``.keep`` when
the run keeps them (``cleanup: false``). ``sweep`` removes the directories of dead
runs: older than ``STALE_AFTER_MINUTES``, no ``.keep``, every owner on this host
gone. Owners on other hosts (a ``workdir`` on a shared file system) are never
judged, so such a directory stays.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from remote.config import STALE_AFTER_MINUTES

__all__ = ["from_home", "prepare_script", "probe_script", "sweep", "worker_command"]

_ME = 'me=$(hostname 2>/dev/null || uname -n)'
_SHA = """$( (sha256sum "$f" 2>/dev/null || shasum -a 256 "$f") | cut -d" " -f1)"""


def q(word: str) -> str:
    return shlex.quote(word)


def from_home(path: str) -> str:
    """``path`` for a shell started in the remote home: ``~/x`` is ``x`` (quoting would
    keep the tilde from expanding)."""
    if path == "~":
        return "."
    return (path[2:] or ".") if path.startswith("~/") else path


def sweep(workdir: str) -> str:
    """Remove the ``tea-run.*`` directories of dead runs under ``workdir``."""
    return (
        f"{_ME}; "
        f"for d in {q(workdir.rstrip('/') or '/')}/tea-run.*; do "
        '[ -d "$d" ] && [ ! -e "$d/.keep" ] || continue; '
        f'[ -n "$(find "$d" -prune -mmin +{STALE_AFTER_MINUTES} 2>/dev/null)" ] || continue; '
        "live=; "
        'if [ -f "$d/.owners" ]; then while read -r h p; do '
        'if [ "$h" != "$me" ] || kill -0 "$p" 2>/dev/null || ps -p "$p" >/dev/null 2>&1; then live=1; fi; '
        'done < "$d/.owners"; fi; '
        '[ -n "$live" ] || rm -rf -- "$d"; '
        "done"
    )


def prepare_script(
    workdir: str, cache: str | None, binaries: Sequence[str], *, keep: bool, old: Sequence[str] = ()
) -> str:
    """One round trip that readies a host for a run: the binary cache (when ``cache``),
    the dead runs swept, this run's earlier directories on the host removed (``old``:
    it was lost and came back), a private ``mktemp -d`` directory owned by this
    connection; prints ``wd=``, ``cache=``, ``arch=`` and ``sha:NAME=`` for each of
    ``binaries`` found in the cache. Exit 3: a directory cannot be made; 4: no run
    directory."""
    workdir = from_home(workdir)
    dirs = " ".join(q(d) for d in (workdir, *((from_home(cache),) if cache else ())))
    parts = [f"umask 077; mkdir -p -- {dirs} || exit 3"]
    if cache:
        parts.append(f"cache=$(cd -- {q(from_home(cache))} && pwd -P) || exit 3")
    parts.append(sweep(workdir))
    if old:
        parts.append(f"rm -rf -- {' '.join(q(d) for d in old)}")
    parts += [
        f"wd=$(mktemp -d {q(workdir.rstrip('/') + '/tea-run.XXXXXXXXXX')}) && "
        'wd=$(cd -- "$wd" && pwd -P) || exit 4',
        # The connection's sshd keeps the run alive here: its pid is what the sweep checks.
        'printf "%s %s\\n" "$me" "$PPID" > "$wd/.owners"',
        'printf "wd=%s\\narch=%s\\n" "$wd" "$(uname -m)"',
    ]
    if keep:
        parts.append(': > "$wd/.keep"')
    if cache:
        parts.append('printf "cache=%s\\n" "$cache"')
        parts += _found(binaries)
    return "; ".join(parts)


def probe_script(workdir: str, cache: str | None, binaries: Sequence[str], command: Sequence[str]) -> str:
    """What ``tea hosts check`` asks a host, leaving nothing but ``workdir`` itself: ``arch=``,
    ``writable=`` (a run directory can be made, and is removed again), ``sha:NAME=``
    for cached binaries, and with a ``command``, ``command=`` its exit status and
    ``version=`` what its ``--version`` printed."""
    workdir = from_home(workdir)
    parts = [
        "umask 077",
        'printf "arch=%s\\n" "$(uname -m)"',
        f"w=$(mkdir -p -- {q(workdir)} && mktemp -d {q(workdir.rstrip('/') + '/tea-run.XXXXXXXXXX')}) "
        '&& rmdir -- "$w" && echo writable=1 || echo writable=0',
    ]
    if cache:
        parts.append(f"cache={q(from_home(cache))}")
        parts += _found(binaries)
    if command:
        words = " ".join(q(w) for w in command)
        parts.append(f'v=$({words} --version 2>&1); echo "command=$?"; printf "version=%s\\n" "$v" | head -n 1')
    return "; ".join(parts)


def _found(binaries: Sequence[str]) -> list[str]:
    return [
        f'f="$cache"/{q(name)}; if [ -f "$f" ]; then printf "sha:%s=%s\\n" {q(name)} "{_SHA}"; fi'
        for name in binaries
    ]


def worker_command(workdir: str, program: Sequence[str], slots: int) -> str:
    """Start the resident worker in the run's directory: ``program`` is the shipped
    binary's path, or the ``command`` words of an installed tea."""
    words = " ".join(q(w) for w in program)
    return f"cd {q(workdir)} && exec {words} worker --slots {int(slots)}"
