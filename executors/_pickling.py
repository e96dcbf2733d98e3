"""What crosses the process boundary, and the error when something cannot.

Both sides of the ``process`` strategy use it: the driver pickles the program, the
fan-out's shared input (once, keyed by ``content_key``) and each task's overrides;
a worker pickles each branch's update. A value that cannot be pickled becomes a
``SerializationError`` naming the state key at fault (``db.conn``, ``jobs[1].lock``).
Kept light on imports: the forkserver preloads it into every worker.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Iterator, Mapping
from typing import Any

import cloudpickle

from tea.errors import SerializationError

__all__ = ["content_key", "dumps", "serialization_error", "unpicklable_path"]

# How deep the search for an unpicklable value goes (a bound, since objects may hold cycles).
_SEARCH_DEPTH = 16


def dumps(value: Any) -> bytes:
    """Pickle ``value`` as it crosses the process boundary (cloudpickle: code travels by value)."""
    data: bytes = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return data


def content_key(data: bytes) -> str:
    """A key for pickled ``data`` that only equal content shares (workers cache by it)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def unpicklable_path(state: Mapping[str, Any]) -> tuple[str, BaseException] | None:
    """The path of the first value in ``state`` that cannot be pickled, and why.

    The path goes through mappings (``db.conn``), lists and tuples (``items[2]``)
    and objects' attributes (``client.lock``) down to the innermost culprit.
    """
    return _find_unpicklable(state, "", _SEARCH_DEPTH)


def _find_unpicklable(value: Any, path: str, depth: int) -> tuple[str, BaseException] | None:
    for where, child in _children(value, path):
        try:
            dumps(child)
        except Exception as exc:
            inner = _find_unpicklable(child, where, depth - 1) if depth > 0 else None
            return inner or (where, exc)
    return None


def _children(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, child in value.items():
            yield (f"{path}.{key}" if path else str(key)), child
    elif isinstance(value, list | tuple):
        for index, child in enumerate(value):
            yield f"{path}[{index}]", child
    else:
        # Only a guess at what pickling an object sends (it may define __getstate__),
        # but a good one: a lock or a socket held in an attribute.
        attributes = getattr(value, "__dict__", None)
        if isinstance(attributes, dict):
            for name, child in attributes.items():
                yield f"{path}.{name}", child


def serialization_error(
    branch_id: str, state: Mapping[str, Any], exc: BaseException, what: str
) -> SerializationError:
    """A ``SerializationError`` naming the key of ``state`` that cannot be pickled, and the
    branch; ``what`` says whose state it is ("the fan-out's shared input")."""
    found = unpicklable_path(state)
    path, cause = found if found is not None else ("<state>", exc)
    return SerializationError(
        f"state key '{path}' of {what} cannot be pickled ({type(cause).__name__}: {cause})",
        branch=branch_id,
        hint="only picklable values (plain data, or objects cloudpickle can copy) cross "
        "to a worker process; drop the key before the fan-out, or use parallel_strategy: thread",
    )
