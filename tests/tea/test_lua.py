"""tea.lua: settings, syntax checks, conversions, node and condition semantics, errors and isolation."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from executors.base import BranchResult, ErrorInfo
from tea.errors import NodeError
from tea.lua import (
    LuaLimitError,
    LuaNodeError,
    LuaRuntime,
    LuaSettings,
    LuaSyntaxError,
    check_syntax,
)


@pytest.fixture
def lua() -> Iterator[LuaRuntime]:
    runtime = LuaRuntime(LuaSettings(timeout_seconds=10))
    yield runtime
    runtime.close()


def roundtrip(lua: LuaRuntime, value: Any) -> Any:
    update = lua.run_node("return {value = state.value}", {"value": value}, {}, node="n")
    assert update is not None
    return update.get("value")


def in_threads(*targets: Callable[[], None]) -> None:
    threads = [threading.Thread(target=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()


# --- settings -------------------------------------------------------------------


def test_settings_defaults() -> None:
    """No settings.lua: sandboxed, 30 s per node, 256 MB per runtime."""
    assert LuaSettings.from_mapping(None) == LuaSettings(True, 30.0, 256.0)


def test_settings_from_mapping() -> None:
    """Every key is read; max_memory_mb null means no memory limit."""
    raw = {"sandbox": False, "timeout_seconds": 2, "max_memory_mb": None}
    assert LuaSettings.from_mapping(raw) == LuaSettings(False, 2, None)


def test_settings_unknown_key_is_named() -> None:
    """An unknown key is a ValueError naming it."""
    with pytest.raises(ValueError, match=r"unknown key\(s\) in settings\.lua: sandboxed"):
        LuaSettings.from_mapping({"sandboxed": True})


@pytest.mark.parametrize(
    "raw",
    [{"timeout_seconds": 0}, {"timeout_seconds": "5"}, {"max_memory_mb": -1}, {"sandbox": "no"}],
)
def test_settings_bad_values(raw: dict[str, Any]) -> None:
    """Non-positive or mistyped values are refused."""
    with pytest.raises(ValueError, match=r"settings\.lua"):
        LuaSettings.from_mapping(raw)


# --- syntax -------------------------------------------------------------------------


def test_check_syntax_accepts_valid_code() -> None:
    """Valid bodies and expressions compile (and nothing runs: the loop is never entered)."""
    check_syntax("while true do end\nreturn {x = 1}")
    check_syntax("state.count > 3 and variables.on", expression=True)


def test_check_syntax_gives_the_lua_line() -> None:
    """A syntax error carries Lua's message and the line within the code."""
    with pytest.raises(LuaSyntaxError) as caught:
        check_syntax("local a = 1\nlocal b = = 2\nreturn a")
    assert caught.value.lua_line == 2
    assert "unexpected symbol near '='" in caught.value.message


def test_check_syntax_missing_end_points_into_the_code() -> None:
    """An unclosed block reports a line of the code, not of tea's wrapper."""
    with pytest.raises(LuaSyntaxError, match="'end' expected") as caught:
        check_syntax("if state.x then\n  return {}")
    assert caught.value.lua_line == 2


@pytest.mark.parametrize("expr", ["", "x = 1", "1) os.exit(", "state.a\nstate.b"])
def test_check_syntax_expression_is_one_expression(expr: str) -> None:
    """A condition must be exactly one expression: statements and injections are syntax errors."""
    with pytest.raises(LuaSyntaxError):
        check_syntax(expr, expression=True)


def test_check_syntax_is_thread_safe() -> None:
    """Many threads checking at once all get their own answer."""
    failures: list[BaseException] = []

    def check(n: int) -> Callable[[], None]:
        def body() -> None:
            for _ in range(200):
                try:
                    check_syntax(f"return {{v = {n}}}")
                    with pytest.raises(LuaSyntaxError):
                        check_syntax(f"return {{v = {n}")
                except BaseException as exc:  # collected for the main thread
                    failures.append(exc)

        return body

    in_threads(*(check(n) for n in range(4)))
    assert failures == []


