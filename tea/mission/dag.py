"""The dependency graph of a mission: a topological order, levels, the critical path, cycles.

Everything here works on plain ids and ``depends_on`` lists, in linear time, and
breaks ties by file order, so the same mission always gives the same plan::

    deps = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}
    make_plan(["a", "b", "c", "d"], deps)
      order          a b c d            every step after all of its dependencies
      levels         [a] [b c] [d]      depth: 0 without dependencies, else 1 + deepest dependency
      critical_path  a b d              a longest dependency chain (by number of steps)
      rank           a:3 b:2 c:2 d:1    steps on the longest chain from each step to the end

``find_cycles`` names cycles in run order (``a -> b -> c -> a``: each step must
run before the next, so none can start).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

__all__ = ["Plan", "find_cycles", "make_plan"]

_MAX_CYCLES = 10


@dataclass(frozen=True)
class Plan:
    """The order a mission's steps can run in, and what waits on what."""

    order: tuple[str, ...]
    levels: tuple[tuple[str, ...], ...]
    critical_path: tuple[str, ...]
    dependents: Mapping[str, tuple[str, ...]]
    depth: Mapping[str, int]

    @cached_property
    def rank(self) -> Mapping[str, int]:
        """Steps on the longest chain from a step to the end, itself included: the scheduler
        starts the ready step with the highest rank first (worked out when first read, as
        only a run reads it)."""
        rank: dict[str, int] = {}
        for step in reversed(self.order):
            highest = 0
            for nxt in self.dependents[step]:
                if rank[nxt] > highest:
                    highest = rank[nxt]
            rank[step] = highest + 1
        return rank

    def to_dict(self) -> dict[str, object]:
        return {
            "order": list(self.order),
            "levels": [list(level) for level in self.levels],
            "critical_path": list(self.critical_path),
        }


def _dependents(ids: Sequence[str], deps: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {i: [] for i in ids}
    for step in ids:
        for dep in deps[step]:
            if dep in out:
                out[dep].append(step)
    return out


def _generations(ids: Sequence[str], deps: Mapping[str, Sequence[str]],
                 dependents: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Kahn's algorithm, ready steps taken in file order; steps on or behind a cycle are left out.

    Taken in generations: the steps without dependencies, then the steps they made
    ready, and so on. A step is made ready by the last of its dependencies taken, a
    deepest one, so a step's generation is its depth; the generations one after the
    other are the order a queue would give.
    """
    waiting = {i: len(deps[i]) for i in ids}
    generation = [i for i in ids if not waiting[i]]
    out: list[list[str]] = []
    while generation:
        out.append(generation)
        ready: list[str] = []
        for step in generation:
            for nxt in dependents[step]:
                left = waiting[nxt] - 1
                waiting[nxt] = left
                if not left:
                    ready.append(nxt)
        generation = ready
    return out


def make_plan(ids: Sequence[str], deps: Mapping[str, Sequence[str]]) -> Plan:
    """The plan of an acyclic mission (``ids`` in file order; ``deps`` name only those ids)."""
    dependents = _dependents(ids, deps)
    generations = _generations(ids, deps, dependents)
    order = [step for generation in generations for step in generation]
    if len(order) != len(ids):
        raise ValueError("the dependencies have a cycle (find_cycles names it)")
    depth: dict[str, int] = {}
    for level, generation in enumerate(generations):
        depth.update(dict.fromkeys(generation, level))
    levels: list[list[str]] = [[] for _ in generations]
    for step in ids:
        levels[depth[step]].append(step)
    return Plan(
        order=tuple(order),
        levels=tuple(tuple(level) for level in levels),
        critical_path=_critical_path(generations, deps, depth),
        dependents={k: tuple(v) for k, v in dependents.items()},
        depth=depth,
    )


def _critical_path(generations: Sequence[Sequence[str]], deps: Mapping[str, Sequence[str]],
                   depth: Mapping[str, int]) -> tuple[str, ...]:
    """The first deepest step in the order and, back from it, each step's first deepest dependency."""
    if not generations:
        return ()
    deepest = len(generations) - 1
    cursor = generations[-1][0]
    path = [cursor]
    while deepest:
        deepest -= 1
        cursor = next(dep for dep in deps[cursor] if depth[dep] == deepest)
        path.append(cursor)
    return tuple(reversed(path))


def find_cycles(ids: Sequence[str], deps: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Cycles among ``ids`` (at most ten), each in run order and closed: ``[a, b, c, a]``.

    Empty when the dependencies are acyclic. Each cycle starts at its step that
    comes first in the file.
    """
    dependents = _dependents(ids, deps)
    remaining = set(ids).difference(*_generations(ids, deps, dependents))
    position = {step: n for n, step in enumerate(ids)}
    cycles: list[list[str]] = []
    while remaining and len(cycles) < _MAX_CYCLES:
        # Every remaining step has a remaining dependency (else Kahn would have taken
        # it), so walking dependencies from any of them must come back to a step seen.
        seen: dict[str, int] = {}
        walk: list[str] = []
        step = min(remaining, key=position.__getitem__)
        while step not in seen:
            seen[step] = len(walk)
            walk.append(step)
            step = min((d for d in deps[step] if d in remaining), key=position.__getitem__)
        loop = walk[seen[step]:]  # each step depends on the next: reverse for run order
        loop.reverse()
        first = min(range(len(loop)), key=lambda n: position[loop[n]])
        loop = loop[first:] + loop[:first]
        cycles.append([*loop, loop[0]])
        remaining -= set(loop)
        _prune(remaining, deps, dependents)
    return cycles


def _prune(remaining: set[str], deps: Mapping[str, Sequence[str]],
           dependents: Mapping[str, Sequence[str]]) -> None:
    """Drop from ``remaining`` every step no longer waiting on a remaining step."""
    queue = deque(s for s in remaining if not any(d in remaining for d in deps[s]))
    while queue:
        step = queue.popleft()
        if step not in remaining:
            continue
        remaining.discard(step)
        for nxt in dependents[step]:
            if nxt in remaining and not any(d in remaining for d in deps[nxt]):
                queue.append(nxt)
