"""What travels to a host: the program (YAML files or cloudpickle), shared states by content, tasks without state."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from toy_program import ToyProgram

import tea
from executors.base import BranchTask
from remote.payload import Batch, SharedState, Traffic, program_payload, task_from_message, task_message
from tea.errors import SerializationError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _fanout_tasks(state: dict) -> list[BranchTask]:
    return [
        BranchTask(f"prepare[{t}]", t, "merge", state, index=i, target=t)
        for i, t in enumerate(["count_words", "fingerprint", "shout"])
    ]


def test_a_workflow_travels_as_its_yaml_subset_with_the_secrets_beside_it():
    program = tea.load(EXAMPLES / "parallel_fanout.yaml").branch_program({"api_key": "k-123456"})
    tasks = _fanout_tasks({"topic": "t"})
    key, message = program_payload(program, tasks)
    assert message["kind"] == "yaml" and message["entry"] == "workflow.yaml"
    assert "count_words" in message["files"]["workflow.yaml"]
    assert message["secrets"] == {"api_key": "k-123456"}
    # The key names the program, not the secrets: it is the same for another run's secrets.
    other = tea.load(EXAMPLES / "parallel_fanout.yaml").branch_program({"api_key": "other-key"})
    assert program_payload(other, tasks)[0] == key and len(key) == 16


def test_a_program_without_yaml_is_cloudpickled():
    key, message = program_payload(ToyProgram(), [BranchTask("b", "n", None, {})])
    assert message["kind"] == "pickle" and message["data"] and "secrets" not in message
    assert len(key) == 16


def test_branches_of_different_fan_outs_in_one_batch_travel_pickled():
    program = tea.load(EXAMPLES / "parallel_fanout.yaml").branch_program()
    tasks = [BranchTask("a", "count_words", "merge", {}), BranchTask("b", "shout", None, {})]
    assert program_payload(program, tasks)[1]["kind"] == "pickle"


def test_a_shared_state_is_encoded_once_per_batch_and_keyed_by_content():
    shared = {"items": list(range(100)), "name": "x"}
    tasks = [BranchTask(f"f[{i}]", "n", None, shared, index=i, overrides={"item": i}) for i in range(5)]
    batch = Batch.prepare(program_payload(ToyProgram(), tasks), tasks)
    assert len(batch.states) == 1 and len(batch.shared_states()) == 1
    encoded = batch.state_of(tasks[3])
    assert encoded is batch.state_of(tasks[0])
    assert encoded == SharedState.encode(dict(shared))  # same content, same key
    assert encoded.message().startswith('{"op":"state","key":"' + encoded.key + '","state":{"items":[0,1,')


def test_a_task_travels_without_the_shared_state():
    task = BranchTask("f[2]", "each", None, {"big": "x" * 10_000}, index=2, target="each", fanout="each",
                      attempt=3, overrides={"item": "c", "index": 2})
    message = task_message(task)
    assert "big" not in str(message) and message["overrides"] == {"item": "c", "index": 2}
    shared = {"big": "y"}
    again = task_from_message(message, shared)
    assert again.state is shared and again.initial_state() == {"big": "y", "item": "c", "index": 2}
    assert (again.branch_id, again.index, again.fanout, again.attempt) == ("f[2]", 2, "each", 3)


def test_what_json_cannot_carry_is_refused_per_branch_by_path():
    shared = {"ok": 1}
    tasks = [
        BranchTask("f[0]", "n", None, {"lock": threading.Lock()}),
        BranchTask("f[1]", "n", None, shared, overrides={"item": {1: "one"}}),
        BranchTask("f[2]", "n", None, shared, overrides={"item": (1, 2)}),
    ]
    batch = Batch.prepare(program_payload(ToyProgram(), tasks), tasks)
    with pytest.raises(SerializationError) as caught:
        batch.state_of(tasks[0])
    assert caught.value.message.startswith(
        "the state of branch f[0] cannot be sent as JSON: state['lock'] is a _thread.lock"
    )
    assert caught.value.branch == "f[0]" and "tuples arrive as lists" in str(caught.value)
    with pytest.raises(SerializationError) as caught:
        batch.state_of(tasks[1])
    assert caught.value.message.startswith("the state of branch f[1] cannot be sent as JSON: state['item'] has")
    assert batch.state_of(tasks[2]).key  # a tuple arrives as a list: accepted


def test_traffic_adds_up_per_host_from_any_thread():
    traffic = Traffic()
    threads = [threading.Thread(target=lambda: [traffic.add("h1", 1) for _ in range(1000)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    traffic.add("h2", 5)
    assert traffic.snapshot() == {"h1": 4000, "h2": 5}
