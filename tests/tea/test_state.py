"""tea.state: shallow merges, state_schema reducers and fast deep copies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tea.errors import SchemaError
from tea.state import Reduced, fast_copy, get_reducer, known_reducers, merge, register_reducer
from tea.workflow import Workflow


def test_merge_is_shallow_without_reducers() -> None:
    """An update replaces top-level keys whole (nested dicts are not merged)."""
    state = {"a": 1, "d": {"x": 1, "y": 2}}
    merge(state, {"d": {"x": 9}, "b": 2}, {})
    assert state == {"a": 1, "d": {"x": 9}, "b": 2}


def test_merge_ignores_an_empty_update() -> None:
    """None or {} leaves the state as it is."""
    state = {"a": 1}
    assert merge(state, None, {}) == {"a": 1}
    assert merge(state, {}, {}) == {"a": 1}


def test_append_reducer_extends_with_a_list() -> None:
    """append adds the items of a list update."""
    state = {"log": [1]}
    merge(state, {"log": [2, 3]}, {"log": get_reducer("append")})
    assert state["log"] == [1, 2, 3]


def test_append_reducer_appends_a_scalar() -> None:
    """append adds a non-list update as one item."""
    state = {"log": ["a"]}
    merge(state, {"log": "b"}, {"log": get_reducer("append")})
    assert state["log"] == ["a", "b"]


def test_append_reducer_starts_from_nothing() -> None:
    """append on a missing key starts a new list."""
    state: dict[str, Any] = {}
    merge(state, {"log": "first"}, {"log": get_reducer("append")})
    assert state["log"] == ["first"]


def test_append_reducer_does_not_mutate_the_old_list() -> None:
    """append builds a new list, so a shared old list is left alone."""
    old = [1]
    state = {"log": old}
    merge(state, {"log": [2]}, {"log": get_reducer("append")})
    assert old == [1]


def test_add_reducer() -> None:
    """add sums old and new (and starts from the new value)."""
    state: dict[str, Any] = {}
    reducers = {"total": get_reducer("add")}
    merge(state, {"total": 2}, reducers)
    merge(state, {"total": 3}, reducers)
    assert state["total"] == 5


def test_merge_reducer() -> None:
    """merge combines dicts key by key, new keys winning."""
    state = {"meta": {"a": 1, "b": 1}}
    merge(state, {"meta": {"b": 2, "c": 3}}, {"meta": get_reducer("merge")})
    assert state["meta"] == {"a": 1, "b": 2, "c": 3}


def test_replace_reducer() -> None:
    """replace keeps only the new value."""
    state = {"last": [1]}
    merge(state, {"last": [2]}, {"last": get_reducer("replace")})
    assert state["last"] == [2]


def test_keys_without_a_reducer_still_replace() -> None:
    """Only the keys given a reducer are combined."""
    state = {"log": [1], "other": [1]}
    merge(state, {"log": [2], "other": [2]}, {"log": get_reducer("append")})
    assert state == {"log": [1, 2], "other": [2]}


def test_reduced_updates_bypass_the_reducers() -> None:
    """A Reduced update (already reduced by steps or a loop) is applied as it is."""
    state = {"log": [1]}
    merge(state, Reduced({"log": [1, 2]}), {"log": get_reducer("append")})
    assert state["log"] == [1, 2]


def test_register_reducer_adds_a_named_reducer() -> None:
    """register_reducer makes a new name usable in state_schema."""
    register_reducer("test_max", max)
    assert "test_max" in known_reducers()
    state = {"best": 5}
    merge(state, {"best": 3}, {"best": get_reducer("test_max")})
    assert state["best"] == 5


def test_fast_copy_is_deep() -> None:
    """fast_copy copies nested dicts and lists so changes do not leak back."""
    original = {"a": [1, {"b": [2]}], "s": "x"}
    copied = fast_copy(original)
    copied["a"][1]["b"].append(3)
    assert original == {"a": [1, {"b": [2]}], "s": "x"}


def test_fast_copy_deep_copies_other_objects() -> None:
    """Objects that are not plain JSON data are copied with copy.deepcopy."""
    original = {"t": ({"k": [1]},)}
    copied = fast_copy(original)
    copied["t"][0]["k"].append(2)
    assert original["t"][0]["k"] == [1]


def test_state_schema_append_across_nodes(load_yaml: Callable[..., Workflow]) -> None:
    """A state_schema append reducer accumulates a key over several nodes."""
    workflow = load_yaml(
        """
        name: acc
        state_schema:
          log: {type: list, reducer: append}
        nodes:
          - name: a
            run: |
              return {"log": "a"}
          - name: b
            run: |
              return {"log": ["b", "c"]}
        """
    )
    assert workflow.invoke({"log": []})["log"] == ["a", "b", "c"]


def test_state_schema_add_in_a_while_loop(load_yaml: Callable[..., Workflow]) -> None:
    """An add reducer accumulates inside a while_loop, applied once per pass."""
    workflow = load_yaml(
        """
        name: sum
        state_schema:
          total: {type: int, reducer: add}
        nodes:
          - name: loop
            type: while_loop
            condition: "state.i < 4"
            max_iterations: 10
            body:
              - run: |
                  return {"i": state["i"] + 1, "total": state["i"]}
        """
    )
    assert workflow.invoke({"i": 0, "total": 100})["total"] == 106


def test_state_schema_merge_in_steps(load_yaml: Callable[..., Workflow]) -> None:
    """A merge reducer combines dict updates of several steps."""
    workflow = load_yaml(
        """
        name: meta
        state_schema:
          meta: {reducer: merge}
        nodes:
          - name: s
            steps:
              - run: |
                  return {"meta": {"a": 1}}
              - run: |
                  return {"meta": {"b": 2}}
        """
    )
    assert workflow.invoke({"meta": {"z": 0}})["meta"] == {"z": 0, "a": 1, "b": 2}


def test_state_schema_replace(load_yaml: Callable[..., Workflow]) -> None:
    """A replace reducer behaves like the default merge."""
    workflow = load_yaml(
        """
        name: rep
        state_schema:
          last: {reducer: replace}
        nodes:
          - name: s
            run: |
              return {"last": [2]}
        """
    )
    assert workflow.invoke({"last": [1]})["last"] == [2]


def test_branch_writes_of_a_reducer_key_reach_the_fan_in(load_yaml: Callable[..., Workflow]) -> None:
    """Each branch's writes of an append-reduced key are merged at the fan-in, in declaration order."""
    workflow = load_yaml(
        """
        name: gather
        state_schema:
          found: {reducer: append}
        nodes:
          - name: start
            run: |
              return {"found": "start"}
          - name: a
            run: |
              return {"found": "a"}
          - name: b
            run: |
              return {"found": ["b1", "b2"]}
          - name: join
            run: |
              return {"seen": list(state["found"]), "b_saw": parallel_results[1]["found"]}
        edges:
          - from: start
            to: [a, b]
            parallel: true
            fan_in: join
        """
    )
    final = workflow.invoke({})
    assert final["found"] == ["start", "a", "b1", "b2"]
    assert final["seen"] == final["found"]  # merged before the fan-in runs
    assert final["b_saw"] == ["start", "b1", "b2"]  # a record still reads what its branch saw


