"""Lua 5.4 in workflows: sandboxed, time- and memory-limited runtimes (through lupa).

Always ``lupa.lua54``, never lupa's default module: the default differs between a
virtualenv and a frozen binary, and a frozen binary cannot find it at all.

One ``LuaRuntime`` serves one run scope: the main path of a run, or one parallel
branch. It is not thread-safe and must never be shared across threads; two
runtimes in two threads run truly in parallel (lupa releases the GIL while Lua
runs). Globals a node defines persist for later nodes of the same runtime, and
are invisible to every other runtime.

Node code is the body of a function receiving ``state`` (globals ``variables``
and any ``extra`` names, such as ``parallel_results`` at a fan-in); its return
value is the update. A condition is one Lua expression over the same names.
``print`` writes to stderr, each line led by the node's name (``[fetch] ...``), as
inline Python's does: stdout carries the run's data.
See ``_lua_convert`` for the exact conversions and ``_lua_sandbox`` for the
sandbox, the timeout hook and why coroutines and pcall cannot escape it.

Errors: ``check_syntax`` raises ``LuaSyntaxError`` (the loader turns it into a
``WorkflowSyntaxError`` with the YAML file and line); running raises
``LuaNodeError`` (a ``NodeError`` naming the node, the Lua line and message),
or ``LuaLimitError`` for the timeout and the memory limit, after which the same
runtime is still usable.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import lupa.lua54 as lupa

from tea._lua_convert import Budget, ConversionError, LimitExceeded, from_lua, plain
from tea._lua_sandbox import (
    CHECK_INTERVAL,
    CHUNK_NAME,
    HOOK_COUNT,
    MEMORY_ERROR,
    bootstrap_bytecode,
)
from tea.errors import NodeError
from tea.pycode import stderr_print

__all__ = [
    "LuaLimitError",
    "LuaNodeError",
    "LuaRuntime",
    "LuaSettings",
    "LuaSyntaxError",
    "check_syntax",
]

_POSITION = re.compile(r"^lua:(\d+): ")
_SETTINGS_KEYS = ("sandbox", "timeout_seconds", "max_memory_mb")
_HEADROOM = 64 * 1024
_BYTES_PER_VALUE = 32
"""Bytes left free below the memory limit for the call itself (arguments, stack)."""


class LuaSyntaxError(Exception):
    """Lua code that does not compile; ``lua_line`` is 1-based within the code."""

    def __init__(self, message: str, lua_line: int | None = None) -> None:
        super().__init__(f"line {lua_line}: {message}" if lua_line else message)
        self.message = message
        self.lua_line = lua_line


class LuaNodeError(NodeError):
    """A Lua error while running a node or a condition."""

    def __init__(
        self, message: str, *, node: str, lua_line: int | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, node=node, hint=hint)
        self.lua_line = lua_line


class LuaLimitError(LuaNodeError):
    """A node hit ``limit`` (``"timeout"`` or ``"memory"``); the runtime stays usable."""

    def __init__(self, message: str, *, node: str, limit: str, hint: str) -> None:
        super().__init__(message, node=node, hint=hint)
        self.limit = limit


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a positive number, not {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class LuaSettings:
    """``settings.lua``: ``max_memory_mb`` ``None`` means no memory limit."""

    sandbox: bool = True
    timeout_seconds: float = 30.0
    max_memory_mb: float | None = 256.0

    def __post_init__(self) -> None:
        if not isinstance(self.sandbox, bool):
            raise ValueError(f"settings.lua.sandbox must be true or false, not {self.sandbox!r}")
        _positive("settings.lua.timeout_seconds", self.timeout_seconds)
        if self.max_memory_mb is not None:
            _positive("settings.lua.max_memory_mb", self.max_memory_mb)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None) -> LuaSettings:
        """Settings from the YAML mapping; unknown keys or bad values raise ``ValueError``."""
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise ValueError(f"settings.lua must be a mapping, not {type(raw).__name__}")
        unknown = sorted(str(key) for key in raw if key not in _SETTINGS_KEYS)
        if unknown:
            raise ValueError(
                f"unknown key(s) in settings.lua: {', '.join(unknown)}"
                f" (known: {', '.join(_SETTINGS_KEYS)})"
            )
        return cls(**{key: raw[key] for key in _SETTINGS_KEYS if key in raw})


def _source(code: str, expression: bool) -> str:
    # Everything added stays on line 1, so Lua's line numbers are the code's own.
    if expression:
        return f"local state = ...; return ({code}\n)"
    return f"local state = ...; {code}"


def _split(message: str, code: str) -> tuple[str, int | None]:
    """The message without Lua's ``lua:<line>:`` prefix, and that line (within ``code``)."""
    match = _POSITION.match(message)
    if match is None:
        return message, None
    line = min(int(match.group(1)), code.count("\n") + 1)
    return message[match.end() :], line


