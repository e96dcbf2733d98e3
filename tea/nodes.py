"""Node bodies: what a node does when the runner reaches it.

Every body has ``run(state, scope, node, parallel_results) -> update | None``;
the runner merges the update. Bodies are built once by the loader (code compiled,
templates compiled, actions resolved) and hold no per-run state, so one graph
can run in many threads and be shipped to worker processes.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from tea.errors import Location, NodeError, TeaError, WorkflowSyntaxError
from tea.pycode import PythonCode
from tea.state import Reduced, Tracked, merge
from tea.templates import Template, TemplateError, compile_template, render_value

if TYPE_CHECKING:
    from tea.conditions import Condition
    from tea.scope import Scope

__all__ = [
    "ActionBody",
    "Body",
    "CallableBody",
    "ExpressionBody",
    "LuaBody",
    "NodeTimeout",
    "PythonBody",
    "StepsBody",
    "TemplatedPythonBody",
    "TimedBody",
    "WhileLoopBody",
]

log = logging.getLogger("tea.nodes")


class Body(Protocol):
    def run(
        self, state: dict[str, Any], scope: Scope, node: str, parallel_results: Any = None
    ) -> dict[str, Any] | None: ...


class PythonBody:
    __slots__ = ("code",)

    def __init__(self, code: PythonCode) -> None:
        self.code = code

    def run(
        self, state: dict[str, Any], scope: Scope, node: str, parallel_results: Any = None
    ) -> dict[str, Any] | None:
        return self.code.run(state, scope.variables, parallel_results, scope.secrets)


class TemplatedPythonBody:
    """A ``run:`` block holding ``{{ }}``/``{% %}``: rendered against the state at each call,
    then run, as the reference dialect does. The compiled code is cached by rendered text,
    so a block that renders the same way twice compiles once."""

    __slots__ = ("label", "location", "template")

    def __init__(self, source: str, location: Location, label: str) -> None:
        self.template = compile_template(source, location)
        self.location = location
        self.label = label

    def run(
        self, state: dict[str, Any], scope: Scope, node: str, parallel_results: Any = None
    ) -> dict[str, Any] | None:
        text = str(self.template.render(scope.template_context(state, parallel_results=parallel_results)))
        try:
            code = _python_cached(text, self.location, self.label)
        except WorkflowSyntaxError as exc:
            raise NodeError(f"{exc.message} (after rendering its templates)", node=node) from None
        return code.run(state, scope.variables, parallel_results, scope.secrets)

    def __reduce__(self) -> tuple[Any, ...]:
        return (TemplatedPythonBody, (self.template.source, self.location, self.label))


@functools.lru_cache(maxsize=256)
def _python_cached(text: str, location: Location, label: str) -> PythonCode:
    return PythonCode(text, location, label=label)


class CallableBody:
    """A Python function ``fn(state) -> update`` (graphs built with ``StateGraph``); a
    compiled graph or workflow as ``fn`` is invoked, its final state being the update."""

    __slots__ = ("fn", "wants_results")

    def __init__(self, fn: Any) -> None:
        invoke = getattr(fn, "invoke", None)
        if not callable(fn) and callable(invoke):
            fn = invoke
        self.fn = fn
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            params = {}  # type: ignore[assignment]
        self.wants_results = "parallel_results" in params

    def run(
        self, state: dict[str, Any], scope: Scope, node: str, parallel_results: Any = None
    ) -> dict[str, Any] | None:
        kwargs = {"parallel_results": parallel_results} if self.wants_results else {}
        value = self.fn(dict(state), **kwargs)
        if value is None or isinstance(value, dict):
            return value
        return {"result": value}


class ExpressionBody:
    """``run: {type: expression, value, output_key}``: a Python expression's value.

    As in the reference dialect, an expression containing ``{{ }}`` is rendered as
    a template first; only those are compiled per distinct rendered text.
    """

    __slots__ = ("code", "location", "output_key", "source", "template")

    def __init__(self, source: str, output_key: str, location: Location) -> None:
        self.source = source
        self.output_key = output_key
        self.location = location
        self.template: Template | None = None
        self.code: Any = None
        if "{{" in source or "{%" in source:
            self.template = compile_template(source, location)
        else:
            self.code = _compile_expression(source.strip(), location)

    def run(
        self, state: dict[str, Any], scope: Scope, node: str, parallel_results: Any = None
    ) -> dict[str, Any] | None:
        code = self.code
        if self.template is not None:
            text = str(self.template.render(scope.template_context(state)))
            try:
                code = _compile_cached(text.strip(), self.location)
            except WorkflowSyntaxError as exc:
                raise NodeError(f"{exc.message} (rendered: {text!r:.120})", node=node) from None
        namespace = {"state": state, "variables": scope.variables, "parallel_results": parallel_results}
        return {self.output_key: eval(code, namespace)}

    def __reduce__(self) -> tuple[Any, ...]:
        return (ExpressionBody, (self.source, self.output_key, self.location))


def _compile_expression(text: str, location: Location) -> Any:
    try:
        return compile("\n" * max((location.line or 1) - 1, 0) + text, location.file or "<workflow>", "eval")
    except SyntaxError as exc:
        raise WorkflowSyntaxError(f"Python syntax error in expression: {exc.msg}", location) from None


@functools.lru_cache(maxsize=256)
def _compile_cached(text: str, location: Location) -> Any:
    return _compile_expression(text, location)


class LuaBody:
    __slots__ = ("code", "location", "timeout")

    def __init__(self, code: str, timeout: float | None, location: Location | None = None) -> None:
        self.code = code
        self.timeout = timeout
        self.location = location
        """Where the code starts in the YAML file (Lua line 1)."""

    def run(
        self, state: dict[str, Any], scope: Scope, node: str, parallel_results: Any = None
    ) -> dict[str, Any] | None:
        extra = {"parallel_results": parallel_results} if parallel_results is not None else None
        return scope.lua().run_node(
            self.code, state, scope.variables, node=node, timeout=self.timeout, extra=extra
        )


class ActionBody:
    """``uses:`` + ``with:`` + ``output:``."""

    __slots__ = ("actions", "fn", "name", "output", "params")

    def __init__(self, name: str, fn: Any, params: dict[str, Any], output: Any,
                 actions: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.fn = fn
        self.params = params
        self.output = output
        self.actions = actions  # the workflow's, for an action that calls others by name

    def run(
        self, state: dict[str, Any], scope: Scope, node: str, parallel_results: Any = None
    ) -> dict[str, Any] | None:
        from tea.actions import ActionContext, call_action

        context = scope.template_context(state, parallel_results=parallel_results)
        params = render_value(self.params, context)
        ctx = ActionContext(
            node=node,
            workflow_dir=scope.workflow_dir,
            settings=scope.settings,
            secrets=scope.secrets,
            variables=scope.variables,
            document=scope.graph.source,
            run_node=lambda name, given: _run_named(scope, name, given),
            actions=self.actions,
        )
        extra = {"parallel_results": parallel_results} if parallel_results is not None else None
        result = call_action(self.fn, dict(state), params, ctx, name=self.name, extra=extra)
        if self.output is None:
            if result is None or isinstance(result, dict):
                return result
            return {"result": result}
        if isinstance(self.output, str):
            return {self.output: result}
        out_context = {**context, "result": result}
        return {key: render_value(value, out_context) for key, value in self.output.items()}


class StepsBody:
    """``steps:``: sub-steps in order on one working copy of the state."""

    __slots__ = ("reducers", "steps")

    def __init__(self, steps: list[tuple[str, Body]], reducers: Mapping[str, Any]) -> None:
        self.steps = steps
        self.reducers = reducers

    def run_on(
        self, work: dict[str, Any], scope: Scope, node: str, touched: set[str]
    ) -> None:
        for step_name, body in self.steps:
            if scope.cancel.is_set():
                break
            label = f"{node}.{step_name}" if step_name else node
            update = run_body(body, work, scope, label)
            if update:
                touched.update(update)
                merge(work, update, {} if isinstance(update, Reduced) else self.reducers)

    def run(
        self, state: dict[str, Any], scope: Scope, node: str, parallel_results: Any = None
    ) -> dict[str, Any] | None:
        work = Tracked(state)
        if parallel_results is not None:
            work["parallel_results"] = parallel_results
        touched: set[str] = set()
        self.run_on(work, scope, node, touched)
        touched.discard("parallel_results")
        return Reduced({k: work[k] for k in touched}, work.writes)


class WhileLoopBody:
    """``type: while_loop``: run ``body`` while ``condition`` holds, at most ``max_iterations``."""

    __slots__ = ("body", "condition", "max_iterations")

    def __init__(self, condition: Condition, max_iterations: int, body: StepsBody) -> None:
        self.condition = condition
        self.max_iterations = max_iterations
        self.body = body

    def run(
        self, state: dict[str, Any], scope: Scope, node: str, parallel_results: Any = None
    ) -> dict[str, Any] | None:
        work = Tracked(state)
        touched: set[str] = set()
        for _ in range(self.max_iterations):
            if scope.cancel.is_set() or not self.condition.test(work, scope):
                break
            self.body.run_on(work, scope, node, touched)
        else:
            if self.condition.test(work, scope):
                log.warning(
                    "node '%s': while_loop stopped after max_iterations=%d",
                    node,
                    self.max_iterations,
                )
        return Reduced({k: work[k] for k in touched}, work.writes)


class NodeTimeout(NodeError, TimeoutError):
    """A node ran longer than its ``timeout_seconds``."""

    category = "timeout"


class TimedBody:
    """A body with ``timeout_seconds``: it runs on a thread of its own, and past the limit the
    node fails with ``NodeTimeout``. Python cannot stop a thread: the body's thread is
    abandoned and runs on until its code returns; what it returns then is dropped."""

    __slots__ = ("body", "seconds")

    def __init__(self, body: Body, seconds: float) -> None:
        self.body = body
        self.seconds = seconds

    def run(
        self, state: dict[str, Any], scope: Scope, node: str, parallel_results: Any = None
    ) -> dict[str, Any] | None:
        outcome: list[tuple[bool, Any]] = []

        def target() -> None:
            try:
                outcome.append((True, self.body.run(state, scope, node, parallel_results)))
            except BaseException as exc:  # handed to the waiting thread, which raises it
                outcome.append((False, exc))

        thread = threading.Thread(target=target, name=f"tea-node-{node}", daemon=True)
        thread.start()
        thread.join(self.seconds)
        if not outcome:
            raise NodeTimeout(
                f"timed out after {self.seconds:g} s (timeout_seconds); its thread is abandoned "
                "and runs on until its code returns", node=node,
                hint="raise timeout_seconds, or make the code give up by itself (a timeout on its calls)",
            )
        done, value = outcome[0]
        if not done:
            raise value
        return value  # type: ignore[no-any-return]


def run_body(body: Body, state: dict[str, Any], scope: Scope, node: str, results: Any = None) -> Any:
    """Run one body, turning foreign exceptions into ``NodeError`` naming the node."""
    try:
        return body.run(state, scope, node, results)
    except NodeError:
        raise
    except TemplateError as exc:
        raise NodeError(str(exc), node=node) from exc
    except Exception as exc:
        if isinstance(exc, TeaError):
            if getattr(exc, "node", "") is None:
                exc.node = node  # type: ignore[attr-defined]
            raise
        raise NodeError(f"{type(exc).__name__}: {exc}", node=node) from exc


def _run_named(scope: Scope, name: str, state: dict[str, Any]) -> dict[str, Any] | None:
    """Node ``name``'s body on ``state`` (for an action that runs a node, as ``retry.loop``
    does with ``correct: node``): its update; a node with no body changes nothing."""
    node = scope.graph.nodes.get(name)
    if node is None:
        raise NodeError(f"no node named '{name}' to run", node=scope.current_node,
                        hint=f"name one of: {', '.join(sorted(scope.graph.nodes))}")
    if node.body is None:
        return None
    update: dict[str, Any] | None = node.body.run(state, scope, name)
    return update