# --- conversions ------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        [1, 2, 3],
        {"a": 1, "b": "two"},
        {"outer": {"inner": [1, {"deep": [True, False]}]}},
        [[1, 2], [3, [4, 5]]],
        "text with ünïcödé",
        True,
        False,
        0,
        -7,
        2.5,
        9223372036854775807,
        -9223372036854775808,
        [1, None, 3],
        [None, "x"],
        {"empty_list_item": [{}]},
    ],
)
def test_values_round_trip_exactly(lua: LuaRuntime, value: Any) -> None:
    """JSON-like values come back from Lua exactly as they went in."""
    assert roundtrip(lua, value) == value


def test_conversion_details(lua: LuaRuntime) -> None:
    """Lists are 1-based arrays, dicts tables, None is nil, integral floats become ints."""
    state = {"items": [10, 20, 30], "config": {"on": True}, "gone": None, "f": 4.0}
    code = """
    return {
      first = state.items[1], n = #state.items, on = state.config.on,
      gone = state.gone == nil, f_is_float = math.type(state.f) == "float",
      f = state.f, half = 3 / 2, whole = 6 / 2, big = 2^53,
    }
    """
    assert lua.run_node(code, state, {}, node="n") == {
        "first": 10, "n": 3, "on": True, "gone": True, "f_is_float": True,
        "f": 4, "half": 1.5, "whole": 3, "big": 2**53,
    }


def test_empty_table_is_an_empty_dict(lua: LuaRuntime) -> None:
    """An empty table returns as {} (Lua cannot tell an empty list from an empty table)."""
    assert lua.run_node("return {e = {}, l = state.l}", {"l": []}, {}, node="n") == {
        "e": {},
        "l": {},
    }


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("return {[1] = 'a', [2] = 'b'}", {"result": ["a", "b"]}),
        ("return {[5] = 'x'}", {5: "x"}),
        ("return {[1] = 'a', name = 'n'}", {1: "a", "name": "n"}),
        ("return {[0] = 'z'}", {0: "z"}),
        ("return {[1.5] = 'f', [true] = 't'}", {1.5: "f", True: "t"}),
        ("return 1/0", {"result": float("inf")}),
    ],
)
def test_table_shapes(lua: LuaRuntime, code: str, expected: Any) -> None:
    """Positive integer keys (at most half holes) make a list; any other table a dict."""
    assert lua.run_node(code, {}, {}, node="n") == expected


def test_tuples_become_lists(lua: LuaRuntime) -> None:
    """A tuple crosses as an array and returns as a list."""
    assert roundtrip(lua, (1, (2, 3))) == [1, [2, 3]]


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"s": {1, 2}}, "state.s is a set"),
        ({"b": b"raw"}, "state.b is a bytes"),
        ({"f": print}, "state.f is a builtin_function_or_method"),
        ({"deep": {"o": object()}}, "state.deep.o is a object"),
        ({"i": 2**64}, "does not fit a 64-bit Lua integer"),
        ({(1, 2): "k"}, "key of type tuple"),
    ],
)
def test_values_without_a_lua_equivalent_are_refused(
    lua: LuaRuntime, state: dict[Any, Any], message: str
) -> None:
    """Nothing but JSON-like data crosses into Lua (no live Python object), naming the key."""
    with pytest.raises(LuaNodeError, match=message):
        lua.run_node("return nil", state, {}, node="n")


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("return {f = print}", "result.f is a Lua function"),
        ("return {co = coroutine.running()}", "result.co is a Lua thread"),
        ("return {[{}] = 1}", "has a Lua table as a key"),
        ("local t = {} t.self = t return t", "nested deeper than 100 levels"),
        ("return {s = string.char(255)}", "not UTF-8"),
    ],
)
def test_results_without_a_python_equivalent_are_refused(
    lua: LuaRuntime, code: str, message: str
) -> None:
    """Functions, coroutines, table keys, cycles and non-UTF-8 text are clear node errors."""
    with pytest.raises(LuaNodeError, match=message):
        lua.run_node(code, {}, {}, node="n")


def test_deeply_nested_state_is_refused(lua: LuaRuntime) -> None:
    """State nested deeper than the conversion limit is refused, not a RecursionError."""
    nested: Any = 1
    for _ in range(150):
        nested = [nested]
    with pytest.raises(LuaNodeError, match="nested deeper than 100 levels"):
        lua.run_node("return nil", {"n": nested}, {}, node="n")


# --- node semantics -------------------------------------------------------------


