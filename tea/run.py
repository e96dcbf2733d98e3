"""``Run``: one execution of a graph, as a stream of events or as a final state.

``Run.stream()`` yields events as plain dicts (``start``, ``node_start``,
``node_end``, ``state``, ``branch_start``, ``branch_end``, ``interrupt``,
``error``, ``end``); ``Run.invoke()`` drains it and returns the final state.
A ``RunObserver`` (``tea.durable`` has the checkpointing one) adds what the
run does at interrupts, stops, errors, node boundaries and fan-outs.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tea.errors import InputError, TeaError
from tea.graph import Graph
from tea.io_schema import check_input, check_output
from tea.program import GraphProgram
from tea.runner import Cursor, Event, Observer, Stop, walk
from tea.secrets import Secrets
from tea.state import fast_copy
from tea.streams import STREAM_MODES, wanted_events

if TYPE_CHECKING:
    from tea.signals import StopFlag

__all__ = ["STREAM_MODES", "Run", "RunObserver"]

_DETAIL = {"updates": frozenset(), "values": frozenset({"state"}),
           "debug": frozenset({"state", "node_start"})}


class RunObserver(Observer):
    """An ``Observer`` that also sees how the run ends. The defaults only report."""

    checkpoint_path: Path | None = None
    """The checkpoint the run saved last (``None``: none, or the run does not save)."""
    listeners: tuple[Callable[[Event], None], ...] = ()
    """Called with each branch event as it happens (``Run.watch``)."""

    def stopped(self, run: Run, stop: Stop) -> Event:
        """The ``interrupt`` event for a stop (a durable run saves a checkpoint first)."""
        return {"type": "interrupt", "node": stop.node, "position": stop.position,
                "reason": stop.label, "state": dict(run.state)}

    def failed(self, run: Run, exc: TeaError) -> Event:
        """The ``error`` event for a failed run."""
        return {"type": "error", "node": getattr(exc, "node", None), "error": exc.to_dict(),
                "state": dict(run.state)}

    def finished(self, run: Run) -> None:
        """The run reached ``__end__``."""

    @property
    def watching(self) -> bool:
        return bool(self.listeners)

    def branch_event(self, event: Event) -> None:
        for listener in self.listeners:
            listener(event)


class Run:
    """One execution of a graph. Not reusable: build a new ``Run`` per execution."""

    def __init__(
        self,
        graph: Graph,
        state: Mapping[str, Any] | None = None,
        *,
        secrets: Mapping[str, Any] | None = None,
        stream_mode: str = "updates",
        observer: RunObserver | None = None,
        cursor: Cursor | None = None,
        stop_flag: StopFlag | None = None,
    ) -> None:
        if stream_mode not in STREAM_MODES:
            raise ValueError(f"unknown stream mode '{stream_mode}'; known: {', '.join(STREAM_MODES)}")
        self.graph = graph
        # initial_state is copied: a node mutating it in place must not change the next run.
        self.state: dict[str, Any] = (
            {**fast_copy(dict(graph.initial_state)), **(state or {})} if cursor is None else dict(state or {})
        )
        if cursor is None and graph.input_schema is not None:
            self.state = check_input(graph.input_schema, self.state)  # before anything starts
        # One Secrets per run: the scope, the branches and every redaction share it.
        self.secrets = secrets if isinstance(secrets, Secrets) else Secrets(secrets)
        self.mode = stream_mode
        self.observer = observer or RunObserver()
        _refuse_branch_interrupts(graph, self.observer)
        self.cursor = cursor or Cursor(graph.entry)
        self.stopped: Stop | None = None
        self.stop_flag = stop_flag
        self.run_id = uuid.uuid4().hex[:12]
        """Names this run in its events (``run_id``), checkpoints and logs."""

    def watch(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener`` with each ``branch_start``/``branch_end`` event as it happens
        (the stream yields them once their fan-out is over), redacted like the stream;
        from the thread that finished the branch: keep it quick and thread-safe."""

        def redacted(event: Event) -> None:
            listener(self.secrets.redact(event) if self.secrets else event)

        self.observer.listeners = (*self.observer.listeners, redacted)

    @property
    def checkpoint_path(self) -> Path | None:
        """Where the run's last checkpoint is (a durable run's observer saves them)."""
        return self.observer.checkpoint_path

    def stream(self) -> Iterator[Event]:
        """The run's events; a secret's value never appears in one (it reads ``***``).
        (``tea run --stream`` adds ``ts`` and ``run_id`` to each as it prints them: a
        timestamp per event would cost more than a node does.)"""
        if not self.secrets:
            yield from self._events()
            return
        for event in self._events():
            yield self.secrets.redact(event)

    def _events(self) -> Iterator[Event]:
        # A stop (SIGTERM, SIGINT) also cancels the fan-out in progress: its finished
        # branches are journaled, the others stop and run again on resume.
        stop_event = self.stop_flag.event if self.stop_flag is not None else None
        program = GraphProgram(self.graph, self.secrets)
        scope = program.scope(stop_event)
        scope.stop = self.stop_flag
        scope.warm(self.graph.strategies())  # pools boot in the background while nodes run
        wanted = wanted_events(self.mode)
        started = time.perf_counter()
        try:
            yield {"type": "start", "workflow": self.graph.name, "node": self.cursor.node,
                   "state": dict(self.state)}
            try:
                scope.preflight(self.graph.fanouts())  # e.g. remote hosts, before any node runs
                for item in walk(self.graph, scope, self.state, self.cursor,
                                 observer=self.observer, detail=_DETAIL[self.mode]):
                    if isinstance(item, Stop):
                        self.stopped = item
                        yield self.observer.stopped(self, item)
                        return
                    if wanted is None or item["type"] in wanted:
                        yield item
                if self.graph.output_schema is not None:
                    check_output(self.graph.output_schema, self.state)
            except TeaError as exc:
                yield self.observer.failed(self, exc)
                raise
            yield {"type": "end", "state": dict(self.state),
                   "duration_ms": (time.perf_counter() - started) * 1000.0}
            self.observer.finished(self)
        finally:
            scope.close()

    def invoke(self) -> dict[str, Any]:
        for _ in self.stream():
            pass
        return self.state


def _refuse_branch_interrupts(graph: Graph, observer: Observer) -> None:
    """An interrupt at a node a fan-out's branches run could never stop the run (the loader
    refuses those written in the workflow; this catches the ones given to ``run``)."""
    names = observer.interrupt_before | observer.interrupt_after
    if not names:
        return
    inside = graph.branch_nodes()
    for name in sorted(names):
        if name in inside:
            raise InputError(
                f"an interrupt at node '{name}' could not stop the run: the node runs in a branch "
                f"of the fan-out from '{inside[name]}', apart from the main path",
                hint=f"interrupt before '{inside[name]}' or at the fan-out's fan-in instead",
            )
