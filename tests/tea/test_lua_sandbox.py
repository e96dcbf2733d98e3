"""tea.lua sandbox and limits: every escape attempt ends in a clear error, never a crash, hang or escape."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tea.lua import LuaLimitError, LuaNodeError, LuaRuntime, LuaSettings

SHORT = 0.3
"""Timeout (seconds) for limit tests: long enough for the test's own work, short for the suite."""


@pytest.fixture
def lua() -> Iterator[LuaRuntime]:
    runtime = LuaRuntime(LuaSettings(timeout_seconds=SHORT, max_memory_mb=32))
    yield runtime
    runtime.close()


def run(lua: LuaRuntime, code: str, state: dict[str, Any] | None = None) -> Any:
    return lua.run_node(code, state or {}, {}, node="n")


def result(lua: LuaRuntime, code: str) -> Any:
    update = run(lua, code)
    assert update is not None
    return update["result"]


@pytest.mark.parametrize(
    "name",
    ["io", "require", "package", "dofile", "loadfile", "debug", "python", "warn", "string.dump"],
)
def test_dangerous_globals_are_gone(lua: LuaRuntime, name: str) -> None:
    """io, require, package, dofile, loadfile, debug, python, warn and string.dump are nil."""
    assert result(lua, f"return {name} == nil") is True


def test_os_keeps_only_time_clock_and_date(lua: LuaRuntime) -> None:
    """os offers time, clock and date, nothing else (no execute, getenv, remove, exit)."""
    code = "local r = {} for k in pairs(os) do r[#r + 1] = k end table.sort(r) return r"
    assert result(lua, code) == ["clock", "date", "time"]
    assert result(lua, "return os.time() > 0 and os.clock() >= 0 and #os.date('%Y') == 4")


def test_nothing_reachable_from_globals_is_a_python_object(lua: LuaRuntime) -> None:
    """A walk of every table reachable from _G finds no userdata (no Python object)."""
    code = """
    local seen, kinds = {}, {}
    local function walk(t)
      if seen[t] then return end
      seen[t] = true
      for k, v in pairs(t) do
        kinds[type(k)] = true
        kinds[type(v)] = true
        if type(v) == "table" then walk(v) end
      end
    end
    walk(_G)
    walk(state)
    walk(variables)
    return {userdata = kinds.userdata == true, state = type(state)}
    """
    assert run(lua, code, {"nested": {"list": [1, 2]}}) == {"userdata": False, "state": "table"}


def test_load_runs_text_in_the_sandbox(lua: LuaRuntime) -> None:
    """load compiles source text, and the chunk sees the same sandboxed globals."""
    assert result(lua, "return load('return 1 + 1')()") == 2
    assert result(lua, "return load('return io')() == nil") is True


def test_load_refuses_bytecode(lua: LuaRuntime) -> None:
    """A binary chunk (even when mode 'b' is asked for) is refused."""
    code = "local f, err = load('\\27Lua\\84\\0', 'x', 'b') return {f == nil, err}"
    refused, message = result(lua, code)
    assert refused is True
    assert "binary chunk" in message


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("load(function() return nil end)", "only source text"),
        ("load('return 1', 'x', 't', {})", "sandbox environment"),
    ],
)
def test_load_refuses_readers_and_custom_environments(
    lua: LuaRuntime, code: str, message: str
) -> None:
    """load takes no reader function and no environment of the caller's choosing."""
    with pytest.raises(LuaNodeError, match=message):
        run(lua, code)


def test_string_metatable_is_protected(lua: LuaRuntime) -> None:
    """getmetatable('') gives false, so its __index cannot be read or replaced."""
    assert result(lua, "return getmetatable('')") is False
    with pytest.raises(LuaNodeError, match="attempt to index a boolean value"):
        run(lua, "getmetatable('').__index = {dump = 1}")


def test_string_methods_reach_only_the_trimmed_library(lua: LuaRuntime) -> None:
    """('').__index and ('x').dump find nothing; ordinary string methods still work."""
    assert result(lua, "return ('').__index == nil and ('x').dump == nil") is True
    assert result(lua, "return ('abc'):upper() .. ('%d'):format(7)") == "ABC7"


def test_finalizers_are_refused(lua: LuaRuntime) -> None:
    """A __gc metamethod would run outside any deadline, so setmetatable refuses it."""
    with pytest.raises(LuaNodeError, match="__gc metamethods are not allowed"):
        run(lua, "setmetatable({}, {__gc = function() while true do end end})")
    assert result(lua, "return getmetatable(setmetatable({}, {__index = {a = 1}})).__index.a") == 1


