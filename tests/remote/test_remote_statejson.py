"""State that would not come back from a host as it left is refused, naming branch and path."""

from __future__ import annotations

import threading

import pytest

from remote.statejson import json_check, json_problem
from tea.errors import SerializationError


def test_plain_data_and_tuples_pass():
    assert json_problem({"a": [1, 2.5, "x", None, True], "b": {"c": {"d": []}}}) is None
    assert json_problem({"pair": (1, 2), "nested": [(3, {"k": (4,)})]}) is None  # become lists


def _cycle() -> dict:
    state: dict = {"inner": {}}
    state["inner"]["back"] = state["inner"]
    return state


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({"intkeys": {1: "a"}}, "state['intkeys'] has the int key 1; JSON keys are strings, "
                                "so it would arrive as '1'"),
        ({"deep": [0, {"m": {None: 1}}]}, "state['deep'][1]['m'] has the NoneType key None"),
        ({"pairs": {(1, 2): 3}}, "state['pairs'] has the tuple key (1, 2)"),
        ({"ratio": float("nan")}, "state['ratio'] is nan"),
        ({"big": [float("inf")]}, "state['big'][0] is inf"),
        ({"tags": {"a", "b"}}, "state['tags'] is a set"),
        ({"raw": b"\x00"}, "state['raw'] is bytes"),
        ({"handle": threading.Lock()}, "state['handle'] is a _thread.lock"),
        (_cycle(), "state['inner']['back'] contains itself"),
    ],
)
def test_the_first_problem_is_named_by_its_path(state, expected):
    problem = json_problem(state)
    assert problem is not None and problem.startswith(expected)


def test_json_check_names_the_branch():
    with pytest.raises(SerializationError) as caught:
        json_check({"ok": 1, "scores": {1: 0.5}}, "the state of branch fan[3]", branch="fan[3]")
    assert caught.value.branch == "fan[3]"
    assert caught.value.message.startswith("the state of branch fan[3] cannot be sent as JSON: "
                                           "state['scores'] has the int key 1")
    assert "tuples arrive as lists" in str(caught.value)
