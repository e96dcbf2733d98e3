"""LangGraph programs, written as LangGraph documents them, run with only the import changed.

Each program below is a LangGraph one (the docs' own examples where there is one) with
``from langgraph.graph import StateGraph, START, END`` / ``from langgraph.types import Send``
replaced by ``from tea import ...``; each assertion is the answer LangGraph gives.
LangGraph is not installed here: the expected values are LangGraph's documented outputs
and the behaviour of its source (channels, supersteps, recursion limit).

No ``from __future__ import annotations`` here: LangGraph programs rarely use it, and the
schemas are read from annotations at run time.
"""

import asyncio
import operator
import threading
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypedDict

import pytest

import tea
from tea import END, START, Send, StateGraph
from tea.channels import InvalidUpdateError
from tea.errors import RunError, SchemaError
from tea.supersteps import GraphRecursionError


class State(TypedDict):
    aggregate: Annotated[list, operator.add]


def step(name: str, seen: list[list[str]] | None = None) -> Any:
    """A node that adds ``name`` to the aggregate (and notes what it saw)."""

    def node(state: State) -> dict[str, Any]:
        if seen is not None:
            seen.append(list(state["aggregate"]))
        return {"aggregate": [name]}

    node.__name__ = name.lower()
    return node


def fan_out_graph() -> Any:
    builder = StateGraph(State)
    for name in "abcd":
        builder.add_node(name, step(name.upper()))
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("a", "c")
    builder.add_edge("b", "d")
    builder.add_edge("c", "d")
    builder.add_edge("d", END)
    return builder.compile()