@pytest.mark.parametrize("option", ["stop", "restart", "generational", "incremental", "setpause"])
def test_collectgarbage_abuse_is_refused(lua: LuaRuntime, option: str) -> None:
    """collectgarbage only collects, steps, counts and tells whether it runs."""
    with pytest.raises(LuaNodeError, match=f"collectgarbage\\('{option}'\\) is not allowed"):
        run(lua, f"collectgarbage('{option}')")


def test_collectgarbage_allowed_options(lua: LuaRuntime) -> None:
    """collect (the default), count, step and isrunning work."""
    code = "collectgarbage() collectgarbage('step') return collectgarbage('count') > 0"
    assert result(lua, code + " and collectgarbage('isrunning')") is True


def test_print_writes_to_stderr(lua: LuaRuntime, capfd: pytest.CaptureFixture[str]) -> None:
    """print goes to stderr, never into stdout (where the CLI streams NDJSON)."""
    run(lua, "print('hello', 1, nil)")
    out, err = capfd.readouterr()
    assert out == ""
    assert "hello\t1\tnil" in err


def test_sandbox_false_lifts_the_sandbox() -> None:
    """settings.lua.sandbox: false gives the full standard library."""
    with LuaRuntime(LuaSettings(sandbox=False)) as lua:
        code = "return io ~= nil and debug ~= nil and require ~= nil and os.getenv ~= nil"
        assert result(lua, code) is True
        assert result(lua, "return python == nil") is True


ESCAPES = {
    "tight loop": "while true do end",
    "pcall swallowing the timeout": "while true do pcall(function() while true do end end) end",
    "pcall around error": "while true do pcall(error, 'x') end",
    "xpcall with a looping handler": (
        "while true do xpcall(function() while true do end end,"
        " function() while true do end end) end"
    ),
    "xpcall handler looping on a plain error": (
        "xpcall(function() error('x') end, function() while true do end end)"
    ),
    "coroutine.create": "coroutine.resume(coroutine.create(function() while true do end end))",
    "coroutine.wrap": "coroutine.wrap(function() while true do end end)()",
    "yielding coroutine": (
        "local f = coroutine.wrap(function() while true do coroutine.yield() end end)"
        " while true do f() end"
    ),
    "coroutine resumed in pcall": (
        "local co = coroutine.create(function() while true do end end)"
        " while true do pcall(coroutine.resume, co) end"
    ),
    "nested coroutines": (
        "coroutine.wrap(function() coroutine.wrap(function() while true do end end)() end)()"
    ),
    "to-be-closed variable": (
        "local x <close> = setmetatable({}, {__close = function() while true do end end})"
        " error('x')"
    ),
    "__tostring in string.format": (
        "string.format('%s', setmetatable({}, {__tostring = function() while true do end end}))"
    ),
    "string.gsub callback": "string.gsub('x', '.', function() while true do end end)",
    "table.sort comparator": "table.sort({3, 2, 1}, function() while true do end end)",
    "loaded chunk": "load('while true do end')()",
}


@pytest.mark.parametrize("code", list(ESCAPES.values()), ids=list(ESCAPES))
def test_timeout_cannot_be_escaped(lua: LuaRuntime, code: str) -> None:
    """Every attempt to dodge the instruction hook still ends in a timeout."""
    with pytest.raises(LuaLimitError) as caught:
        run(lua, code)
    assert caught.value.limit == "timeout"
    assert "node 'n'" in str(caught.value)
    assert f"{SHORT:g} s" in str(caught.value)


def test_runtime_is_usable_after_a_timeout(lua: LuaRuntime) -> None:
    """After a timeout the same runtime runs the next node, globals intact."""
    run(lua, "kept = 41")
    with pytest.raises(LuaLimitError):
        run(lua, "while true do end")
    assert result(lua, "return kept + 1") == 42


def test_per_node_timeout_overrides_the_setting() -> None:
    """timeout= on one call beats settings.lua.timeout_seconds."""
    with LuaRuntime(LuaSettings(timeout_seconds=60)) as lua:
        with pytest.raises(LuaLimitError, match=r"longer than 0\.2 s"):
            lua.run_node("while true do end", {}, {}, node="n", timeout=0.2)
        with pytest.raises(LuaLimitError, match=r"longer than 0\.2 s"):
            lua.eval_condition("(function() while true do end end)()", {}, {}, node="c", timeout=0.2)


