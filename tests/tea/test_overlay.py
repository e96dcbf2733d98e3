"""tea.overlay: a branch's state costs what the branch reads, and never leaks into its siblings."""

from __future__ import annotations

import copy
import json
import pickle

import pytest

from tea.overlay import BranchState


def parent() -> dict[str, object]:
    return {"bag": [1], "n": 1, "nested": {"a": [1, 2]}, "big": list(range(1000))}


def test_reads_copy_on_first_read_and_writes_stay_in_the_overlay() -> None:
    shared = parent()
    state = BranchState(shared, {"item": 7})
    state["bag"].append(2)
    state["nested"]["a"].append(3)
    state["n"] = 5
    assert state["bag"] == [1, 2] and state["nested"] == {"a": [1, 2, 3]} and state["item"] == 7
    assert shared == parent()  # the shared input is untouched
    assert state["bag"] is state["bag"]  # copied once, then the branch's own


def test_a_key_not_read_is_never_copied() -> None:
    shared = parent()
    state = BranchState(shared, {"item": 1})
    assert "big" in state and state.get("n") == 1
    assert not dict.__contains__(state, "big")


def test_delta_holds_what_changed_only() -> None:
    shared = parent()
    state = BranchState(shared, {"item": 3})
    _ = state["big"]  # read, unchanged: not in the delta
    state["bag"].append(9)  # changed in place: in the delta
    state["new"] = "x"
    state["n"] = shared["n"]  # the same object written back: unchanged
    assert state.delta() == {"item": 3, "bag": [1, 9], "new": "x"}


def test_it_reads_like_a_dict() -> None:
    shared = parent()
    state = BranchState(shared, {"item": 1})
    expected = {**parent(), "item": 1}
    assert dict(state) == expected and {**state} == expected and state == expected
    assert json.loads(json.dumps(state)) == expected
    assert sorted(state) == sorted(expected) and len(state) == len(expected)
    assert copy.deepcopy(state) == expected and pickle.loads(pickle.dumps(state)) == expected
    assert state.setdefault("n", 2) == 1 and state.pop("item") == 1 and "item" not in state


def test_deleting_a_shared_key_hides_it_from_the_branch_only() -> None:
    shared = parent()
    state = BranchState(shared)
    del state["n"]
    assert "n" not in state and state.get("n", "gone") == "gone" and "n" in shared
    with pytest.raises(KeyError):
        state["n"]
    with pytest.raises(KeyError):
        del state["n"]


def test_a_private_view_reads_without_copying_again() -> None:
    branch = BranchState(parent())
    own = branch["big"]
    view = BranchState(branch, private=True)
    assert view["big"] is own
    view["n"] = 2
    assert view.delta() == {"n": 2} and branch["n"] == 1


def test_a_branchs_reducer_writes_leave_with_its_update_and_come_apart_again() -> None:
    from tea.overlay import WRITES_KEY, split_update
    from tea.state import get_reducer, merge

    state = BranchState({"log": ["parent"]})
    merge(state, {"log": ["one"], "x": 1}, {"log": get_reducer("append")})
    merge(state, {"log": "two"}, {"log": get_reducer("append")})
    out = state.update_out()
    assert out[WRITES_KEY] == {"log": [["one"], "two"]}
    update, writes = split_update(out)
    assert update == {"log": ["parent", "one", "two"], "x": 1}  # the final value, for records
    assert writes == {"log": [["one"], "two"]}  # what the fan-in merges
    assert split_update({"x": 1}) == ({"x": 1}, {})
