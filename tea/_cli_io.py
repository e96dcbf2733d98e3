"""What the ``tea`` command reads and where its data goes: Unix conventions, stdout for data only.

::

    -i JSON | @file.json | @file.yaml | - | @-      read_object (``-``/``@-``: stdin)
    --secrets JSON | @file | @-                      read_secrets
    tea run FILE | -                                 load_workflow (``-``: stdin, paths
                                                     relative to the current directory)
    -o FILE | -                                      DataOut.final / write_file

Inputs and secrets are UTF-8 JSON or YAML objects, nested at most
``MAX_INPUT_NESTING`` levels (YAML aliases counted); anything else is an
``InputError`` naming the flag and the file, never quoting a secret.
stdin can be read once: a second option asking for it is an ``InputError`` naming
the first. ``DataOut`` keeps a copy of fd 1 for the run's data and points fd 1 at
stderr while the run goes on, so that nothing else (a ``print`` in a library, a
program a node starts, a worker process) can write into the data stream.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import tea
from tea.errors import InputError, LoadError
from tea.overrides import Override
from tea.state import MAX_NESTING
from tea.yamlsrc import MAX_ALIAS_EXPANSION, load_yaml

__all__ = ["STDIN_PATH", "DataOut", "PipeClosed", "Stdin", "dumps", "load_workflow", "read_object",
           "read_secrets"]

log = logging.getLogger("tea")

STDIN = "-"
STDIN_PATH = Path("<stdin>")
"""What a workflow read from stdin is called in messages and checkpoints; its relative
paths (subgraphs, imports, files) resolve against the current directory."""


class PipeClosed(Exception):
    """Whoever reads stdout went away (``tea run ... | head -1``)."""


class Stdin:
    """stdin, read at most once, by the first option that asks for it."""

    def __init__(self) -> None:
        self.reader: str | None = None

    def read(self, what: str) -> str:
        """stdin's whole text, for ``what`` (``--input -``); an ``InputError`` when another
        option already read it or when it is a terminal (nothing was piped in)."""
        if self.reader is not None:
            raise InputError(f"{what} reads stdin, but {self.reader} already does",
                             hint="stdin can be read once: give one of them as text or @file")
        self.reader = what
        if sys.stdin is None or sys.stdin.isatty():
            raise InputError(f"{what} reads stdin, but nothing is piped in",
                             hint=f"pipe it in, e.g. echo '{{}}' | tea ... {what}")
        try:
            return sys.stdin.read()
        except UnicodeDecodeError as exc:
            raise _not_text(f"{what} (stdin)", exc) from None


def read_object(text: str, what: str, stdin: Stdin) -> dict[str, Any]:
    """``JSON``, ``@file.json``, ``@file.yaml``, or ``-``/``@-`` (JSON on stdin): an object."""
    source = what
    if text in (STDIN, "@" + STDIN):
        text, source = stdin.read(what), f"{what} (stdin)"
    elif not text.strip() or text.strip() == "@":
        raise InputError(f"{what} is empty", hint="""pass a JSON object, e.g. -i '{"key": "value"}', or @file.json""")
    elif text.startswith("@"):
        path = Path.cwd() / text[1:]
        source = f"{what} file {text[1:]}"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(f"{what} file not found: {text[1:]}",
                             hint="paths after @ are relative to the current directory") from None
        except UnicodeDecodeError as exc:
            raise _not_text(source, exc) from None
        except OSError as exc:
            raise InputError(f"cannot read {source}: {exc}") from None
        if path.suffix in (".yaml", ".yml"):
            return _yaml_object(text, source)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{source} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            hint="""pass a JSON object, e.g. -i '{"key": "value"}', or @file.json""",
        ) from None
    except RecursionError:  # the parser's own limit, far past MAX_INPUT_NESTING
        raise _too_deep(source) from None
    return _must_be_object(_shallow(value, source), source)


MAX_INPUT_NESTING = 100
"""Deepest nesting of lists and objects an input or a secret may have (Lua's limit, below
what a node may return, ``tea.state.MAX_NESTING``): refused on the way in."""


def _shallow(value: Any, source: str) -> Any:
    """``value``, or an ``InputError`` when it nests lists and objects past ``MAX_INPUT_NESTING``."""
    level: list[Any] = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_INPUT_NESTING:
            raise _too_deep(source)
        inner: list[Any] = []
        for item in level:
            children = item.values() if isinstance(item, dict) else item
            inner.extend(c for c in children if isinstance(c, dict | list))
        level = inner
    return value


def _too_deep(source: str) -> InputError:
    return InputError(f"{source} is nested more than {MAX_INPUT_NESTING} levels deep",
                      hint="flatten the data: inputs and secrets may nest lists and objects "
                           f"{MAX_INPUT_NESTING} levels deep at most")


def _not_text(source: str, exc: UnicodeDecodeError) -> InputError:
    return InputError(f"{source} is not UTF-8 text (byte {exc.start} cannot be decoded)",
                      hint="give a JSON or YAML file, in UTF-8")


def _yaml_object(text: str, source: str) -> dict[str, Any]:
    # tea's own reader: YAML aliases are counted, so an alias bomb is refused, not expanded.
    try:
        value = load_yaml(text, source)
    except LoadError as exc:
        line = f" (line {exc.location.line})" if exc.location.line else ""
        raise InputError(f"{source} is not valid YAML{line}: {exc.message}", hint=exc.hint) from None
    except RecursionError:
        raise _too_deep(source) from None
    return _must_be_object(_plain(_shallow(value, source)), source)


def _plain(value: Any) -> Any:
    """Plain dicts and lists (the reader's carry their file locations)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _must_be_object(value: Any, source: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(f"{source} must be a JSON object, not {type(value).__name__}",
                         hint="""wrap it in an object, e.g. {"value": ...}""")
    return value