def test_edges_out_of_one_node_run_in_one_step_and_their_writes_meet_in_the_reducer() -> None:
    """The docs' fan-out: b and c run together after a; d runs once, after both."""
    seen: list[list[str]] = []
    builder = StateGraph(State)
    for name in "abcd":
        builder.add_node(name, step(name.upper(), seen))
    builder.add_edge(START, "a")
    for source, target in (("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("d", END)):
        builder.add_edge(source, target)
    assert builder.compile().invoke({"aggregate": []}) == {"aggregate": ["A", "B", "C", "D"]}
    assert seen == [[], ["A"], ["A"], ["A", "B", "C"]]  # b and c both saw the state before their step


def test_a_steps_nodes_run_at_the_same_time() -> None:
    """Two nodes of one step wait for each other: they must run concurrently."""
    barrier = threading.Barrier(2, timeout=10)

    def meet(name: str) -> Any:
        def node(state: State) -> dict[str, Any]:
            barrier.wait()
            return {"aggregate": [name]}

        return node

    builder = StateGraph(State)
    builder.add_node("left", meet("L"))
    builder.add_node("right", meet("R"))
    builder.add_edge(START, "left")
    builder.add_edge(START, "right")
    assert builder.compile().invoke({"aggregate": []}) == {"aggregate": ["L", "R"]}


def test_writes_land_in_node_name_order_whatever_the_declaration_order() -> None:
    """LangGraph applies a step's writes sorted by task (node name), not by declaration."""
    builder = StateGraph(State)
    builder.add_node("zeta", step("Z"))
    builder.add_node("alpha", step("A"))
    builder.add_edge(START, "zeta")
    builder.add_edge(START, "alpha")
    assert builder.compile().invoke({"aggregate": []}) == {"aggregate": ["A", "Z"]}


def test_stream_updates_gives_one_chunk_per_task() -> None:
    chunks = list(fan_out_graph().stream({"aggregate": []}, stream_mode="updates"))
    assert chunks == [{"a": {"aggregate": ["A"]}}, {"b": {"aggregate": ["B"]}},
                      {"c": {"aggregate": ["C"]}}, {"d": {"aggregate": ["D"]}}]
    assert list(fan_out_graph().stream({"aggregate": []})) == chunks  # "updates" is the default


def test_stream_values_gives_the_state_after_each_step() -> None:
    chunks = list(fan_out_graph().stream({"aggregate": []}, stream_mode="values"))
    assert chunks == [{"aggregate": []}, {"aggregate": ["A"]}, {"aggregate": ["A", "B", "C"]},
                      {"aggregate": ["A", "B", "C", "D"]}]


def test_stream_with_several_modes_pairs_mode_and_chunk() -> None:
    chunks = list(fan_out_graph().stream({"aggregate": []}, stream_mode=["updates", "values"]))
    assert chunks[:3] == [("values", {"aggregate": []}), ("updates", {"a": {"aggregate": ["A"]}}),
                          ("values", {"aggregate": ["A"]})]
    assert chunks[-1] == ("values", {"aggregate": ["A", "B", "C", "D"]})


def test_conditional_fan_out_to_several_nodes() -> None:
    """The docs' conditional branching: the router returns a list of nodes, all of which run."""

    class RouteState(TypedDict):
        aggregate: Annotated[list, operator.add]
        which: str

    def route_bc_or_cd(state: RouteState) -> list[str]:
        return ["b", "c"] if state["which"] == "bc" else ["c", "d"]

    builder = StateGraph(RouteState)
    for name in "abcde":
        builder.add_node(name, step(name.upper()))
    builder.add_edge(START, "a")
    builder.add_conditional_edges("a", route_bc_or_cd, ["b", "c", "d"])
    for name in "bcd":
        builder.add_edge(name, "e")
    builder.add_edge("e", END)
    graph = builder.compile()
    assert graph.invoke({"aggregate": [], "which": "bc"}) == {"aggregate": ["A", "B", "C", "E"], "which": "bc"}
    assert graph.invoke({"aggregate": [], "which": "cd"}) == {"aggregate": ["A", "C", "D", "E"], "which": "cd"}


def uneven(join: str) -> Any:
    """a fans out to b -> b_2 -> d and to c -> d: branches of different lengths."""
    builder = StateGraph(State)
    for name in ("a", "b", "b_2", "c"):
        builder.add_node(name, step(name.upper()))
    builder.add_node("d", step("D"), defer=join == "defer")
    builder.add_edge(START, "a")
    for source, target in (("a", "b"), ("a", "c"), ("b", "b_2"), ("d", END)):
        builder.add_edge(source, target)
    if join == "wait":
        builder.add_edge(["b_2", "c"], "d")
    else:
        builder.add_edge("b_2", "d")
        builder.add_edge("c", "d")
    return builder.compile()


def test_uneven_branches_run_their_common_node_once_per_arrival() -> None:
    """Without a waiting edge, d runs after c (step 3) and again after b_2 (step 4)."""
    assert uneven("none").invoke({"aggregate": []}) == {"aggregate": ["A", "B", "C", "B_2", "D", "D"]}


def test_a_waiting_edge_runs_its_target_once_all_sources_ran() -> None:
    """add_edge(["b_2", "c"], "d"): d waits for both."""
    assert uneven("wait").invoke({"aggregate": []}) == {"aggregate": ["A", "B", "C", "B_2", "D"]}


def test_a_deferred_node_waits_until_nothing_else_is_left() -> None:
    """add_node(d, defer=True): d runs once, when the other branches are done."""
    assert uneven("defer").invoke({"aggregate": []}) == {"aggregate": ["A", "B", "C", "B_2", "D"]}


class OverallState(TypedDict):
    topic: str
    subjects: list
    jokes: Annotated[list, operator.add]
    best_selected_joke: str


class JokeState(TypedDict):
    subject: str


def map_reduce_graph() -> Any:
    """The docs' map-reduce: one Send per subject, each with its own input."""

    def generate_topics(state: OverallState) -> dict[str, Any]:
        return {"subjects": ["lions", "elephants", "penguins"]}

    def generate_joke(state: JokeState) -> dict[str, Any]:
        joke_map = {"lions": "Why don't lions like fast food? Because they can't catch it!",
                    "elephants": "Why don't elephants use computers? They're afraid of the mouse!",
                    "penguins": "Why don't penguins like talking to strangers at parties? "
                                "Because they find it hard to break the ice."}
        return {"jokes": [joke_map[state["subject"]]]}

    def continue_to_jokes(state: OverallState) -> list[Send]:
        return [Send("generate_joke", {"subject": s}) for s in state["subjects"]]

    def best_joke(state: OverallState) -> dict[str, Any]:
        return {"best_selected_joke": "penguins"}

    builder = StateGraph(OverallState)
    builder.add_node("generate_topics", generate_topics)
    builder.add_node("generate_joke", generate_joke)
    builder.add_node("best_joke", best_joke)
    builder.add_edge(START, "generate_topics")
    builder.add_conditional_edges("generate_topics", continue_to_jokes, ["generate_joke"])
    builder.add_edge("generate_joke", "best_joke")
    builder.add_edge("best_joke", END)
    return builder.compile()


def test_send_maps_a_node_over_its_arguments_and_the_reducer_gathers_them() -> None:
    final = map_reduce_graph().invoke({"topic": "animals"})
    assert final["subjects"] == ["lions", "elephants", "penguins"]
    assert [j.split()[2] for j in final["jokes"]] == ["lions", "elephants", "penguins"]  # Send order
    assert final["best_selected_joke"] == "penguins"
    assert list(final) == ["topic", "subjects", "jokes", "best_selected_joke"]


def test_send_tasks_stream_under_their_node_name() -> None:
    names = [next(iter(chunk)) for chunk in map_reduce_graph().stream({"topic": "animals"})]
    assert names == ["generate_topics", "generate_joke", "generate_joke", "generate_joke", "best_joke"]


def loop_graph() -> Any:
    """The docs' loop: a and b alternate until the aggregate holds seven items."""

    def route(state: State) -> Literal["b", "__end__"]:
        return "b" if len(state["aggregate"]) < 7 else END

    builder = StateGraph(State)
    builder.add_node(step("A"))
    builder.add_node(step("B"))
    builder.add_edge(START, "a")
    builder.add_conditional_edges("a", route)
    builder.add_edge("b", "a")
    return builder.compile()


def test_a_loop_ends_on_its_condition() -> None:
    assert loop_graph().invoke({"aggregate": []}) == {"aggregate": ["A", "B", "A", "B", "A", "B", "A"]}


def test_recursion_limit_in_the_config() -> None:
    with pytest.raises(GraphRecursionError, match="Recursion limit of 4 reached"):
        loop_graph().invoke({"aggregate": []}, {"recursion_limit": 4})
    with pytest.raises(RecursionError):  # LangGraph's GraphRecursionError is a RecursionError too
        loop_graph().invoke({"aggregate": []}, {"recursion_limit": 4})


def test_the_recursion_limit_counts_steps_as_langgraph_does() -> None:
    """The input's step counts: three nodes in a row need a limit of four."""
    builder = StateGraph(State)
    builder.add_sequence([step("A"), step("B"), step("C")])
    builder.add_edge(START, "a")
    graph = builder.compile()
    assert graph.invoke({"aggregate": []}, {"recursion_limit": 4}) == {"aggregate": ["A", "B", "C"]}
    with pytest.raises(GraphRecursionError):
        graph.invoke({"aggregate": []}, {"recursion_limit": 3})


def test_conditional_edges_with_a_path_map_and_a_conditional_entry() -> None:
    class Number(TypedDict):
        n: int
        path: Annotated[list, operator.add]

    builder = StateGraph(Number)
    builder.add_node("small", lambda s: {"path": ["small"]})
    builder.add_node("big", lambda s: {"path": ["big"]})
    builder.set_conditional_entry_point(lambda s: s["n"] > 10, {True: "big", False: "small"})
    builder.set_finish_point("small")
    builder.add_conditional_edges("big", lambda s: "done", {"done": END})
    graph = builder.compile()
    assert graph.invoke({"n": 50}) == {"n": 50, "path": ["big"]}
    assert graph.invoke({"n": 1}) == {"n": 1, "path": ["small"]}


def test_a_router_reads_the_state_with_its_own_nodes_writes() -> None:
    class Counter(TypedDict):
        n: int

    builder = StateGraph(Counter)
    builder.add_node("inc", lambda s: {"n": s["n"] + 1})
    builder.add_edge(START, "inc")
    builder.add_conditional_edges("inc", lambda s: "inc" if s["n"] < 5 else END)
    assert builder.compile().invoke({"n": 0}) == {"n": 5}


class SubgraphState(TypedDict):
    foo: str
    bar: str


class ParentState(TypedDict):
    foo: str


def test_a_compiled_graph_is_a_node() -> None:
    """The docs' subgraph with a shared key: its output is the node's update."""

    def subgraph_node_1(state: SubgraphState) -> dict[str, Any]:
        return {"bar": "bar"}

    def subgraph_node_2(state: SubgraphState) -> dict[str, Any]:
        return {"foo": state["foo"] + state["bar"]}

    sub = StateGraph(SubgraphState)
    sub.add_node(subgraph_node_1)
    sub.add_node(subgraph_node_2)
    sub.add_edge(START, "subgraph_node_1")
    sub.add_edge("subgraph_node_1", "subgraph_node_2")
    subgraph = sub.compile()

    builder = StateGraph(ParentState)
    builder.add_node("node_1", lambda s: {"foo": "hi! " + s["foo"]})
    builder.add_node("node_2", subgraph)
    builder.add_edge(START, "node_1")
    builder.add_edge("node_1", "node_2")
    assert builder.compile().invoke({"foo": "foo"}) == {"foo": "hi! foobar"}


def test_a_node_returning_none_changes_nothing() -> None:
    class Pair(TypedDict):
        x: int
        y: int

    builder = StateGraph(Pair)
    builder.add_node("quiet", lambda s: None)
    builder.add_node("loud", lambda s: {"y": 2})
    builder.add_edge(START, "quiet")
    builder.add_edge("quiet", "loud")
    graph = builder.compile()
    assert graph.invoke({"x": 1}) == {"x": 1, "y": 2}
    assert list(graph.stream({"x": 1})) == [{"quiet": None}, {"loud": {"y": 2}}]


def reducer(a: list, b: int | None) -> list:
    """The reducer of LangGraph's StateGraph docstring."""
    if b is not None:
        return a + [b]  # noqa: RUF005 - as LangGraph's docstring writes it
    return a


class Logistic(TypedDict):
    x: Annotated[list, reducer]


def test_a_custom_reducer_sees_the_types_empty_value_on_the_first_write() -> None:
    """LangGraph's own docstring example: the input 0.5 is reduced onto [] (list())."""

    def node(state: Logistic, config: dict[str, Any]) -> dict[str, Any]:
        r = config["configurable"].get("r", 1.0)
        x = state["x"][-1]
        return {"x": x * r * (1 - x)}

    graph = StateGraph(Logistic)
    graph.add_node("A", node)
    graph.set_entry_point("A")
    graph.set_finish_point("A")
    compiled = graph.compile()
    assert compiled.invoke({"x": 0.5}, {"configurable": {"r": 3.0}}) == {"x": [0.5, 0.75]}


def test_a_reducer_without_an_empty_value_keeps_the_first_write_as_it_is() -> None:
    calls: list[tuple[Any, Any]] = []

    def longest(old: str | None, new: str | None) -> str | None:
        calls.append((old, new))
        return max(old or "", new or "", key=len)

    class Words(TypedDict):
        word: Annotated[str | None, longest]

    builder = StateGraph(Words)
    builder.add_node("say", lambda s: {"word": "tea"})
    builder.add_edge(START, "say")
    assert builder.compile().invoke({"word": "hi"}) == {"word": "tea"}
    assert calls == [("hi", "tea")]  # the input was stored as it was; no placeholder ever seen


def test_a_reducer_key_is_in_the_state_from_the_start() -> None:
    """A key with a reducer and a buildable type starts at its empty value."""

    class Mixed(TypedDict):
        items: Annotated[list, operator.add]
        total: Annotated[int, operator.add]
        name: str

    builder = StateGraph(Mixed)
    builder.add_node("name", lambda s: {"name": f"{len(s['items'])}/{s['total']}"})
    builder.add_edge(START, "name")
    assert builder.compile().invoke({}) == {"items": [], "total": 0, "name": "0/0"}


def test_two_writes_of_a_key_without_a_reducer_in_one_step_are_an_error() -> None:
    class Plain(TypedDict):
        value: str

    builder = StateGraph(Plain)
    builder.add_node("a", lambda s: {"value": "a"})
    builder.add_node("b", lambda s: {"value": "b"})
    builder.add_edge(START, "a")
    builder.add_edge(START, "b")
    with pytest.raises(InvalidUpdateError, match="At key 'value': Can receive only one value per step"):
        builder.compile().invoke({"value": ""})


def test_keys_outside_the_schema_are_dropped() -> None:
    class Small(TypedDict):
        kept: int

    builder = StateGraph(Small)
    builder.add_node("n", lambda s: {"kept": s["kept"] + 1, "stray": True})
    builder.add_edge(START, "n")
    assert builder.compile().invoke({"kept": 1, "extra": "x"}) == {"kept": 2}


class InputState(TypedDict):
    user_input: str


class OutputState(TypedDict):
    graph_output: str


class Overall(TypedDict):
    foo: str
    user_input: str
    graph_output: str


class PrivateState(TypedDict):
    bar: str


def node_1(state: InputState) -> Overall:
    return {"foo": state["user_input"] + " name"}  # type: ignore[typeddict-item]


def node_2(state: Overall) -> PrivateState:
    return {"bar": state["foo"] + " is"}


def node_3(state: PrivateState) -> OutputState:
    return {"graph_output": state["bar"] + " Lance"}


@pytest.mark.parametrize("keywords", [{"input_schema": InputState, "output_schema": OutputState},
                                      {"input": InputState, "output": OutputState}])
def test_input_output_and_private_schemas(keywords: dict[str, Any]) -> None:
    """The docs' multiple schemas: node_3 reads a private key only its input schema declares."""
    builder = StateGraph(Overall, **keywords)
    builder.add_node("node_1", node_1)
    builder.add_node("node_2", node_2)
    builder.add_node("node_3", node_3)
    builder.add_edge(START, "node_1")
    builder.add_edge("node_1", "node_2")
    builder.add_edge("node_2", "node_3")
    builder.add_edge("node_3", END)
    assert builder.compile().invoke({"user_input": "My"}) == {"graph_output": "My name is Lance"}


@dataclass
class DataState:
    count: int = 0
    seen: Annotated[list, operator.add] = field(default_factory=list)


def test_a_dataclass_state_reaches_nodes_as_an_instance() -> None:
    def bump(state: DataState) -> dict[str, Any]:
        return {"count": state.count + 1, "seen": [state.count]}

    builder = StateGraph(DataState)
    builder.add_node("bump", bump)
    builder.add_edge(START, "bump")
    assert builder.compile().invoke({"count": 1}) == {"count": 2, "seen": [1]}


def test_a_nodes_exception_reaches_the_caller_unchanged() -> None:
    def broken(state: State) -> dict[str, Any]:
        raise ValueError("no tea")

    builder = StateGraph(State)
    builder.add_node("broken", broken)
    builder.add_edge(START, "broken")
    with pytest.raises(ValueError, match="no tea") as caught:
        builder.compile().invoke({"aggregate": []})
    assert "During task with name 'broken'" in caught.value.__notes__[0]


def test_async_nodes_with_ainvoke_and_astream() -> None:
    async def slow(state: State) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"aggregate": ["async"]}

    builder = StateGraph(State)
    builder.add_node("slow", slow)
    builder.add_node("fast", step("sync"))
    builder.add_edge(START, "slow")
    builder.add_edge("slow", "fast")
    graph = builder.compile()

    async def main() -> tuple[Any, list[Any]]:
        final = await graph.ainvoke({"aggregate": []})
        chunks = [chunk async for chunk in graph.astream({"aggregate": []}, stream_mode="values")]
        return final, chunks

    final, chunks = asyncio.run(main())
    assert final == {"aggregate": ["async", "sync"]}
    assert chunks[-1] == final and len(chunks) == 3


def test_compile_refuses_a_graph_without_an_entry_point() -> None:
    builder = StateGraph(State)
    builder.add_node("a", step("A"))
    with pytest.raises(SchemaError, match="Graph must have an entrypoint"):
        builder.compile()


def test_a_router_naming_no_node_is_an_error_naming_the_source() -> None:
    builder = StateGraph(State)
    builder.add_node("a", step("A"))
    builder.add_edge(START, "a")
    builder.add_conditional_edges("a", lambda s: "nowhere")
    with pytest.raises(RunError, match="'nowhere', which is not a node") as caught:
        builder.compile().invoke({"aggregate": []})
    assert caught.value.node == "a"


def test_a_langgraph_graph_is_a_node_of_a_tea_graph() -> None:
    """tea's own model (no schema) can call a LangGraph-model graph like a function."""
    outer = tea.StateGraph()
    outer.add_node("fan", fan_out_graph())
    assert outer.compile().invoke({"aggregate": []})["aggregate"] == ["A", "B", "C", "D"]


def test_send_is_langgraphs() -> None:
    send = Send("joke", {"subject": "tea"})
    assert (send.node, send.arg) == ("joke", {"subject": "tea"})
    assert send == Send("joke", {"subject": "tea"})
    assert repr(send) == "Send(node='joke', arg={'subject': 'tea'})"


def test_a_node_taking_config_gets_langgraphs_defaults() -> None:
    class Box(TypedDict):
        seen: dict

    def look(state: Box, config: dict[str, Any]) -> dict[str, Any]:
        return {"seen": {"configurable": config["configurable"], "limit": config["recursion_limit"]}}

    builder = StateGraph(Box)
    builder.add_node("look", look)
    builder.add_edge(START, "look")
    assert builder.compile().invoke({}) == {"seen": {"configurable": {}, "limit": 25}}


def test_what_tea_does_not_run_is_refused_not_ignored() -> None:
    """Each LangGraph feature tea lacks fails with a message saying so."""
    builder = StateGraph(State)
    builder.add_node("a", step("A"))
    builder.add_edge(START, "a")
    with pytest.raises(SchemaError, match="no checkpointer"):
        builder.compile(checkpointer=object())
    with pytest.raises(SchemaError, match="no checkpointer and no interrupts"):
        builder.compile(interrupt_before=["a"])
    with pytest.raises(SchemaError, match="does not support retry_policy"):
        StateGraph(State).add_node("b", step("B"), retry_policy=object())
    graph = builder.compile()
    with pytest.raises(ValueError, match="unknown stream mode 'debug'"):
        list(graph.stream({"aggregate": []}, stream_mode="debug"))
    with pytest.raises(tea.TeaError, match="subgraphs=True"):
        list(graph.stream({"aggregate": []}, subgraphs=True))
    with pytest.raises(tea.TeaError, match="interrupt_before= is not supported"):
        graph.invoke({"aggregate": []}, interrupt_before=["a"])
