"""The registry: strategies by name, entry points, and each backend's own options."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from executors import (
    Locate,
    UnknownStrategy,
    get_executor,
    known_strategies,
    parse_options,
    register_executor,
)
from executors.testing import InlineExecutor
from executors.thread import ThreadExecutor
from tea.errors import SchemaError
from tea.yamlsrc import load_yaml, location_of


@dataclass(frozen=True)
class Options:
    slots: int


class WithOptions(InlineExecutor):
    """A backend with options of its own: ``{slots: N}``."""

    @classmethod
    def parse_options(cls, raw: Mapping[str, Any] | None, locate: Locate) -> Options | None:
        if raw is None:
            return None
        if not isinstance(raw.get("slots"), int):
            raise SchemaError("slots must be an integer", locate(raw, "slots"))
        return Options(raw["slots"])


def test_builtins_and_entry_points_are_known():
    assert {"thread", "process", "remote"} <= set(known_strategies())
    assert isinstance(get_executor("thread"), ThreadExecutor)


def test_an_unknown_strategy_lists_the_known_ones():
    with pytest.raises(UnknownStrategy, match=r"known: .*process"):
        get_executor("no-such-strategy")


def test_a_backend_parses_its_own_options():
    register_executor("with-options", WithOptions)
    raw = load_yaml("slots: 3\n", "flow.yaml")
    assert parse_options("with-options", raw, location_of) == Options(3)
    assert parse_options("with-options", None, location_of) is None
    with pytest.raises(SchemaError) as caught:
        parse_options("with-options", load_yaml("\nslots: many\n", "flow.yaml"), location_of)
    assert caught.value.location.line == 2


def test_a_backend_without_options_refuses_some():
    assert parse_options("thread", None, location_of) is None
    assert parse_options("thread", {}, location_of) is None
    with pytest.raises(SchemaError) as caught:
        parse_options("thread", load_yaml("workers: 3\n", "flow.yaml"), location_of)
    assert "the thread strategy takes no options" in caught.value.message
    assert "'workers'" in caught.value.message
    assert caught.value.location.file == "flow.yaml"