def read_secrets(secrets: str | None, secrets_env: str | None, stdin: Stdin) -> dict[str, Any]:
    """``--secrets-env`` values, then ``--secrets`` (JSON, @file, or @- for JSON on stdin) over them."""
    values: dict[str, Any] = {}
    if secrets_env is not None:
        values.update(tea.secrets_from_env(secrets_env, os.environ))
    if secrets is None:
        return values
    if secrets in (STDIN, "@" + STDIN):
        text, source = stdin.read("--secrets").strip(), "--secrets (stdin)"
        if not text:
            raise InputError("--secrets @- read nothing from stdin", hint="pipe a JSON object in")
    elif secrets.startswith("@"):
        text, source = secrets, f"--secrets file {secrets[1:]}"
        if Path(secrets).suffix.lower() in (".yaml", ".yml"):
            _count_aliases(Path.cwd() / secrets[1:], source)
    else:
        text, source = secrets, "--secrets"
    # The messages name the flag and the file, never the text: it holds secrets.
    try:
        parsed = tea.parse_secrets_arg(text, cwd=Path.cwd())
    except UnicodeDecodeError as exc:
        raise _not_text(source, exc) from None
    except RecursionError:
        raise _too_deep(source) from None
    values.update(_shallow(parsed, source))
    return values


def _count_aliases(path: Path, source: str) -> None:
    """Read a YAML secrets file with tea's reader first, which refuses an alias bomb
    (``tea.secrets`` expands aliases). Its messages can quote the file: none is repeated."""
    try:
        load_yaml(path.read_text(encoding="utf-8"), source)
    except (OSError, UnicodeDecodeError):
        return  # said by the secrets reader, or by the caller
    except LoadError as exc:
        line = f" (line {exc.location.line})" if exc.location.line else ""
        raise InputError(f"{source} is not valid YAML{line}",
                         hint=f"check its syntax; aliases may expand to {MAX_ALIAS_EXPANSION:,} values "
                              "at most") from None
    except RecursionError:
        raise _too_deep(source) from None


def load_workflow(file: str, stdin: Stdin, overrides: Sequence[Override] = ()) -> tea.Workflow:
    """The workflow at ``file``, or read from stdin for ``-``, with ``overrides`` applied."""
    if file == STDIN:
        return tea.loads(stdin.read("the workflow (-)"), path=STDIN_PATH, overrides=overrides)
    return tea.load(file, overrides=overrides)


PRETTY_LIMIT = 1_000_000
"""Output longer than this (in characters, compact) is printed on one line: Python's
indenting encoder is many times slower than its compact one on a wide fan-out's results."""


def dumps(value: Any, indent: int | None = None) -> str:
    """Strict JSON: NaN and infinities (which JSON has no words for) become null."""
    try:
        compact = json.dumps(value, default=_json_default, ensure_ascii=False, allow_nan=False)
        if indent is None or len(compact) > PRETTY_LIMIT:
            return compact
        return json.dumps(value, default=_json_default, ensure_ascii=False, indent=indent, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        log.warning("the output holds NaN or infinite numbers (written as null), keys that are not "
                    "strings or values that contain themselves or nest past %d levels (written as "
                    "text)", MAX_NESTING)
        return json.dumps(_finite(value, set()), default=_json_default, ensure_ascii=False, indent=indent)


def _json_default(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    if isinstance(value, set | tuple):
        return list(value)
    return repr(value)


def _finite(value: Any, path: set[int]) -> Any:
    """``value`` as JSON can write it; ``path`` holds the containers above it."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if not isinstance(value, dict | list | tuple):
        return value
    if id(value) in path:
        return "<contains itself>"
    if len(path) >= MAX_NESTING:
        return "<nested too deeply>"
    path.add(id(value))
    try:
        if isinstance(value, dict):
            return {k if isinstance(k, str) else str(k): _finite(v, path) for k, v in value.items()}
        return [_finite(v, path) for v in value]
    finally:
        path.discard(id(value))


class DataOut:
    """stdout, kept for data: lines written here are the only ones that reach fd 1 while
    the context is open (fd 1 points at stderr meanwhile). Thread-safe; a closed pipe
    raises ``PipeClosed``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._saved: int | None = None
        self._out: IO[str] = sys.stdout

    def __enter__(self) -> Self:
        sys.stdout.flush()
        self._saved = os.dup(1)
        os.dup2(2, 1)
        self._out = os.fdopen(os.dup(self._saved), "w", encoding="utf-8", closefd=True)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        saved, self._saved = self._saved, None
        if saved is None:
            return
        sys.stdout.flush()
        try:
            self._out.close()
        except BrokenPipeError:
            pass
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            self._out = sys.stdout

    def line(self, text: str) -> None:
        """Write ``text`` and a newline, at once."""
        with self._lock:
            try:
                self._out.write(text + "\n")
                self._out.flush()
            except BrokenPipeError:
                raise PipeClosed from None
