"""The GNU Parallel transport's pure half: ssh words, sshlogins, host scripts, the joblog.

Data flow of a run (``remote.gnu_transport`` and ``remote.gnu_batch`` do the running)::

    tea, over ssh to each host (the same ssh command as the sshlogins, through one
    master connection per host):
      setup   once per run: private run dir (jobs/, tasks/), dead runs swept, uname -m
      ship    each batch, a tar stream of what the host lacks: the binary, tea-serve.sh,
              tea-client.sh, programs/KEY/..., states/KEY.json, env.json, tasks/ID.json
              (tasks too large for a command line); then ``sh tea-serve.sh`` starts the
              host's server (``remote.server``) unless it runs
      cancel  jobs the driver gave up on (timeout, fail_fast): their branches killed
              (GNU Parallel's kill does not reach a host through a shared connection)
      stop    at the end: every server killed, then the run dir removed

    GNU Parallel, one process per batch (and one per extra attempt):
      parallel --sshloginfile logins --workdir RUN --colsep TAB --tagstring {#}
               --filter '! -e "NAME.skip/{#}"' --joblog NAME.joblog [--timeout T]
               sh tea-client.sh {1} {2}  :::: NAME.inputs      (ID<TAB>task JSON, or @)
      stdout "SEQ<TAB>result"; the joblog row of SEQ says the job ended (Exitval -2:
      skipped by the filter, its breaker having opened)

Every connection goes through one ssh master per host (``ControlMaster``/
``ControlPath``: ssh's own multiplexing, not GNU Parallel's ``-M``, which loses
basefiles in 20221122). ``--cleanup`` is never used: after removing a job's files it
runs ``rmdir`` on every prefix of their path, which deletes the user's ``workdir``.
Every path that reaches a remote shell is quoted with ``shlex.quote``.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from remote.config import HostSpec, RemoteSettings
from remote.scripts import from_home, q, sweep

__all__ = [
    "CLIENT",
    "CLIENT_SCRIPT",
    "INLINE_LIMIT",
    "SERVE",
    "SERVE_SCRIPT",
    "SKIPPED",
    "JobRow",
    "cancel_script",
    "host_words",
    "jobs_command",
    "login_line",
    "parse_joblog",
    "remove_script",
    "setup_script",
    "ship_script",
    "ssh_command",
    "stop_script",
]

CLIENT = "tea-client.sh"
SERVE = "tea-serve.sh"
INLINE_LIMIT = 32_768
"""Task JSON longer than this travels as a file sent with the batch (tasks/ID.json),
not on GNU Parallel's command line."""
SKIPPED = -2
"""The joblog's exit value of a job ``--filter`` skipped."""
_HOST_DIR = 'd=h-$(printf %s "$PARALLEL_SSHLOGIN" | cksum | cut -d " " -f 1)'

SERVE_SCRIPT = f"""# tea: start this host's server for the run (once), wait until it listens.
# $1: its slots; the rest: the command that runs tea.
slots=$1; shift
{_HOST_DIR}
umask 077; mkdir -p "$d" || exit 3
if pid=$(cat "$d/pid" 2>/dev/null) && kill -0 "$pid" 2>/dev/null; then exit 0; fi
rm -f "$d/ready" "$d/pid"
nohup "$@" worker --serve "$d" --slots "$slots" </dev/null >>"$d/log" 2>&1 &
i=0
while [ ! -e "$d/ready" ]; do
  kill -0 $! 2>/dev/null || {{ tail -n 20 "$d/log" >&2; exit 4; }}
  i=$((i + 1)); [ "$i" -lt 1200 ] || {{ echo "tea: the server did not start" >&2; exit 4; }}
  sleep 0.05 2>/dev/null || sleep 1
done
"""

