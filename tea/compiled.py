"""``CompiledStateGraph``: a graph built the LangGraph way (``StateGraph(State)``), ready to run.

The calls LangGraph programs make, with LangGraph's answers::

    graph.invoke(input, {"recursion_limit": 50})       # the final state (output keys)
    for chunk in graph.stream(input, stream_mode="updates"):   # {node: update} per task
    for chunk in graph.stream(input, stream_mode="values"):    # the state after each step
    await graph.ainvoke(input); async for chunk in graph.astream(input): ...

The supersteps run in ``tea.supersteps``; this module turns them into LangGraph's
stream chunks. The async calls run the same loop on a worker thread; async nodes and
routing functions run on the caller's event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from tea.errors import TeaError
from tea.graph import StepGraph
from tea.supersteps import LOOP, StepDone, run_steps

__all__ = ["STREAM_MODES", "CompiledStateGraph"]

STREAM_MODES = ("values", "updates")
_UNSUPPORTED = ("context", "interrupt_before", "interrupt_after", "checkpoint_during", "durability")
_IGNORED = ("debug", "print_mode")


class CompiledStateGraph:
    """A compiled graph in LangGraph's model. Immutable; ``invoke``/``stream`` may be called
    many times, from many threads at once. A compiled graph is also a node for another
    graph (its output is that node's update)."""

    def __init__(self, graph: StepGraph) -> None:
        self.graph = graph
        self.name = graph.name

    def __repr__(self) -> str:
        return f"CompiledStateGraph(name={self.name!r}, nodes={list(self.graph.nodes)!r})"

    def stream(
        self,
        input: Any,
        config: Mapping[str, Any] | None = None,
        *,
        stream_mode: str | Sequence[str] | None = None,
        output_keys: str | Sequence[str] | None = None,
        subgraphs: bool = False,
        **options: Any,
    ) -> Iterator[Any]:
        """The run's chunks: ``"updates"`` (the default) gives ``{node: update}`` per task,
        ``"values"`` the state after each step; a list of modes gives ``(mode, chunk)`` pairs."""
        _check_options(options, subgraphs)
        modes = [stream_mode or "updates"] if isinstance(stream_mode, str | None) else list(stream_mode)
        for mode in modes:
            if mode not in STREAM_MODES:
                raise ValueError(f"unknown stream mode {mode!r}; tea streams {', '.join(STREAM_MODES)}")
        keys = self._output_keys(output_keys)
        paired = not isinstance(stream_mode, str | None)
        for done in run_steps(self.graph, input, config or {}):
            for mode in modes:
                for chunk in _chunks(mode, done, keys):
                    yield (mode, chunk) if paired else chunk

    def invoke(
        self,
        input: Any,
        config: Mapping[str, Any] | None = None,
        *,
        stream_mode: str = "values",
        output_keys: str | Sequence[str] | None = None,
        **options: Any,
    ) -> Any:
        """Run to the end: the last state (``stream_mode="values"``; ``None`` when no output
        key was ever written), or the list of chunks of another mode."""
        chunks = self.stream(input, config, stream_mode=stream_mode, output_keys=output_keys, **options)
        if stream_mode != "values":
            return list(chunks)
        latest = None
        for chunk in chunks:
            latest = chunk
        return latest

    def batch(self, inputs: Sequence[Any], config: Mapping[str, Any] | None = None, **options: Any) -> list[Any]:
        """``invoke`` for each input, in order."""
        return [self.invoke(item, config, **options) for item in inputs]

    async def ainvoke(self, input: Any, config: Mapping[str, Any] | None = None, **options: Any) -> Any:
        """``invoke`` without blocking the event loop (async nodes run on it)."""
        token = LOOP.set(asyncio.get_running_loop())
        try:
            return await asyncio.to_thread(self.invoke, input, config, **options)
        finally:
            LOOP.reset(token)

    async def astream(self, input: Any, config: Mapping[str, Any] | None = None, **options: Any) -> AsyncIterator[Any]:
        """``stream`` as an async iterator (async nodes run on the caller's event loop)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()

        def produce() -> None:
            try:
                for chunk in self.stream(input, config, **options):
                    loop.call_soon_threadsafe(queue.put_nowait, ("chunk", chunk))
                    if stop.is_set():
                        break
            except BaseException as exc:  # handed to the consumer, which raises it
                loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))
            else:
                loop.call_soon_threadsafe(queue.put_nowait, ("end", None))

        token = LOOP.set(loop)
        try:
            worker = asyncio.ensure_future(asyncio.to_thread(produce))
        finally:
            LOOP.reset(token)
        try:
            while True:
                kind, item = await queue.get()
                if kind == "chunk":
                    yield item
                elif kind == "error":
                    raise item
                else:
                    break
        finally:
            stop.set()
            await worker

    def _output_keys(self, output_keys: str | Sequence[str] | None) -> str | tuple[str, ...]:
        if output_keys is None:
            return self.graph.output_keys
        return output_keys if isinstance(output_keys, str) else tuple(output_keys)


def _check_options(options: Mapping[str, Any], subgraphs: bool) -> None:
    if subgraphs:
        raise TeaError("stream(subgraphs=True) is not supported: a subgraph's chunks are not streamed apart")
    for key, value in options.items():
        if key in _IGNORED:
            continue
        if key in _UNSUPPORTED:
            if value:
                raise TeaError(f"{key}= is not supported by tea's LangGraph model",
                               hint="see docs/MIGRATING.md for what tea runs of LangGraph")
            continue
        raise TypeError(f"unexpected keyword argument '{key}'")


def _chunks(mode: str, done: StepDone, keys: str | tuple[str, ...]) -> Iterator[Any]:
    values = done.values
    if mode == "values":
        if isinstance(keys, str):
            if keys in done.written:
                yield values.get(keys)
        elif not done.written.isdisjoint(keys) or (not keys and done.written):
            yield {k: values[k] for k in (keys or values) if k in values}
        return
    for node, update in done.updates:
        if update is None:
            yield {node: None}
        elif isinstance(keys, str):
            yield {node: update.get(keys)}
        else:
            own = {k: v for k, v in update.items() if not keys or k in keys}
            yield {node: own or None}
