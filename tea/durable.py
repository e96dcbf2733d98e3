"""Runs that lose nothing: interrupts, checkpoints, journaled fan-outs and resume.

A durable run is a ``Run`` whose observer (``DurableObserver``) saves a checkpoint (``tea.checkpoint``)
when it stops at an interrupt, fails, or is asked to stop by a signal, and that
journals every finished branch of a fan-out, so that ``resume`` continues where
the run left off and re-runs only the branches that had not finished.
With ``autosave`` it also saves a progress checkpoint at node boundaries (at
most every ``config.checkpoint_interval_seconds``, default 0.1 s, so a long
chain of fast nodes does not pay a file write per node), so a run killed with
SIGKILL resumes from a recent finished node; the nodes after it run again.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from executors.base import BranchResult
from tea.checkpoint import Checkpoint, ensure_same_workflow, load_checkpoint, save_checkpoint
from tea.errors import CheckpointError, InputError, RunError, TeaError
from tea.fanout import Journal
from tea.graph import Graph
from tea.journal import BranchJournal
from tea.run import Run, RunObserver
from tea.runner import Cursor, Event, Stop

if TYPE_CHECKING:
    from tea.signals import StopFlag

__all__ = ["DEFAULT_DIR_NAME", "DurableObserver", "default_checkpoint_dir", "durable_run"]

log = logging.getLogger("tea.checkpoint")

DEFAULT_DIR_NAME = ".tea-checkpoints"
DEFAULT_INTERVAL = 0.1


def default_checkpoint_dir(graph: Graph, override: str | Path | None = None) -> Path:
    """``override`` (``--checkpoint-dir``), else ``config.checkpoint_dir``, else
    ``.tea-checkpoints``; a relative directory is relative to the workflow file."""
    base = graph.workflow_dir
    configured = override if override is not None else graph.config.get("checkpoint_dir")
    if configured:
        path = Path(configured)
        return path if path.is_absolute() else base / path
    return base / DEFAULT_DIR_NAME


class DurableObserver(RunObserver):
    """Checkpoints where the run stops or fails, saves progress, and journals fan-outs."""

    def __init__(
        self,
        graph: Graph,
        *,
        checkpoint_dir: Path,
        before: frozenset[str],
        after: frozenset[str],
        resumed_from: Checkpoint | None = None,
        autosave: bool = False,
    ) -> None:
        self.graph = graph
        self.interrupt_before = before
        self.interrupt_after = after
        self.checkpoint_dir = checkpoint_dir
        self._owns_dir = not checkpoint_dir.exists() or checkpoint_dir.name == DEFAULT_DIR_NAME
        self.autosave = autosave
        self.interval = float(graph.config.get("checkpoint_interval_seconds", DEFAULT_INTERVAL))  # checked at load
        self.saved_at = float("-inf")
        self.resumed_from = resumed_from
        self.checkpoint_path: Path | None = None
        self._journals: dict[str, BranchJournal] = {}
        self.fanout_pending: dict[str, Any] | None = None
        """The fan-out in progress (its node and journal), for a checkpoint saved during it."""
        self._warned = False
        self.resumed_dir = checkpoint_dir
        """Where the checkpoint this run resumes lives (its fan-out journal is beside it)."""
        self.run_id = uuid.uuid4().hex[:12]
        self._run: Run | None = None

    @property
    def run(self) -> Run:
        assert self._run is not None, "DurableObserver.bind(run) first"
        return self._run

    def bind(self, run: Run) -> None:
        self._run = run
        self.run_id = run.run_id

    def stop_requested(self) -> int | None:
        flag = self.run.stop_flag
        return flag.requested if flag is not None else None

    def node_done(self, node: str) -> None:
        if self.autosave and time.monotonic() - self.saved_at >= self.interval:
            self.try_save(node, "after", "progress")

    def journal(self, fanout: str) -> Journal | None:
        resumed = self.resumed_from
        journal: BranchJournal | None = None
        redact = self.run.secrets.redact
        if resumed is not None and resumed.pending_fanout and resumed.pending_fanout.get("node") == fanout:
            journal = BranchJournal(self.resumed_dir / resumed.pending_fanout["journal"], redact=redact)
            self.resumed_from = None
        if journal is None:
            if not self.autosave:
                return None  # nothing could resume this fan-out: no journal to keep
            # Held in memory until a checkpoint names it (see _FanoutJournal).
            journal = BranchJournal.new(self.checkpoint_dir, fanout, redact=redact, held=self.interval > 0)
        pending = {"node": fanout, "journal": journal.path.name}
        journal.on_error = lambda exc: self._warn(fanout, exc)
        self._journals[fanout] = journal
        self.fanout_pending = pending
        if not self.autosave:
            return journal
        position = "before" if self.run.cursor.position == "before" else "after"
        if self.interval <= 0:
            self.try_save(fanout, position, "fanout", pending=pending)
            return journal
        return _FanoutJournal(journal, lambda: self._save_fanout(fanout, position, pending), self.interval)

    def _save_fanout(self, fanout: str, position: str, pending: dict[str, Any]) -> None:
        if self.fanout_pending is pending:
            self._journals[fanout].persist()
            self.try_save(fanout, position, "fanout", pending=pending)

    def fanout_done(self, fanout: str) -> None:
        self.fanout_pending = None

    def save(self, node: str, position: str, reason: str, error: dict[str, Any] | None = None,
             pending: dict[str, Any] | None = None) -> Path:
        """Save where the run is; the run's previous checkpoint is replaced."""
        run = self.run
        ckpt = Checkpoint(
            workflow_hash=self.graph.key,
            workflow_path=str(self.graph.path) if self.graph.path else None,
            node=node,
            position=position,
            reason=reason,
            state=dict(run.state),
            step=run.cursor.step,
            pending_fanout=pending,
            error=error,
            extra={
                # results as deltas: a checkpoint does not grow with the fan-out's width
                "pending": {k: [r.to_dict() for r in v] for k, v in run.cursor.pending.items()},
                "run_id": self.run_id,
                # a resumed run keeps the interrupts this run was started with
                "interrupt_before": sorted(self.interrupt_before),
                "interrupt_after": sorted(self.interrupt_after),
            },
        )
        # Automatic checkpoints (progress, a fan-out starting) are SIGKILL insurance: whole
        # after any kill (the rename is atomic), not synced. Interrupts, errors and stops sync.
        automatic = reason in ("progress", "fanout")
        path = save_checkpoint(
            self.checkpoint_dir, ckpt, redact=run.secrets.redact,
            name=f"run-{self.run_id}-progress" if reason == "progress" else None, sync=not automatic,
        )
        self.saved_at = time.monotonic()
        previous = self.checkpoint_path
        self.checkpoint_path = path
        if previous is not None and previous != path:
            previous.unlink(missing_ok=True)
        return path

    def stopped(self, run: Run, stop: Stop) -> Event:
        if self.fanout_pending is not None:  # the stop checkpoint names the fan-out's journal
            self._journals[self.fanout_pending["node"]].persist()
        reason = "signal" if stop.reason == "signal" else stop.reason
        try:
            path = self.save(stop.node, stop.position, reason, pending=self.fanout_pending)
        except CheckpointError as exc:
            raise RunError(f"stopped {stop.position} node '{stop.node}' but {exc.message}", node=stop.node,
                           hint="keep the state to plain JSON data (dicts, lists, strings, numbers)") from exc
        return {"type": "interrupt", "node": stop.node, "position": stop.position,
                "reason": stop.label, "checkpoint": str(path), "state": dict(run.state)}

    def failed(self, run: Run, exc: TeaError) -> Event:
        node = run.cursor.node
        # When the state cannot be saved here, the last checkpoint that could is the resume point.
        self.try_save(node, run.cursor.position, "error", error=exc.to_dict())
        path = self.checkpoint_path
        return {"type": "error", "node": getattr(exc, "node", None) or node, "error": exc.to_dict(),
                "checkpoint": str(path) if path else None, "state": dict(run.state)}

    def finished(self, run: Run) -> None:
        """A finished run leaves nothing behind: its checkpoints and journals go."""
        for journal in self._journals.values():
            journal.remove()
        if self.checkpoint_path is not None:
            self.checkpoint_path.unlink(missing_ok=True)
            self.checkpoint_path = None
        if self._owns_dir:
            with contextlib.suppress(OSError):
                self.checkpoint_dir.rmdir()  # only when empty

    def try_save(self, node: str, position: str, reason: str, **extra: Any) -> Path | None:
        """``save``, but a state that cannot be saved only costs resumability: warn once."""
        try:
            return self.save(node, position, reason, **extra)
        except CheckpointError as exc:
            self._warn(node, exc)
            return None

    def _warn(self, node: str, exc: CheckpointError) -> None:
        if not self._warned:
            self._warned = True
            log.warning("cannot checkpoint this run at node '%s' (%s); it goes on, but cannot "
                        "be resumed from here until its state is plain JSON data", node, exc.message)