def _deny_attribute(obj: object, name: object, is_setting: bool) -> str:
    raise AttributeError("Python objects are not accessible from Lua")


_checker_lock = threading.Lock()
_checker: lupa.LuaRuntime | None = None


def check_syntax(code: str, *, expression: bool = False) -> None:
    """Compile ``code`` (a node body, or an expression) without running it. Thread-safe."""
    global _checker
    with _checker_lock:
        if _checker is None:
            _checker = lupa.LuaRuntime(register_eval=False, register_builtins=False)
        try:
            _checker.compile(_source(code, expression), name=CHUNK_NAME, mode="t")
        except lupa.LuaError as exc:
            message, line = _split(str(exc), code)
            raise LuaSyntaxError(message, line) from exc


class LuaRuntime:
    """One Lua 5.4 state for one run scope; see the module docstring. Not thread-safe."""

    def __init__(self, settings: LuaSettings | None = None) -> None:
        self.settings = settings or LuaSettings()
        mb = self.settings.max_memory_mb
        self._limit = 0 if mb is None else int(mb * 1024 * 1024)
        # The limit is only armed while Lua code runs (see _call); 0 keeps lupa's
        # counting allocator, which set_max_memory and memory_used need.
        self._lua: lupa.LuaRuntime | None = lupa.LuaRuntime(
            register_eval=False,
            register_builtins=False,
            unpack_returned_tuples=False,
            attribute_filter=_deny_attribute,
            max_memory=0,
        )
        self._compile, self._run, self._take, self._reset = self._lua.execute(
            bootstrap_bytecode(),
            time.monotonic,
            self.settings.sandbox,
            HOOK_COUNT,
            CHECK_INTERVAL,
            CHUNK_NAME,
            mode="b",
        )
        self._functions: dict[tuple[bool, str], Any] = {}
        self._printers: dict[str, Callable[..., None]] = {}

    def run_node(
        self,
        code: str,
        state: Mapping[str, Any],
        variables: Mapping[str, Any],
        *,
        node: str,
        timeout: float | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Run a node body: a table is the update, nil ``None``, anything else ``{"result": v}``."""
        value, deadline, seconds = self._call(code, False, state, variables, node, timeout, extra)
        if value is None:
            return None
        try:
            converted = from_lua(value, "result", budget=Budget(deadline, self._value_budget()))
        except LimitExceeded as exc:
            if exc.limit == "timeout":
                raise self._timeout_error(node, seconds) from None
            raise self._memory_error(node, "its result needs") from None
        except ConversionError as exc:
            message = f"Lua node returned a value tea cannot use: {exc}"
            raise LuaNodeError(message, node=node) from exc
        except UnicodeDecodeError as exc:
            message = f"Lua node returned text that is not UTF-8: {exc}"
            raise LuaNodeError(message, node=node) from exc
        return converted if isinstance(converted, dict) else {"result": converted}

    def eval_condition(
        self,
        expr: str,
        state: Mapping[str, Any],
        variables: Mapping[str, Any],
        *,
        node: str,
        timeout: float | None = None,
    ) -> bool:
        """Evaluate a Lua expression; Lua truthiness (only ``nil`` and ``false`` are false)."""
        value = self._call(expr, True, state, variables, node, timeout, None)[0]
        return value is not None and value is not False

    def _value_budget(self) -> float:
        """How many Python values a result may convert to under the memory limit (each
        costs tens of bytes in Python; ``_BYTES_PER_VALUE`` is a floor)."""
        return self._limit / _BYTES_PER_VALUE if self._limit else float("inf")

    def memory_used(self) -> int:
        """Bytes the Lua state holds now, its own base included."""
        return int(self._runtime().get_memory_used(total=True) or 0)

    def close(self) -> None:
        """Drop the Lua state. Idempotent."""
        self._functions.clear()
        self._printers.clear()
        self._lua = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _runtime(self) -> lupa.LuaRuntime:
        if self._lua is None:
            raise RuntimeError("this LuaRuntime is closed")
        return self._lua

    def _function(self, code: str, expression: bool, node: str) -> Any:
        key = (expression, code)
        function = self._functions.get(key)
        if function is None:
            try:
                function, message = self._compile(_source(code, expression))
            except lupa.LuaMemoryError as exc:
                raise self._memory_error(node) from exc
            if function is None:
                text, line = _split(message, code)
                raise LuaNodeError(
                    f"Lua syntax error at line {line}: {text}", node=node, lua_line=line
                )
            self._functions[key] = function
        return function

    def _call(
        self,
        code: str,
        expression: bool,
        state: Mapping[str, Any],
        variables: Mapping[str, Any],
        node: str,
        timeout: float | None,
        extra: Mapping[str, Any] | None,
    ) -> tuple[Any, float, float]:
        lua = self._runtime()
        function = self._function(code, expression, node)
        seconds = self.settings.timeout_seconds
        if timeout is not None:
            seconds = _positive("a Lua timeout", timeout)
        try:
            args = (
                lua.table_from(plain(state, "state"), recursive=True),
                lua.table_from(plain(variables, "variables"), recursive=True),
                lua.table_from(plain(extra, ""), recursive=True) if extra else None,
            )
        except ConversionError as exc:
            raise LuaNodeError(str(exc), node=node) from exc
        # lupa's own API calls are unprotected: an allocation failing there is a Lua
        # panic (an abort), so the limit is armed only around the protected call,
        # and only with room to spare.
        if self._limit and lua.get_memory_used() + _HEADROOM > self._limit:
            lua.gccollect()
            if lua.get_memory_used() + _HEADROOM > self._limit:
                del args
                raise self._memory_error(node, "the state and variables passed to Lua need")
        lua.set_max_memory(self._limit)
        deadline = time.monotonic() + seconds
        try:
            ok, value, stashed, line, timed_out = self._run(function, deadline, self._printer(node), *args)
        except lupa.LuaError as exc:
            # The trusted runner itself failed: a limit hit between the code
            # returning and the runner resetting.
            lua.set_max_memory(0)
            if self._reset():
                raise self._timeout_error(node, seconds) from exc
            if isinstance(exc, lupa.LuaMemoryError):
                raise self._memory_error(node) from exc
            raise LuaNodeError(f"Lua error: {exc}", node=node) from exc
        except UnicodeDecodeError as exc:
            raise LuaNodeError(f"Lua produced text that is not UTF-8: {exc}", node=node) from exc
        finally:
            lua.set_max_memory(0)
        if ok:
            return (self._take() if stashed else value), deadline, seconds
        if timed_out:
            raise self._timeout_error(node, seconds)
        if value == MEMORY_ERROR:
            raise self._memory_error(node)
        text, position = _split(str(value), code)
        line = position or line or None
        where = f" at line {line}" if line else ""
        raise LuaNodeError(f"Lua error{where}: {text}", node=node, lua_line=line)

    def _printer(self, node: str) -> Callable[..., None]:
        """What Lua's ``print`` calls in ``node``: Python's node ``print`` (prefix, stderr)."""
        printer = self._printers.get(node)
        if printer is None:
            printer = self._printers[node] = stderr_print(f"node '{node}'")
        return printer

    def _timeout_error(self, node: str, seconds: float) -> LuaLimitError:
        return LuaLimitError(
            f"Lua timeout: the code ran longer than {seconds:g} s",
            node=node,
            limit="timeout",
            hint="raise timeout_seconds on the node or settings.lua.timeout_seconds",
        )

    def _memory_error(self, node: str, what: str = "the code needed") -> LuaLimitError:
        # The garbage of the failed node must not count against the next one.
        self._runtime().gccollect()
        mb = self.settings.max_memory_mb
        limit = "the available memory" if mb is None else f"{mb:g} MB"
        return LuaLimitError(
            f"Lua memory limit: {what} more than {limit}",
            node=node,
            limit="memory",
            hint="raise settings.lua.max_memory_mb",
        )