def test_return_forms(lua: LuaRuntime) -> None:
    """A table is the update, nil gives None, a scalar or a list becomes {'result': v}."""
    assert lua.run_node("return {a = 1}", {}, {}, node="n") == {"a": 1}
    assert lua.run_node("local x = 1", {}, {}, node="n") is None
    assert lua.run_node("return nil", {}, {}, node="n") is None
    assert lua.run_node("return 'done'", {}, {}, node="n") == {"result": "done"}
    assert lua.run_node("return false", {}, {}, node="n") == {"result": False}
    assert lua.run_node("return {1, 2}", {}, {}, node="n") == {"result": [1, 2]}
    assert lua.run_node("return 1, 2", {}, {}, node="n") == {"result": 1}


def test_variables_and_extras(lua: LuaRuntime) -> None:
    """variables and extra names are globals for that call only."""
    code = "return {v = variables.limit, n = #parallel_results}"
    assert lua.run_node(
        code, {}, {"limit": 3}, node="n", extra={"parallel_results": [1, 2]}
    ) == {"v": 3, "n": 2}
    assert lua.run_node("return parallel_results == nil", {}, {}, node="n") == {"result": True}


def test_extras_shadow_globals_for_one_call(lua: LuaRuntime) -> None:
    """A global with an extra's name is shadowed during the call and comes back after it."""
    lua.run_node("parallel_results = 'mine'", {}, {}, node="a")
    code = "return {seen = parallel_results[1]}"
    assert lua.run_node(code, {}, {}, node="b", extra={"parallel_results": ["x"]}) == {"seen": "x"}
    assert lua.run_node("return parallel_results", {}, {}, node="c") == {"result": "mine"}


def test_changes_to_state_and_variables_do_not_leak(lua: LuaRuntime) -> None:
    """Lua gets copies: in-place changes reach neither Python nor the next node; return an update."""
    state, variables = {"items": [1]}, {"k": 1}
    lua.run_node("table.insert(state.items, 2) variables.k = 99", state, variables, node="n")
    assert state == {"items": [1]} and variables == {"k": 1}
    assert lua.run_node("return variables.k", {}, variables, node="n") == {"result": 1}


def test_branch_results_are_tables(lua: LuaRuntime) -> None:
    """A BranchResult reads as its branch state overlaid with its record fields."""
    ok = BranchResult("f[a]", True, {"score": 3}, duration_ms=1.5)
    bad = BranchResult("f[b]", False, {"score": 1}, error=ErrorInfo("NodeError", "boom", node="b"))
    code = """
    local a, b = parallel_results[1], parallel_results[2]
    return {total = a.score + b.score, ids = {a.branch_id, b.branch_id}, ok = b.success,
            why = b.error.message, inner = a.state.score, no_error = a.error == nil}
    """
    assert lua.run_node(code, {}, {}, node="join", extra={"parallel_results": [ok, bad]}) == {
        "total": 4, "ids": ["f[a]", "f[b]"], "ok": False, "why": "boom", "inner": 3,
        "no_error": True,
    }


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("state.count > 3", True),
        ("state.count > 5", False),
        ("state.missing", False),
        ("nil", False),
        ("false", False),
        ("0", True),
        ("''", True),
        ("{}", True),
        ("state.count >= variables.limit", True),
    ],
)
def test_conditions_use_lua_truthiness(lua: LuaRuntime, expr: str, expected: bool) -> None:
    """Only nil and false are false; 0, '' and {} are true."""
    assert lua.eval_condition(expr, {"count": 4}, {"limit": 4}, node="c") is expected


# --- errors ---------------------------------------------------------------------------


def test_runtime_error_names_node_line_and_message(lua: LuaRuntime) -> None:
    """A Lua runtime error is a NodeError with the node, the Lua line and Lua's message."""
    code = "local a = 1\nlocal b = state.missing.field\nreturn {b = b}"
    with pytest.raises(NodeError) as caught:
        lua.run_node(code, {}, {}, node="calc")
    error = caught.value
    assert isinstance(error, LuaNodeError)
    assert error.node == "calc" and error.lua_line == 2
    assert "attempt to index a nil value (field 'missing')" in error.message
    assert str(error).startswith("node 'calc': Lua error at line 2: attempt to index")


