"""Secrets: values templates may read but tea never writes down.

Secrets come from ``--secrets JSON|@file`` (``parse_secrets_arg``) and
``--secrets-env PREFIX`` (``secrets_from_env``). Templates see them as
``secrets.*``; they are never merged into state. Whatever would leave the process
(state in events and checkpoints, log lines, error messages) goes through
``Secrets.redact`` first, which replaces every secret value of four characters or
more with ``***``: in text (also JSON-escaped, ``repr``-escaped and URL-encoded),
in bytes, in sets, a number equal to a secret, and objects that turn into JSON
through ``to_dict()`` (redacted as that JSON). Shorter values are left alone on purpose: redacting ``"1"``
everywhere would destroy output without protecting anything.

``Secrets`` is immutable after construction and safe to share between threads.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from tea.errors import InputError, Location, TeaError

__all__ = ["REDACTED", "RedactingFilter", "Secrets", "parse_secrets_arg", "secrets_from_env"]

REDACTED = "***"
_MIN_LEN = 4


def _forms(text: str) -> set[str]:
    """``text`` as it may appear in output: raw, inside JSON, inside a ``repr``, in a URL."""
    return {
        text,
        json.dumps(text)[1:-1],
        json.dumps(text, ensure_ascii=False)[1:-1],
        repr(text)[1:-1],
        quote(text, safe=""),
        quote_plus(text, safe=""),
    }


def _leaf_strings(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _leaf_strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _leaf_strings(item)
    elif isinstance(value, str | int | float) and not isinstance(value, bool):
        yield str(value)


class Secrets(Mapping[str, Any]):
    """A read-only mapping of secret names to values; ``repr`` shows the names only."""

    __slots__ = ("_bytes", "_pattern", "_texts", "_values")

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self._values: dict[str, Any] = dict(values or {})
        self._texts = frozenset(text for text in _leaf_strings(self._values) if len(text) >= _MIN_LEN)
        # Every form a secret takes on its way out: as is, JSON- and repr-escaped,
        # URL-encoded. Longest first, so a secret that contains another is replaced whole.
        forms = {form for text in self._texts for form in _forms(text) if len(form) >= _MIN_LEN}
        ordered = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self._bytes = tuple(form.encode("utf-8") for form in ordered)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Secrets(keys={sorted(self._values)!r})"

    __str__ = __repr__

    def is_secret_value(self, value: Any) -> bool:
        """Whether ``value`` is exactly one of the secret values."""
        return isinstance(value, str) and any(value == text for text in _leaf_strings(self._values))

    def redact_text(self, text: str) -> str:
        """``text`` with every secret value replaced by ``***``."""
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(REDACTED, text)

    def redact(self, obj: Any) -> Any:
        """A deep copy of ``obj`` (dicts, lists, tuples, strings) with secret values redacted."""
        if self._pattern is None:
            return obj
        return self._redact(obj)

    def _redact(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self.redact_text(obj)
        if isinstance(obj, Mapping):
            return {self._redact(key): self._redact(value) for key, value in obj.items()}
        if isinstance(obj, list):
            return [self._redact(item) for item in obj]
        if isinstance(obj, tuple):
            return tuple(self._redact(item) for item in obj)
        if isinstance(obj, set | frozenset):
            return type(obj)(self._redact(item) for item in obj)
        if isinstance(obj, int | float) and not isinstance(obj, bool):
            return REDACTED if str(obj) in self._texts else obj  # a numeric secret, as a number
        if isinstance(obj, bytes | bytearray):
            return self._redact_bytes(bytes(obj))
        to_dict = getattr(obj, "to_dict", None)
        if callable(to_dict):  # redacted as the JSON it turns into (a branch result)
            return self._redact(to_dict())
        return obj

    def _redact_bytes(self, data: bytes) -> bytes:
        for form in self._bytes:
            data = data.replace(form, REDACTED.encode())
        return data


class RedactingFilter(logging.Filter):
    """A logging filter that removes secret values from messages and tracebacks.

    Attach it to handlers (logger-level filters do not see records propagated
    from child loggers). ``secrets`` may be replaced between runs.
    """

    def __init__(self, secrets: Secrets) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.secrets.redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when set, so the traceback is redacted once here.
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self.secrets.redact_text(text)
        return True


def _load_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(
            f"--secrets file '{path}' does not exist", Location(str(path)),
            hint="give @path/to/secrets.json (relative to the current directory)",
        ) from None
    except OSError as exc:
        raise InputError(f"--secrets file '{path}' cannot be read: {exc.strerror}",
                         Location(str(path))) from None
    if path.suffix.lower() in {".yaml", ".yml"}:
        from tea.yamlsrc import load_yaml  # YAML loads only for YAML secrets

        try:
            return load_yaml(text, str(path))  # its alias-expansion limit applies too
        except TeaError as exc:
            # The YAML message may quote the offending text, which can be a secret.
            where = getattr(exc, "location", None) or Location(str(path))
            raise InputError("--secrets file is not valid YAML (or expands too many aliases)", where) from None
    return _parse_json(text, Location(str(path)))


def _parse_json(text: str, where: Location) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # exc.msg names the problem, never the content, so no secret can leak here.
        raise InputError(
            f"--secrets is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})",
            where, hint='give a JSON object like {"api_key": "..."} or @secrets.json',
        ) from None


def parse_secrets_arg(text: str, *, cwd: Path) -> dict[str, Any]:
    """Parse ``--secrets``: a JSON object, or ``@file`` (``.json``, ``.yaml``/``.yml``)."""
    if text.startswith("@"):
        path = (cwd / Path(text[1:]).expanduser()).resolve()
        data = _load_file(path)
        where = Location(str(path))
    else:
        where = Location("--secrets")
        data = _parse_json(text, where)
    if not isinstance(data, Mapping):
        raise InputError(
            f"--secrets must be a mapping of names to values, got {type(data).__name__}",
            where, hint='for example {"openai_api_key": "sk-..."}',
        )
    bad = [key for key in data if not isinstance(key, str)]
    if bad:
        raise InputError("--secrets names must be strings", where)
    return dict(data)


def secrets_from_env(prefix: str, environ: Mapping[str, str]) -> dict[str, str]:
    """``--secrets-env PREFIX``: ``PREFIX_FOO=v`` becomes ``{"foo": "v"}``."""
    if not prefix.strip("_"):
        raise InputError("--secrets-env needs a prefix such as TEA_SECRET",
                         Location("--secrets-env"))
    head = prefix if prefix.endswith("_") else prefix + "_"
    return {
        name[len(head):].lower(): value
        for name, value in environ.items()
        if name.startswith(head) and len(name) > len(head)
    }