CLIENT_SCRIPT = f"""# tea: one GNU Parallel job. $1: its id; $2: its task (JSON), or @ for tasks/$1.json.
if [ "$2" = @ ]; then t=tasks/$1.json; keep=1; else t=jobs/$1.json; keep=; printf '%s\\n' "$2" > "$t" || exit 75; fi
{_HOST_DIR}
pid=$(cat "$d/pid" 2>/dev/null) && kill -0 "$pid" 2>/dev/null || {{
  echo "tea: no tea server runs on this host ($PWD/$d)" >&2; exit 75; }}
done=; s=
trap 'done=1; [ -n "$s" ] && kill "$s" 2>/dev/null' USR1
printf '%s %s\\n' "$$" "$PWD/$t" > "$d/requests"
r=$t.$$.res
while [ -z "$done" ] && [ ! -e "$r" ]; do
  kill -0 "$pid" 2>/dev/null || break
  sleep 1 & s=$!
  [ -n "$done" ] || wait "$s"
  s=
done
[ -n "$keep" ] || rm -f "$t"
[ -e "$r" ] || {{ echo "tea: the tea server on this host stopped before answering" >&2; exit 75; }}
cat "$r"; rm -f "$r"
"""


def ssh_command(settings: RemoteSettings, control_dir: Path) -> list[str]:
    """The ssh words every connection starts with: strict host keys, batch mode, the key
    and known hosts only when set (else OpenSSH's defaults and ~/.ssh/config), and
    one master connection per host under ``control_dir``."""
    words = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
    if settings.known_hosts:
        words += ["-o", f"UserKnownHostsFile={Path(settings.known_hosts).expanduser()}"]
    if settings.identity_file:
        words += ["-o", "IdentitiesOnly=yes", "-i", str(Path(settings.identity_file).expanduser())]
    words += [
        "-o", f"ConnectTimeout={max(1, round(settings.connect_timeout))}",
        "-o", f"ServerAliveInterval={max(1, round(settings.keepalive_seconds))}",
        "-o", "ServerAliveCountMax=3",
        "-o", "ControlMaster=auto", "-o", f"ControlPath={control_dir}/%C", "-o", "ControlPersist=60",
    ]
    return words


def host_words(host: HostSpec) -> list[str]:
    """What follows the ssh options for ``host``: ``[-p port] [user@]host``."""
    target = f"{host.user}@{host.hostname}" if host.user else host.hostname
    return [*(["-p", str(host.port)] if host.port else []), target]


def login_line(host: HostSpec, ssh: Sequence[str], slots: int | None = None) -> str:
    """One host's sshlogin, ``slots/ssh <options> [-p port] [user@]host``.

    GNU Parallel runs the ssh part through a shell and splits sshlogins on commas,
    so words are shell-quoted and commas doubled."""
    login = " ".join(shlex.quote(word) for word in [*ssh, *host_words(host)])
    return f"{slots or host.slots}/{login}".replace(",", ",,")


def jobs_command(loginfile: Path, workdir: str, name: str, timeout: float | None) -> list[str]:
    """One job per line of ``NAME.inputs`` (in the stage dir, parallel's cwd)."""
    argv = [
        "parallel", "--will-cite", "--halt", "never", "--sshloginfile", str(loginfile),
        "--workdir", workdir, "--colsep", "\t", "--tagstring", "{#}",
        "--filter", f'! -e "{name}.skip/{{#}}"', "--joblog", f"{name}.joblog",
    ]
    if timeout is not None:
        argv += ["--timeout", f"{timeout:g}"]
    return [*argv, f"sh {CLIENT} {{1}} {{2}}", "::::", f"{name}.inputs"]


def setup_script(settings: RemoteSettings, run_dir: str) -> str:
    """Before anything lands on a host: the private run dir, the dead runs swept, the
    host's architecture printed."""
    workdir = from_home(settings.workdir)
    parts = [
        f"umask 077; mkdir -p -- {q(workdir)} {q(run_dir)} && chmod 700 -- {q(run_dir)} || exit 3",
        f"mkdir -p -- {q(run_dir)}/jobs {q(run_dir)}/tasks || exit 3",
        sweep(workdir),
        f'printf "%s %s\\n" "$me" "$PPID" >> {q(run_dir)}/.owners',
        "uname -m",
    ]
    if not settings.cleanup:
        parts.insert(-1, f": > {q(run_dir)}/.keep")
    return "; ".join(parts)


