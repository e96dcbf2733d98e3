"""tea.StateGraph: building and running a graph from Python functions."""

from __future__ import annotations

import operator
from typing import Any

import pytest

import tea
from tea.errors import RunError, SchemaError


def mark(name: str) -> Any:
    """A node function that appends its name to state['path']."""

    def fn(state: dict[str, Any]) -> dict[str, Any]:
        return {"path": [*state.get("path", []), name]}

    return fn


def graph_of(*names: str) -> tea.StateGraph:
    graph = tea.StateGraph()
    for name in names:
        graph.add_node(name, mark(name))
    return graph


def test_nodes_chain_in_insertion_order() -> None:
    """Without edges, nodes run in the order they were added."""
    assert graph_of("a", "b", "c").compile().invoke({})["path"] == ["a", "b", "c"]


def test_add_edge_routes() -> None:
    """add_edge sends a node to the named one; END finishes."""
    graph = graph_of("a", "b", "c")
    graph.add_edge("a", "c").add_edge("c", tea.END)
    assert graph.compile().invoke({})["path"] == ["a", "c"]


def test_edge_from_start_sets_the_entry() -> None:
    """add_edge(START, x) makes x the entry point."""
    graph = graph_of("a", "b")
    graph.add_edge(tea.START, "b")
    assert graph.compile().invoke({})["path"] == ["b"]


def test_set_entry_point() -> None:
    """set_entry_point chooses where the run starts."""
    graph = graph_of("a", "b").set_entry_point("b")
    assert graph.compile().invoke({})["path"] == ["b"]


def test_conditional_edges_with_a_path_map() -> None:
    """add_conditional_edges maps the routing function's value through path_map."""
    graph = graph_of("start", "small", "big")
    graph.add_conditional_edges("start", lambda s: s["n"] > 10, {True: "big", False: "small"})
    graph.add_edge("small", tea.END)
    workflow = graph.compile()
    assert workflow.invoke({"n": 50})["path"] == ["start", "big"]
    assert workflow.invoke({"n": 1})["path"] == ["start", "small"]


def test_conditional_edges_without_a_path_map() -> None:
    """Without path_map the routing function returns the next node's name."""
    graph = graph_of("start", "left", "right")
    graph.add_conditional_edges("start", lambda s: s["go"])
    graph.add_edge("left", tea.END)
    workflow = graph.compile()
    assert workflow.invoke({"go": "right"})["path"] == ["start", "right"]
    assert workflow.invoke({"go": "left"})["path"] == ["start", "left"]
    assert workflow.invoke({"go": tea.END})["path"] == ["start"]


def test_routing_function_returning_an_unknown_node() -> None:
    """A routing function naming a node that does not exist fails with a RunError naming the source."""
    graph = graph_of("start", "a")
    graph.add_conditional_edges("start", lambda s: "nowhere")
    with pytest.raises(RunError) as info:
        graph.compile().invoke({})
    assert info.value.node == "start"
    assert "nowhere" in str(info.value)


def test_loop_until_a_condition() -> None:
    """A conditional edge back to the same node loops."""
    graph = tea.StateGraph()
    graph.add_node("inc", lambda s: {"n": s["n"] + 1})
    graph.add_conditional_edges("inc", lambda s: s["n"] < 4, {True: "inc", False: tea.END})
    assert graph.compile().invoke({"n": 0}) == {"n": 4}


def test_parallel_edges_and_fan_in() -> None:
    """add_parallel_edges runs branches and hands their results to the fan-in in order."""
    graph = tea.StateGraph()
    graph.add_node("fetch", lambda s: {"x": 2})
    graph.add_node("double", lambda s: {"y": s["x"] * 2})
    graph.add_node("square", lambda s: {"y": s["x"] ** 2})

    def merge(state: dict[str, Any], parallel_results: Any) -> dict[str, Any]:
        return {"ys": [r["y"] for r in parallel_results], "main_y": state.get("y")}

    graph.add_node("merge", merge)
    graph.add_parallel_edges("fetch", ["double", "square"], fan_in="merge")
    graph.add_edge("merge", tea.END)
    assert graph.compile().invoke({}) == {"x": 2, "ys": [4, 4], "main_y": None}


def test_parallel_config_is_honoured() -> None:
    """A ParallelConfig given to add_parallel_edges reaches the executor (strategy in events)."""
    graph = tea.StateGraph()
    graph.add_node("s", lambda s: None)
    graph.add_node("a", lambda s: {"v": 1})
    graph.add_node("j", lambda s, parallel_results: {"n": len(parallel_results)})
    graph.add_parallel_edges("s", ["a"], fan_in="j", config=tea.ParallelConfig(max_workers=1))
    events = list(graph.compile().stream({}, stream_mode="debug"))
    assert [e["strategy"] for e in events if e["type"] == "branch_start"] == ["thread"]
    assert events[-1]["state"] == {"n": 1}


def test_non_dict_return_becomes_result() -> None:
    """A node function returning a non-dict value v gives {"result": v}."""
    graph = tea.StateGraph()
    graph.add_node("n", lambda s: 42)
    assert graph.compile().invoke({}) == {"result": 42}


def test_node_without_a_function_passes_through() -> None:
    """add_node without a function is a no-op node."""
    graph = tea.StateGraph()
    graph.add_node("noop")
    assert graph.compile().invoke({"a": 1}) == {"a": 1}


