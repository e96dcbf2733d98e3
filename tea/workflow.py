"""``Workflow``: a loaded graph and the ways to run it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tea.durable import durable_run
from tea.graph import Graph
from tea.loader import load_graph, load_graph_text
from tea.overrides import Override
from tea.program import GraphProgram
from tea.run import Run
from tea.secrets import Secrets

if TYPE_CHECKING:
    from tea.signals import StopFlag

__all__ = ["Workflow", "load", "loads"]


class Workflow:
    """A compiled workflow. ``invoke``/``stream`` may be called many times, from many threads."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph

    @property
    def name(self) -> str:
        return self.graph.name

    @property
    def path(self) -> Path | None:
        return self.graph.path

    def branch_program(self, secrets: Mapping[str, Any] | None = None) -> GraphProgram:
        """The workflow as a ``BranchProgram`` that executors run (``secrets`` go with it)."""
        return GraphProgram(self.graph, secrets if isinstance(secrets, Secrets) else Secrets(secrets))

    def run(
        self,
        state: Mapping[str, Any] | None = None,
        *,
        secrets: Mapping[str, Any] | None = None,
        stream_mode: str = "updates",
        checkpoint: str | Path | None = None,
        checkpoint_dir: str | Path | None = None,
        interrupt_before: tuple[str, ...] | list[str] = (),
        interrupt_after: tuple[str, ...] | list[str] = (),
        force: bool = False,
        autosave: bool = False,
        stop_flag: StopFlag | None = None,
    ) -> Run:
        """A new ``Run``; with ``checkpoint``, one that resumes from it with ``state`` merged in.

        A run saves a checkpoint (in ``checkpoint_dir``, default ``.tea-checkpoints``
        beside the workflow) when it stops at an interrupt or fails; with
        ``autosave`` it also saves its progress and journals its fan-outs, so that
        even a process killed outright can be resumed (``tea run`` does this).
        ``stop_flag`` (``tea.graceful_signals()``) makes SIGTERM/SIGINT stop the run at
        its next safe point with a checkpoint.
        """
        return durable_run(
            self.graph,
            state,
            secrets=secrets,
            stream_mode=stream_mode,
            checkpoint=checkpoint,
            checkpoint_dir=checkpoint_dir,
            interrupt_before=interrupt_before,
            interrupt_after=interrupt_after,
            force=force,
            autosave=autosave,
            stop_flag=stop_flag,
        )

    def invoke(
        self,
        state: Mapping[str, Any] | None = None,
        *,
        checkpoint: str | Path | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """Run to the end (or to an interrupt) and return the final state."""
        return self.run(state, checkpoint=checkpoint, **options).invoke()

    def stream(
        self,
        state: Mapping[str, Any] | None = None,
        *,
        checkpoint: str | Path | None = None,
        **options: Any,
    ) -> Iterator[dict[str, Any]]:
        """Yield the run's events (see ``tea.run``)."""
        return self.run(state, checkpoint=checkpoint, **options).stream()


def load(path: str | Path, *, overrides: Sequence[Override] = ()) -> Workflow:
    """Load and compile the workflow YAML at ``path``; raises ``LoadError`` on any problem.

    ``overrides`` (``tea.overrides``: ``--hosts``, ``--strategy``, ``--set``, ``-C``) are
    merged onto the document before it is checked.
    """
    return Workflow(load_graph(path, overrides=overrides))


def loads(text: str, path: str | Path | None = None, *, overrides: Sequence[Override] = ()) -> Workflow:
    """Compile workflow YAML text (``path``, when given, locates relative files and errors)."""
    return Workflow(load_graph_text(text, Path(path) if path is not None else None, overrides=overrides))