BOMBS = {
    "string.rep": "local s = string.rep('x', 1024 * 1024 * 1024)",
    "doubling concatenation": "local s = 'x' while true do s = s .. s end",
    "pcall(string.rep)": "while true do pcall(string.rep, 'x', 64 * 1024 * 1024) end",
    "growing table": "local t = {} for i = 1, 1e9 do t[i] = i end",
    "many strings": "local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 4096) .. i end",
    "in a coroutine": "coroutine.wrap(function() local s = string.rep('x', 1e9) end)()",
}


@pytest.mark.parametrize("code", list(BOMBS.values()), ids=list(BOMBS))
def test_memory_bombs_hit_the_limit(code: str) -> None:
    """Allocation bombs end in a memory LuaLimitError; the runtime is usable afterwards."""
    with LuaRuntime(LuaSettings(timeout_seconds=30, max_memory_mb=32)) as lua:
        with pytest.raises(LuaLimitError, match="more than 32 MB") as caught:
            run(lua, code)
        assert caught.value.limit == "memory"
        assert result(lua, "return #string.rep('y', 1024)") == 1024
        assert lua.memory_used() < 8 * 1024 * 1024


def test_state_larger_than_the_limit() -> None:
    """A state that alone exceeds the limit is refused before any Lua runs."""
    with LuaRuntime(LuaSettings(max_memory_mb=1)) as lua:
        with pytest.raises(LuaLimitError, match="passed to Lua need more than 1 MB"):
            lua.run_node("return 1", {"big": "x" * 2 * 1024 * 1024}, {}, node="n")
        assert lua.run_node("return 1", {}, {}, node="n") == {"result": 1}


def test_deep_recursion_is_a_clear_error() -> None:
    """Unbounded Lua recursion is a 'stack overflow' error with its line (default memory limit)."""
    with LuaRuntime(LuaSettings(timeout_seconds=10)) as lua:
        with pytest.raises(LuaNodeError, match=r"line 2: .*stack overflow") as caught:
            run(lua, "local function f(n)\n  return f(n + 1) + 1\nend\nreturn f(1)")
        assert not isinstance(caught.value, LuaLimitError)
        assert result(lua, "return 'alive'") == "alive"


@pytest.mark.parametrize(
    "code",
    [
        "local function f() return coroutine.wrap(f)() end return f()",
        "local function f() return select(2, pcall(f)) end return f()",
        "local t = setmetatable({}, {}) getmetatable(t).__index = function(s, k) return s[k] end"
        " return t.x",
        "local function f(s) return (s:gsub('.', f)) end return f('ab')",
    ],
    ids=["coroutine.wrap", "pcall", "__index", "gsub"],
)
def test_deep_c_recursion_never_crashes(code: str) -> None:
    """Recursion through C (coroutines, pcall, metamethods, callbacks) ends cleanly, also in a thread."""
    outcome: list[Any] = []

    def attempt() -> None:
        with LuaRuntime(LuaSettings(timeout_seconds=5)) as lua:
            try:
                outcome.append(run(lua, code))
            except LuaNodeError as exc:
                outcome.append(exc)
            outcome.append(result(lua, "return 'alive'"))

    worker = threading.Thread(target=attempt)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert outcome[-1] == "alive"
    if isinstance(outcome[0], LuaNodeError):
        assert "stack overflow" in str(outcome[0]) or "error in error handling" in str(outcome[0])


SHARED_LEAVES = """
local t = {1, 2}
for _ = 1, 20 do t = {t, t} end   -- 2^20 leaves, a few KB in Lua: every level shared
return {tree = t}
"""


def test_converting_a_shared_result_is_held_to_the_memory_limit() -> None:
    """Sub-tables shared in Lua are copied at every use in Python: the limit counts that."""
    with LuaRuntime(LuaSettings(timeout_seconds=30, max_memory_mb=32)) as lua:
        with pytest.raises(LuaLimitError, match="its result needs more than 32 MB") as caught:
            run(lua, SHARED_LEAVES)
        assert caught.value.limit == "memory"
        assert result(lua, "return 5") == 5


def test_converting_a_result_is_held_to_the_time_limit() -> None:
    with LuaRuntime(LuaSettings(timeout_seconds=0.05)) as lua:
        with pytest.raises(LuaLimitError, match=r"longer than 0\.05 s") as caught:
            run(lua, SHARED_LEAVES)
        assert caught.value.limit == "timeout"


def test_a_time_limit_swallowed_by_coroutine_close_still_fails(lua: LuaRuntime) -> None:
    code = """
    local co = coroutine.create(function() while true do end end)
    coroutine.resume(co)
    coroutine.close(co)
    return {ok = true}
    """
    with pytest.raises(LuaLimitError, match="Lua timeout") as caught:
        run(lua, code)
    assert caught.value.limit == "timeout"
