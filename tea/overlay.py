"""``BranchState``: what a branch of a fan-out works on, at the cost of what it touches.

Every branch of a fan-out shares one input, the parent state, read-only. A
branch's state is an overlay on it: its own keys (item, index, everything it
writes) live in the overlay; a key read from the parent is copied into the
overlay on its first read (``tea.state.fast_copy``), so a branch mutating a
nested list in place changes neither its siblings nor the parent. A branch that
reads two keys of a state holding 10,000 items copies two values, not 10,000.

``delta()`` is what the branch changed: its own keys, and the keys it read whose
value no longer equals the parent's. ``writes`` (``tea.state.Tracked``) are the raw
writes of its reducer keys: ``update()`` puts them in the branch's update under
``WRITES_KEY`` and ``split_update()`` takes them out again at the fan-in, which
merges them into the parent through the reducers (a delta holds a reducer key's
final value, which already contains the parent's). It is a ``dict`` (a subclass), so node code,
templates, Lua and ``json`` see an ordinary mapping; reading *every* key (``items()``,
``dict(state)``, ``json.dumps``) copies every value, as a deep copy would.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tea.state import Tracked, Writes, fast_copy

__all__ = ["WRITES_KEY", "BranchState", "split_update"]

WRITES_KEY = "__tea_writes__"
"""The key of a branch's update that carries its reducer writes from wherever the branch
ran (a thread, a worker process, a host: the update is the only thing that travels)."""

_MISSING = object()


class BranchState(Tracked):
    """A branch's state: ``overrides`` over a read-only, shared ``parent``. One thread at a time."""

    __slots__ = ("_copied", "_deleted", "_parent", "_private")

    def __init__(
        self, parent: Mapping[str, Any], overrides: Mapping[str, Any] | None = None, *, private: bool = False
    ) -> None:
        """``private``: the parent's values already belong to this walk alone (a view over
        a branch's own state), so a read takes them as they are instead of copying."""
        super().__init__(overrides or {})
        self._parent = parent
        self._private = private
        self._copied: set[str] = set()
        self._deleted: set[str] = set()

    def _pull(self, key: str) -> Any:
        """The parent's value of ``key``, copied into the overlay (``_MISSING`` when absent)."""
        if key in self._deleted or key not in self._parent:
            return _MISSING
        if self._private:
            value = self._parent[key]
        else:
            value = fast_copy(self._parent[key])
            self._copied.add(key)
        dict.__setitem__(self, key, value)
        return value

    def __missing__(self, key: str) -> Any:
        value = self._pull(key)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        if dict.__contains__(self, key):
            return dict.__getitem__(self, key)
        value = self._pull(key)
        return default if value is _MISSING else value

    def __contains__(self, key: object) -> bool:
        if dict.__contains__(self, key):
            return True
        return key not in self._deleted and key in self._parent

    def __setitem__(self, key: str, value: Any) -> None:
        self._deleted.discard(key)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: str) -> None:
        present = key in self
        dict.pop(self, key, None)
        self._copied.discard(key)
        if not present:
            raise KeyError(key)
        if key in self._parent:
            self._deleted.add(key)

    def pop(self, key: str, *default: Any) -> Any:
        if key in self:
            value = self[key]
            del self[key]
            return value
        if default:
            return default[0]
        raise KeyError(key)

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key in self:
            return self[key]
        self[key] = default
        return default

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def _all(self) -> dict[str, Any]:
        for key in self._parent:
            if key not in self._deleted and not dict.__contains__(self, key):
                self._pull(key)
        return self

    def keys(self) -> Any:
        return dict.keys(self._all())

    def items(self) -> Any:
        return dict.items(self._all())

    def values(self) -> Any:
        return dict.values(self._all())

    def __iter__(self) -> Iterator[str]:
        return dict.__iter__(self._all())

    def __len__(self) -> int:
        return dict.__len__(self._all())

    def __eq__(self, other: object) -> bool:
        return dict.__eq__(self._all(), other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __repr__(self) -> str:
        return dict.__repr__(self._all())

    def copy(self) -> dict[str, Any]:
        return dict(self.items())

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (self.copy(),))

    def delta(self) -> dict[str, Any]:
        """What the branch changed: its own keys, and read keys whose value differs from the parent's."""
        parent, copied = self._parent, self._copied
        out = {}
        for key, value in dict.items(self):
            if key in copied:
                if value != parent[key]:
                    out[key] = value
            elif key not in parent or parent[key] is not value:
                out[key] = value
        return out

    def update_out(self) -> dict[str, Any]:
        """The branch's update as it leaves the branch: ``delta()`` plus its reducer writes."""
        out = self.delta()
        if self.writes:
            out[WRITES_KEY] = self.writes
        return out


def split_update(update: dict[str, Any]) -> tuple[dict[str, Any], Writes]:
    """A branch's update without its reducer writes, and those writes (``{}``: none)."""
    if WRITES_KEY not in update:
        return update, {}
    rest = dict(update)
    writes = rest.pop(WRITES_KEY)
    return rest, writes if isinstance(writes, dict) else {}