def test_unknown_reducer_is_a_schema_error_with_a_suggestion(
    load_yaml: Callable[..., Workflow],
) -> None:
    """A misspelt reducer name is refused at its line with the nearest name."""
    with pytest.raises(SchemaError) as info:
        load_yaml(
            """
            name: bad
            state_schema:
              log: {reducer: apend}
            nodes:
              - name: a
            """
        )
    assert info.value.location.line == 3
    assert "apend" in info.value.message
    assert info.value.hint == "did you mean 'append'?"


def test_a_reducer_without_a_start_keeps_the_first_write_as_it_is() -> None:
    """As LangGraph does when a key's type cannot be built: the reducer is not called."""
    calls: list[tuple[Any, Any]] = []

    def pair(old: Any, new: Any) -> Any:
        calls.append((old, new))
        return (old, new)

    register_reducer("test_pair", pair)
    state: dict[str, Any] = {}
    merge(state, {"k": 1}, {"k": get_reducer("test_pair")})
    merge(state, {"k": 2}, {"k": get_reducer("test_pair")})
    assert state["k"] == (1, 2) and calls == [(1, 2)]


def test_a_typed_key_starts_a_custom_reducer_at_the_types_empty_value() -> None:
    """reducer_for gives a reducer without a start the start of the key's type, as LangGraph's
    ``Annotated[list, fn]`` calls ``fn([], first)``."""
    from tea.state import reducer_for

    register_reducer("test_plus", lambda old, new: [*old, new])
    state: dict[str, Any] = {}
    merge(state, {"k": 1}, {"k": reducer_for("test_plus", "list")})
    assert state["k"] == [1]
    assert reducer_for("append", "int") is get_reducer("append")  # a start of its own wins


def test_a_tracked_state_keeps_the_raw_writes_of_reducer_keys() -> None:
    from tea.state import Tracked

    state = Tracked({"log": ["old"]})
    reducers = {"log": get_reducer("append")}
    merge(state, {"log": "a", "x": 1}, reducers)
    merge(state, Reduced({"log": ["old", "a", "b"]}, {"log": ["b"]}), reducers)
    assert state["log"] == ["old", "a", "b"] and state.writes == {"log": ["a", "b"]}
