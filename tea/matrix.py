"""``strategy: {matrix}`` and ``parallel_each`` nodes → a dynamic ``FanOut`` (part of loading).

The reference's two other fan-out forms run the node's own body once per branch:

* ``strategy: {matrix: {k: [...]}, max_parallel, fail_fast}`` + ``fan_in``: one branch
  per combination of the matrix values (their cartesian product, in order), which
  sees the combination as ``state.matrix``;
* ``parallel_each: "{{ expr }}"`` + ``fan_in`` (+ ``max_workers``): one branch per
  item, which sees ``item`` and ``item_index``.

Both compile onto tea's dynamic fan-out (``FanOut`` with an ``ItemSpec``; a matrix is
a dynamic fan-out over a list fixed at load), so they run on every strategy, with
the workflow's ``settings.parallel``. Each branch's record is the reference's:
``{matrix, index, result}`` or ``{item, index, result}``, ``result`` being what the
body returned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from itertools import product
from typing import TYPE_CHECKING, Any

from tea.errors import SchemaError
from tea.graph import FanOut, ItemSpec
from tea.keys import check_keys
from tea.nodes import run_body
from tea.templates import compile_value
from tea.yamlsrc import location_of

if TYPE_CHECKING:
    from tea.scope import Scope

__all__ = ["MATRIX_KEYS", "ItemResult", "each_fanout", "is_each_node"]

MATRIX_KEYS = frozenset({"matrix", "max_parallel", "fail_fast"})

CompileBody = Callable[[Mapping[str, Any], Any, str], Any]


class ItemResult:
    """A matrix or parallel_each branch: the node's body, whose update is the record's
    ``result``; ``aliases`` are state keys the body also sees (``item_index``)."""

    __slots__ = ("aliases", "body")

    def __init__(self, body: Any, aliases: tuple[tuple[str, str], ...] = ()) -> None:
        self.body = body
        self.aliases = aliases

    def run(self, state: dict[str, Any], scope: Scope, node: str, parallel_results: Any = None) -> dict[str, Any]:
        for alias, key in self.aliases:
            state[alias] = state[key]
        update = run_body(self.body, state, scope, node)
        return {"result": dict(update) if isinstance(update, Mapping) else {}}


def is_each_node(raw: Mapping[str, Any]) -> str | None:
    """``"matrix"`` or ``"parallel_each"`` for a node of those forms, else ``None``."""
    if "parallel_each" in raw:
        return "parallel_each"
    strategy = raw.get("strategy")
    if isinstance(strategy, Mapping) and "matrix" in strategy:
        return "matrix"
    return None


def each_fanout(raw: Mapping[str, Any], ctx: Any, what: str, compile_body: CompileBody) -> FanOut:
    """The fan-out of a matrix or parallel_each node (its ``source`` is set by the caller);
    ``ctx`` is the loader's ``BodyContext``."""
    form = is_each_node(raw)
    if form == "matrix" and "parallel_each" in raw:
        raise SchemaError(f"{what} has both strategy.matrix and parallel_each", location_of(raw, "parallel_each"),
                          hint="a node fans out one way: split it into two nodes")
    fan_in = raw.get("fan_in")
    if not isinstance(fan_in, str) or not fan_in:
        raise SchemaError(f"{what}: {form} needs 'fan_in', the node that receives parallel_results",
                          location_of(raw, "fan_in") if "fan_in" in raw else location_of(raw),
                          hint="add fan_in: <node name>")
    body = compile_body(raw, ctx, what)
    if body is None:
        raise SchemaError(f"{what}: {form} needs a body to run per branch", location_of(raw),
                          hint="give it run:, uses: or steps:")
    config = ctx.parallel
    if form == "matrix":
        each = _matrix(raw["strategy"], what, body)
    else:
        each = ItemSpec(items=compile_value(raw["parallel_each"], location_of(raw, "parallel_each")),
                        item_var="item", index_var="index", body=ItemResult(body, (("item_index", "index"),)),
                        none_is_empty=True)
        workers = _positive(raw, "max_workers", what)
        if workers is not None:
            config = replace(config, max_workers=workers)
    return FanOut(source="", fan_in=fan_in, config=config, each=each, location=location_of(raw))


def _matrix(strategy: Mapping[str, Any], what: str, body: Any) -> ItemSpec:
    check_keys(strategy, MATRIX_KEYS, f"{what} strategy")
    matrix = strategy["matrix"]
    if not isinstance(matrix, Mapping) or not matrix:
        raise SchemaError(f"{what}: strategy.matrix must map each parameter to a list of values",
                          location_of(strategy, "matrix"), hint="matrix: {model: [a, b], size: [1, 2]}")
    for key, values in matrix.items():
        if not isinstance(values, list) or not values:
            raise SchemaError(f"{what}: matrix.{key} must be a non-empty list", location_of(matrix, key))
    fail_fast = strategy.get("fail_fast")
    if fail_fast is not None and not isinstance(fail_fast, bool):
        raise SchemaError(f"{what}: strategy.fail_fast must be true or false", location_of(strategy, "fail_fast"))
    keys = list(matrix)
    combos = [dict(zip(keys, values, strict=True)) for values in product(*(matrix[k] for k in keys))]
    return ItemSpec(items=combos, item_var="matrix", index_var="index", body=ItemResult(body),
                    max_concurrency=_positive(strategy, "max_parallel", what), fail_fast=fail_fast)


def _positive(raw: Mapping[str, Any], key: str, what: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SchemaError(f"{what}: {key} must be a positive integer, not {value!r}", location_of(raw, key))
    return value