def ship_script(run_dir: str, login: str, slots: int, tea: Sequence[str]) -> str:
    """Unpack the tar stream on stdin in the run dir, then start (or find running) the
    host's server; ``tea`` runs tea there, ``login`` is the host's sshlogin.

    Each file is unpacked aside and renamed into place: hosts that share the run dir (a
    shared file system) never see half a file, nor write over a binary that runs."""
    words = " ".join(q(w) for w in tea)
    return (
        f"cd -- {q(run_dir)} && umask 077 && t=$(mktemp -d .ship.XXXXXXXX) && tar xf - -C \"$t\" && "
        '(cd "$t" && find . -type f) | while IFS= read -r f; do '
        'mkdir -p -- "$(dirname -- "$f")" && mv -f -- "$t/$f" "$f" || exit 1; done && rm -rf -- "$t" && '
        f"PARALLEL_SSHLOGIN={q(login)} sh {SERVE} {int(slots)} {words}"
    )


def stop_script(run_dir: str, login: str) -> str:
    """Stop this host's server: SIGTERM (it kills every branch's process group and leaves),
    then, after at most 3 s, SIGKILL to what is left of its group."""
    return (
        f"cd -- {q(run_dir)} 2>/dev/null || exit 0; PARALLEL_SSHLOGIN={q(login)}; {_HOST_DIR}; "
        'p=$(cat "$d/pid" 2>/dev/null) || exit 0; kill -TERM "-$p" 2>/dev/null; i=0; '
        # A server that ended may stay a zombie until its new parent reaps it: that is gone too.
        'while kill -0 "$p" 2>/dev/null && [ "$(ps -o stat= -p "$p" 2>/dev/null | cut -c 1)" != Z ] '
        '&& [ "$i" -lt 60 ]; do i=$((i + 1)); sleep 0.05 2>/dev/null || sleep 1; done; '
        'kill -KILL "-$p" 2>/dev/null; exit 0'  # no "--" anywhere: dash's kill takes none
    )


def cancel_script(run_dir: str, login: str, idents: Sequence[str]) -> str:
    """Tell this host's server to kill the branches of jobs ``idents`` (if it runs them)."""
    lines = "".join(f"cancel {ident}\\n" for ident in idents)
    return (f"cd -- {q(run_dir)} 2>/dev/null || exit 0; PARALLEL_SSHLOGIN={q(login)}; {_HOST_DIR}; "
            'p=$(cat "$d/pid" 2>/dev/null) && kill -0 "$p" 2>/dev/null || exit 0; '
            f"printf {q(lines)} > \"$d/requests\"")


def remove_script(run_dir: str) -> str:
    """Remove the run's directory, and nothing above it (after every host's ``stop``)."""
    return f"rm -rf -- {q(run_dir)}"


@dataclass(frozen=True, slots=True)
class JobRow:
    """One joblog row: which job (``seq``), where, and how it ended."""

    seq: int
    login: str
    runtime: float
    exit_status: int
    signal: int


def parse_joblog(text: str) -> list[JobRow]:
    """The complete rows of ``text`` (columns: Seq Host Starttime JobRuntime Send Receive
    Exitval Signal Command); the header and partial or foreign lines are skipped."""
    rows = []
    for line in text.splitlines():
        parts = line.split("\t", 8)
        if len(parts) < 9 or not parts[0].isdigit():
            continue
        try:
            rows.append(JobRow(int(parts[0]), parts[1], float(parts[3]), int(parts[6]), int(parts[7])))
        except ValueError:
            continue
    return rows