def test_reducers() -> None:
    """reducers= gives keys a combining function, as LangGraph channels do."""
    graph = tea.StateGraph(reducers={"total": operator.add})
    graph.add_node("a", lambda s: {"total": 2})
    graph.add_node("b", lambda s: {"total": 3})
    assert graph.compile().invoke({"total": 10}) == {"total": 15}


def test_stream_yields_node_events() -> None:
    """A compiled graph streams like a loaded workflow."""
    events = list(graph_of("a", "b").compile().stream({}))
    assert [e["type"] for e in events] == ["start", "node_end", "node_end", "end"]


def test_node_exception_is_a_node_error() -> None:
    """An exception in a node function becomes a NodeError naming the node."""
    from tea.errors import NodeError

    graph = tea.StateGraph()
    graph.add_node("boom", lambda s: 1 / 0)
    with pytest.raises(NodeError) as info:
        graph.compile().invoke({})
    assert info.value.node == "boom"
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_a_compiled_graph_is_not_changed_by_later_edits() -> None:
    """Adding nodes and edges after compile() leaves the earlier workflow as it was."""
    graph = graph_of("a", "b")
    graph.add_edge("a", "b")
    first = graph.compile()
    graph.add_node("c", mark("c"))
    graph.add_edge("b", "c")
    second = graph.compile()
    assert first.invoke({})["path"] == ["a", "b"]
    assert second.invoke({})["path"] == ["a", "b", "c"]


def test_duplicate_node_is_refused() -> None:
    """Adding a node name twice is a SchemaError."""
    graph = graph_of("a")
    with pytest.raises(SchemaError, match="duplicate"):
        graph.add_node("a", mark("a"))


@pytest.mark.parametrize("name", [tea.START, tea.END])
def test_reserved_names_are_refused(name: str) -> None:
    """START and END cannot be node names."""
    with pytest.raises(SchemaError, match="reserved"):
        tea.StateGraph().add_node(name, mark("x"))


def test_edge_to_an_unknown_node_is_refused_at_compile() -> None:
    """compile() refuses an edge whose target is not a node."""
    graph = graph_of("a")
    graph.add_edge("a", "ghost")
    with pytest.raises(SchemaError, match="ghost"):
        graph.compile()


def test_edge_from_an_unknown_node_is_refused_at_compile() -> None:
    """compile() refuses an edge whose source is not a node."""
    graph = graph_of("a")
    graph.add_edge("ghost", "a")
    with pytest.raises(SchemaError, match="ghost"):
        graph.compile()


def test_parallel_edge_to_an_unknown_node_is_refused() -> None:
    """compile() refuses a fan-out naming a missing branch, fan-in or source."""
    for source, targets, fan_in in (("a", ["ghost"], "a"), ("a", ["a"], "ghost"), ("ghost", ["a"], "a")):
        graph = graph_of("a")
        graph.add_parallel_edges(source, targets, fan_in=fan_in)
        with pytest.raises(SchemaError, match="ghost"):
            graph.compile()


def test_empty_graph_is_refused() -> None:
    """compile() of a graph without nodes is a SchemaError."""
    with pytest.raises(SchemaError, match="no nodes"):
        tea.StateGraph().compile()


def test_unknown_entry_point_is_refused() -> None:
    """An entry point that is not a node is refused at compile()."""
    with pytest.raises(SchemaError, match="entry point"):
        graph_of("a").set_entry_point("ghost").compile()


def test_two_edges_that_always_hold_from_one_node_are_refused() -> None:
    """tea's model follows the first edge that holds: a second plain edge would never run."""
    graph = graph_of("a", "b", "c")
    graph.add_edge("a", "b").add_edge("a", "c")
    with pytest.raises(SchemaError, match="another to 'c' after it, which would never be taken"):
        graph.compile()


def test_add_node_names_a_function_after_itself() -> None:
    def shout(state: dict[str, Any]) -> dict[str, Any]:
        return {"said": "hi"}

    graph = tea.StateGraph()
    graph.add_node(shout)
    assert graph.compile().invoke({}) == {"said": "hi"}


def test_the_two_models_keep_to_their_own_calls() -> None:
    """A state schema means LangGraph's model, where add_parallel_edges has no place; an edge
    from several nodes needs that model; neither compiles with a checkpointer."""
    from typing import TypedDict

    class State(TypedDict):
        x: int

    with pytest.raises(SchemaError, match="add_parallel_edges belongs to tea's model"):
        tea.StateGraph(State).add_parallel_edges("a", ["b"], fan_in="c")
    with pytest.raises(SchemaError, match="needs LangGraph's model"):
        graph_of("a", "b").add_edge(["a", "b"], "a")
    with pytest.raises(SchemaError, match="no checkpointer"):
        graph_of("a").compile(checkpointer=object())
    assert tea.StateGraph(State).langgraph and not tea.StateGraph().langgraph


def test_compile_returns_each_models_runner() -> None:
    from typing import TypedDict

    from tea.compiled import CompiledStateGraph

    class State(TypedDict):
        x: int

    graph = tea.StateGraph(State)
    graph.add_node("a", lambda s: {"x": s["x"] + 1})
    graph.add_edge(tea.START, "a")
    compiled = graph.compile()
    assert isinstance(compiled, CompiledStateGraph) and compiled.graph.recursion_limit == 25
    assert compiled.invoke({"x": 1}) == {"x": 2}
    assert isinstance(graph_of("a").compile(), tea.Workflow)
