"""What the ``tea`` command tells its operator on stderr, and the events it adds to ``--stream``.

Levels (``setup_logging``)::

    -q       errors only
    default  warnings, and tea's INFO lines: ``uses: log`` at its default level, one line per
             retry, fallback, and failed or skipped branch
    -v       + tea's own DEBUG logs (and tracebacks)
    -vv      + every library's DEBUG logs (httpx, asyncssh, ...)

Lines are plain text led by their level (``warning: ...``, ``error: ...``; INFO lines by
nothing), coloured only when stderr is a terminal and ``NO_COLOR`` is unset.

``EventStream`` is ``--stream``'s output: every event of the run with ``ts`` (UTC, ISO
8601) and ``run_id``; branch events as the branches finish (``Run.watch``), and the
``retry`` and ``fallback`` events that the engine attaches to its log records.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import traceback
from datetime import UTC, datetime
from typing import Any, NoReturn

import click

import tea
from executors.retry import EVENT_KEY
from tea._cli_io import DataOut, PipeClosed, dumps
from tea.errors import TeaError

__all__ = ["LIVE_EVENTS", "EventStream", "branch_line", "fail", "report_branches", "setup_logging", "use_color"]

LIVE_EVENTS = frozenset({"branch_start", "branch_end"})
"""Events the stream takes from ``Run.watch`` as they happen (the walk's copies are dropped)."""

branch_log = logging.getLogger("tea.branch")
_ERROR_NAME = re.compile(r"^[A-Za-z_]\w*(Error|Exception|Timeout|Warning|Exit|Interrupt|Died|Open|Cancelled): ")


def use_color() -> bool:
    """Colour on stderr: a terminal, ``NO_COLOR`` unset or empty, and not ``TERM=dumb``."""
    stream = sys.stderr
    return (
        stream is not None and stream.isatty() and not os.environ.get("NO_COLOR")
        and os.environ.get("TERM") != "dumb"
    )


_STYLES: dict[int, dict[str, Any]] = {logging.DEBUG: {"dim": True}, logging.WARNING: {"fg": "yellow"},
           logging.ERROR: {"fg": "red", "bold": True}}


def level_word(levelno: int, color: bool) -> str:
    """``error: ``, ``warning: ``, ``debug: ``; nothing for INFO."""
    if logging.INFO <= levelno < logging.WARNING:
        return ""
    level = logging.ERROR if levelno >= logging.ERROR else logging.WARNING if levelno >= logging.WARNING \
        else logging.DEBUG
    word = logging.getLevelName(level).lower()
    return (click.style(word, **_STYLES[level]) if color else word) + ": "


class _Formatter(logging.Formatter):
    def __init__(self, color: bool) -> None:
        super().__init__()
        self.color = color

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno < logging.INFO:
            text = f"{record.name}: {text}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text = f"{text}\n{record.exc_text}"
        return level_word(record.levelno, self.color) + text


class _StderrHandler(logging.Handler):
    """Writes to ``sys.stderr`` as it is at each record: a progress display on the terminal
    replaces it with a proxy that prints above the display."""

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stderr
        if stream is None:
            return
        try:
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


def setup_logging(verbose: int, quiet: bool, secrets: tea.Secrets | None = None) -> None:
    """Route every log record to stderr at the level the flags ask for (module docstring)."""
    handler = _StderrHandler(logging.ERROR if quiet else logging.DEBUG if verbose else logging.INFO)
    handler.setFormatter(_Formatter(use_color()))
    if secrets:
        handler.addFilter(tea.RedactingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose >= 2 else logging.WARNING)
    # INFO records are made even with -q: a record may carry a stream event.
    logging.getLogger("tea").setLevel(logging.DEBUG if verbose else logging.INFO)


def branch_line(event: dict[str, Any]) -> str | None:
    """The stderr line for a ``branch_end`` event of a branch that failed or was skipped."""
    if event.get("type") != "branch_end" or event.get("success"):
        return None
    error = event.get("error") or {}
    skipped = error.get("category") == "cancelled"
    attempts = event.get("attempts") or 1
    after = f" after {attempts} attempts" if attempts > 1 and not skipped else ""
    where = _where(event)
    message = (str(error.get("message", "")).strip().splitlines() or [""])[0]
    kind = error.get("type")
    named = _ERROR_NAME.match(message) is not None  # "ValueError: boom" inside a NodeError
    cause = message if skipped or not kind or named else f"{kind}: {message}"
    return f"branch '{event.get('branch')}' {'skipped' if skipped else 'failed'}{after}{where}: {cause}"


def _where(event: dict[str, Any]) -> str:
    for key, text in (("host", "on {}"), ("worker", "on worker {}"), ("thread", "on thread {}"),
                      ("pid", "in process {}")):
        if event.get(key):
            return " " + text.format(event[key])
    return ""


def report_branches(run: tea.Run) -> None:
    """One WARNING line per failed or skipped branch of ``run``, as it ends."""

    def listen(event: dict[str, Any]) -> None:
        line = branch_line(event)
        if line is not None:
            branch_log.warning("%s", line)

    run.watch(listen)


class EventStream:
    """``--stream``'s NDJSON lines. Thread-safe; never raises: a closed pipe sets ``closed``."""

    def __init__(self, out: DataOut, run_id: str, secrets: tea.Secrets) -> None:
        self.out = out
        self.run_id = run_id
        self.secrets = secrets
        self.closed = False
        self._lock = threading.Lock()
        self._handler: logging.Handler | None = None

    def write(self, event: dict[str, Any]) -> None:
        """Write ``event`` (already redacted) with its ``ts`` and ``run_id``."""
        stamped = {"type": event.get("type"), "ts": _now(), "run_id": self.run_id, **event}
        with self._lock:
            if self.closed:
                return
            try:
                self.out.line(dumps(stamped))
            except PipeClosed:
                self.closed = True

    def attach(self, run: tea.Run) -> None:
        """Take ``run``'s branch events as they happen and the events of tea's log records."""
        run.watch(self.write)
        self._handler = _EventHandler(self)
        logging.getLogger("tea").addHandler(self._handler)

    def detach(self) -> None:
        if self._handler is not None:
            logging.getLogger("tea").removeHandler(self._handler)
            self._handler = None


class _EventHandler(logging.Handler):
    """Passes the stream event a record carries (``retry``, ``fallback``) to the stream."""

    def __init__(self, stream: EventStream) -> None:
        super().__init__(logging.DEBUG)
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, EVENT_KEY, None)
        if isinstance(event, dict):
            self.stream.write(self.stream.secrets.redact(event))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fail(exc: BaseException, verbose: int, code: int | None = None, secrets: Any = None) -> NoReturn:
    """Print ``exc`` for a person (a traceback only with ``-v``), redacted, and exit."""
    redact = secrets.redact_text if secrets is not None else (lambda text: text)
    if verbose:
        click.echo(redact("".join(traceback.format_exception(exc))), err=True, nl=False)
        details = getattr(exc, "details", None)
        if details:
            click.echo(redact(f"where it happened:\n{details}"), err=True)
    location = getattr(exc, "location", None)
    located = location is not None and (location.file is not None or location.line is not None)
    prefix = "" if located and hasattr(exc, "path") else level_word(logging.ERROR, use_color())
    click.echo(redact(f"{prefix}{exc}"), err=True)
    if code is None:
        code = exc.exit_code if isinstance(exc, TeaError) else 1
    sys.exit(code)