@pytest.mark.parametrize(
    ("code", "line", "message"),
    [
        ("\n\nerror('boom')", 3, "boom"),
        ("\nerror('no position', 0)", 2, "no position"),
        ("\nerror({code = 1})", 2, "(error object is a table value)"),
        ("\nerror(42)", 2, "42"),
        ("local function f()\n  error('inner')\nend\nf()", 2, "inner"),
        ("local function check(x)\n  if not x then error('bad x', 2) end\nend\ncheck(nil)", 4, "bad x"),
        ("local s = 'x'\n\nreturn s + 1", 3, "attempt to add a 'string' with a 'number'"),
    ],
)
def test_error_lines(lua: LuaRuntime, code: str, line: int, message: str) -> None:
    """The reported line is where the error was raised (or blamed, with error's level)."""
    with pytest.raises(LuaNodeError) as caught:
        lua.run_node(code, {}, {}, node="n")
    assert caught.value.lua_line == line
    assert message in caught.value.message


def test_syntax_error_at_run_time_is_a_node_error(lua: LuaRuntime) -> None:
    """Code that skipped check_syntax still fails cleanly, naming node and line."""
    with pytest.raises(LuaNodeError, match="Lua syntax error at line 2") as caught:
        lua.run_node("local x = 1\nlocal = 2", {}, {}, node="n")
    assert caught.value.node == "n"


def test_condition_error_names_the_node(lua: LuaRuntime) -> None:
    """A failing condition is a LuaNodeError naming the node it belongs to."""
    with pytest.raises(LuaNodeError, match="node 'route': Lua error at line 1"):
        lua.eval_condition("state.a.b > 1", {}, {}, node="route")


def test_limit_error_is_a_node_error() -> None:
    """LuaLimitError is a NodeError carrying the node and which limit was hit."""
    lua = LuaRuntime(LuaSettings(timeout_seconds=0.2))
    with pytest.raises(NodeError) as caught:
        lua.run_node("while true do end", {}, {}, node="spin")
    lua.close()
    assert isinstance(caught.value, LuaLimitError)
    assert caught.value.to_dict()["node"] == "spin"
    assert caught.value.limit == "timeout"


# --- lifecycle and isolation ----------------------------------------------------


def test_globals_persist_within_one_runtime(lua: LuaRuntime) -> None:
    """Sequential nodes of one runtime (the main path) share globals and functions."""
    lua.run_node("counter = 1 function bump() counter = counter + 1 end", {}, {}, node="a")
    lua.run_node("bump()", {}, {}, node="b")
    assert lua.run_node("return counter", {}, {}, node="c") == {"result": 2}


def test_close_is_idempotent() -> None:
    """close() twice is fine; a closed runtime refuses work."""
    lua = LuaRuntime()
    lua.close()
    lua.close()
    with pytest.raises(RuntimeError, match="closed"):
        lua.run_node("return 1", {}, {}, node="n")


def test_runtimes_in_threads_are_isolated() -> None:
    """Globals and functions defined in one branch's runtime are invisible to another."""
    seen: dict[str, Any] = {}
    defined = threading.Event()

    def branch_a() -> None:
        with LuaRuntime() as lua:
            lua.run_node("cached = 123 function helper() return 'a' end", {}, {}, node="a")
            defined.set()
            seen["a"] = lua.run_node("return {cached = cached}", {}, {}, node="a")

    def branch_b() -> None:
        assert defined.wait(timeout=30)
        with LuaRuntime() as lua:
            code = "return {cached = cached == nil, helper = helper == nil}"
            seen["b"] = lua.run_node(code, {}, {}, node="b")

    in_threads(branch_a, branch_b)
    assert seen == {"a": {"cached": 123}, "b": {"cached": True, "helper": True}}


def test_timeouts_are_independent_per_runtime() -> None:
    """One branch timing out does not stop another that runs longer than that timeout."""
    outcome: dict[str, Any] = {}

    def stuck() -> None:
        with LuaRuntime(LuaSettings(timeout_seconds=0.1)) as lua:
            try:
                lua.run_node("while true do end", {}, {}, node="stuck")
            except LuaLimitError as exc:
                outcome["stuck"] = exc.limit

    def busy() -> None:
        with LuaRuntime(LuaSettings(timeout_seconds=60)) as lua:
            # Runs past the other runtime's 0.1 s deadline on any machine.
            code = "local t = os.clock() while os.clock() - t < 0.4 do end return 'done'"
            outcome["busy"] = lua.run_node(code, {}, {}, node="busy")

    in_threads(stuck, busy)
    assert outcome == {"stuck": "timeout", "busy": {"result": "done"}}