def durable_run(
    graph: Graph,
    state: Mapping[str, Any] | None,
    *,
    checkpoint: str | Path | None = None,
    checkpoint_dir: str | Path | None = None,
    interrupt_before: tuple[str, ...] | list[str] = (),
    interrupt_after: tuple[str, ...] | list[str] = (),
    force: bool = False,
    stop_flag: StopFlag | None = None,
    autosave: bool = False,
    **options: Any,
) -> Run:
    """A run of ``graph``; from ``checkpoint`` when given, with ``state`` merged as the update."""
    for name in (*interrupt_before, *interrupt_after):
        if name not in graph.nodes:
            raise InputError(f"interrupt names unknown node '{name}'",
                             hint=f"known nodes: {', '.join(graph.nodes)}")
    before = graph.interrupt_before | frozenset(interrupt_before)
    after = graph.interrupt_after | frozenset(interrupt_after)
    directory = default_checkpoint_dir(graph, checkpoint_dir)
    if checkpoint is None:
        observer = DurableObserver(graph, checkpoint_dir=directory, before=before, after=after,
                                   autosave=autosave)
        return _bound(Run(graph, state, observer=observer, stop_flag=stop_flag, **options), observer)
    ckpt = load_checkpoint(Path(checkpoint))
    ensure_same_workflow(ckpt, graph.source_text, force=force)
    if ckpt.node not in graph.nodes and ckpt.node != "__start__":
        raise CheckpointError(f"the checkpoint stops at node '{ckpt.node}', which this workflow lacks")
    if state is not None and not isinstance(state, Mapping):
        raise InputError("the resume update must be a JSON object")
    merged = {**ckpt.state, **(state or {})}
    before |= frozenset(n for n in ckpt.extra.get("interrupt_before", ()) if n in graph.nodes)
    after |= frozenset(n for n in ckpt.extra.get("interrupt_after", ()) if n in graph.nodes)
    try:
        pending = {
            k: [BranchResult.from_dict(r, base=merged) for r in v]
            for k, v in (ckpt.extra.get("pending") or {}).items()
        }
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {checkpoint} is malformed: a pending branch result: {exc}") from exc
    cursor = Cursor(ckpt.node, ckpt.position, ckpt.step, pending, skip_interrupt=ckpt.position == "before")
    if ckpt.reason == "fanout" and ckpt.position == "after":
        cursor.position = "after"
    # A resumed run writes beside the checkpoint it resumes, unless told otherwise.
    resume_dir = Path(checkpoint).parent
    if checkpoint_dir is not None:
        resume_dir = default_checkpoint_dir(graph, checkpoint_dir)
    observer = DurableObserver(graph, checkpoint_dir=resume_dir, before=before, after=after,
                               resumed_from=ckpt, autosave=autosave)
    observer.resumed_dir = Path(checkpoint).parent
    if ckpt.reason in ("progress", "fanout"):
        # An automatic checkpoint is taken over: the resumed run's next one replaces it.
        # Interrupt, error and signal checkpoints stay, so a resume can be tried again.
        observer.checkpoint_path = Path(checkpoint)
    run = Run(graph, merged, observer=observer, cursor=cursor, stop_flag=stop_flag, **options)
    return _bound(run, observer)


def _bound(run: Run, observer: DurableObserver) -> Run:
    observer.bind(run)
    return run


class _FanoutJournal:
    """A fan-out's journal that saves the checkpoint naming it once the fan-out has run for
    the progress interval, as a branch finishes (on the thread that collects the results).

    A fan-out quicker than that needs no checkpoint of its own, and its journal never
    touches the disk: a SIGKILL during it resumes from the last progress checkpoint and
    runs the fan-out again; a stop saves a checkpoint (and the journal) at once.
    """

    def __init__(self, journal: BranchJournal, save: Callable[[], None], interval: float) -> None:
        self.journal = journal
        self._save: Callable[[], None] | None = save
        self._due = time.monotonic() + interval

    def done(self) -> Mapping[str, BranchResult]:
        return self.journal.done()

    def record(self, result: BranchResult) -> None:
        if self._save is not None and time.monotonic() >= self._due:
            save, self._save = self._save, None
            save()
        self.journal.record(result)

    def commit(self) -> None:
        self.journal.commit()
