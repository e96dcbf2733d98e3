"""The checks of a mission's ``steps:`` list, each problem at its file and line.

One pass records every problem: a step that is not a mapping, an unknown key, an
id that is missing, malformed, reserved or used twice; an unknown ``step_type``
(with the nearest name and the list of built ones); unknown or missing
parameters and values of the wrong kind; a ``depends_on`` naming no step (with
did-you-mean); dependency cycles (named ``a -> b -> c -> a``); and templates
that read a name that is neither a variable (``env``, ``context``, ``config``,
``secrets``) nor a step the template's step depends on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from functools import cache
from itertools import pairwise
from typing import Any

from tea.errors import LoadError, Location, ReferenceError_, SchemaError, WorkflowSyntaxError
from tea.keys import suggest
from tea.mission.model import Step
from tea.mission.plan import find_cycles
from tea.mission.schema import ID_PATTERN, RESERVED_NAMES, STEP_KEYS, boolean, number, text_field, unknown_keys
from tea.mission.steps import UnknownStepType, lookup
from tea.mission.steps.base import StepType, check_params
from tea.templates import Template, compile_value, is_static
from tea.yamlsrc import location_of

__all__ = ["StepChecker", "template_names"]


@cache
def _jinja() -> Any:
    import jinja2

    return jinja2.Environment()


def template_names(source: str) -> set[str]:
    """The names a template reads from its context (loop variables and globals left out)."""
    from jinja2 import meta

    env = _jinja()
    return set(meta.find_undeclared_variables(env.parse(source))) - set(env.globals)


def _templates(value: Any) -> Iterator[Template]:
    if isinstance(value, Template):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _templates(item)
    elif isinstance(value, list):
        for item in value:
            yield from _templates(item)


def _value_loc(raw: Mapping[str, Any], key: str) -> Location:
    getter = getattr(raw, "value_loc", None)
    return getter(key) if getter is not None else location_of(raw, key)


class StepChecker:
    """Checks the ``steps:`` list against the step types and ``settings`` (plain data)."""

    def __init__(self, settings: Mapping[str, Any], errors: list[LoadError]) -> None:
        self.settings = settings
        self.errors = errors
        self.seen: dict[str, Location] = {}
        self.raw_params: dict[str, Mapping[str, Any]] = {}
        self.raw_steps: dict[str, Mapping[str, Any]] = {}
        self.deps: dict[str, tuple[str, ...]] = {}

    def check(self, raw: Any, where: Location) -> list[Step]:
        """The steps of ``raw`` (problems recorded; the list is complete only without them)."""
        if not isinstance(raw, list) or not raw:
            self.errors.append(SchemaError("steps must be a non-empty list of steps", where,
                                           hint="- id: first\n    step_type: noop"))
            return []
        steps = [s for n, item in enumerate(raw) if (s := self._step(item, n, raw)) is not None]
        known = {s.id for s in steps}
        self.deps = {s.id: s.depends_on for s in steps}
        self._dependencies(steps)
        self._cycles(steps, known)
        return [self._with_reads(s) for s in steps]

    def _step(self, item: Any, index: int, raw: list[Any]) -> Step | None:
        if not isinstance(item, Mapping):
            self.errors.append(SchemaError(f"steps[{index}] must be a mapping with id and step_type",
                                           location_of(raw, index)))
            return None
        errors = self.errors
        unknown_keys(item, STEP_KEYS, "a step", errors)
        step_id = self._id(item, index)
        raw_id = item.get("id")
        stype = self._type(item, step_id or (raw_id if isinstance(raw_id, str) else f"steps[{index}]"))
        if step_id is None:
            return None
        where = f"step '{step_id}'."
        params = item.get("parameters")
        if params is None:
            params = {}
        elif not isinstance(params, Mapping):
            errors.append(SchemaError(f"{where}parameters must be a mapping", location_of(item, "parameters")))
            params = {}
        if stype is not None:
            self._params(stype, params, item, step_id)
        try:
            compiled = compile_value(params, location_of(item, "parameters"))
        except WorkflowSyntaxError as exc:
            errors.append(exc)
            compiled = {}
        self.raw_params[step_id] = params
        self.raw_steps[step_id] = item
        continue_on_error = boolean(item, "continue_on_error", errors, where)
        return Step(
            id=step_id,
            name=text_field(item, "name", errors, where) or step_id,
            step_type=stype.name if stype is not None else str(item.get("step_type")),
            depends_on=self._depends_on(item, where),
            parameters=compiled,
            timeout_seconds=number(item, "timeout_seconds", errors, where, above=True),
            continue_on_error=bool(continue_on_error),
            retry_attempts=number(item, "retry_attempts", errors, where, integer=True),
            retry_delay_ms=number(item, "retry_delay_ms", errors, where),
            index=index,
            location=location_of(raw, index),
            static=is_static(compiled),
        )

    def _id(self, item: Mapping[str, Any], index: int) -> str | None:
        value = item.get("id")
        at = location_of(item, "id") if "id" in item else location_of(item)
        problem = None
        if value is None:
            problem = SchemaError(f"steps[{index}] has no id", at, hint="give every step a unique id")
        elif not isinstance(value, str) or not ID_PATTERN.match(value):
            problem = SchemaError(f"step id {value!r} is not a name", at,
                                  hint="use letters, digits and _ (not first a digit), e.g. build_app")
        elif value in RESERVED_NAMES:
            problem = SchemaError(f"step id '{value}' is reserved for template variables", at,
                                  hint=f"{', '.join(sorted(RESERVED_NAMES))} are taken; choose another id")
        elif value in self.seen:
            problem = SchemaError(f"duplicate step id '{value}'", at,
                                  hint=f"the first step with this id is at {self.seen[value]}")
        if problem is not None:
            self.errors.append(problem)
            return None
        step_id = str(value)
        self.seen[step_id] = at
        return step_id

    def _type(self, item: Mapping[str, Any], step_id: str) -> StepType | None:
        name = item.get("step_type")
        if name is None:
            self.errors.append(SchemaError(f"step '{step_id}' has no step_type", location_of(item),
                                           hint="for example step_type: noop"))
            return None
        try:
            return lookup(str(name))
        except UnknownStepType as exc:
            self.errors.append(SchemaError(f"step '{step_id}': {exc.message}",
                                           _value_loc(item, "step_type"), hint=exc.hint))
            return None

    def _params(self, stype: StepType, params: Mapping[str, Any], item: Mapping[str, Any], step_id: str) -> None:
        at = location_of(item, "parameters") if "parameters" in item else location_of(item, "step_type")
        for key, message, hint in check_params(stype, params):
            where = location_of(params, key) if key is not None else at
            self.errors.append(SchemaError(f"step '{step_id}': {message}", where, hint=hint))
        if stype.check is not None:
            literal = {k: v for k, v in params.items() if k in stype.by_name}
            for message in stype.check(literal, self.settings):
                self.errors.append(SchemaError(f"step '{step_id}' ({stype.name}): {message}", at))

    def _depends_on(self, item: Mapping[str, Any], where: str) -> tuple[str, ...]:
        value = item.get("depends_on")
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.errors.append(SchemaError(f"{where}depends_on must be a list of step ids",
                                           location_of(item, "depends_on"), hint="depends_on: [fetch, build]"))
            return ()
        for n, dep in enumerate(value):
            if dep in value[:n]:
                self.errors.append(SchemaError(f"{where}depends_on names '{dep}' twice", location_of(value, n)))
        return tuple(dict.fromkeys(value))

    def _dependencies(self, steps: Sequence[Step]) -> None:
        """Record every ``depends_on`` naming no step."""
        ids = [s.id for s in steps]
        for step in steps:
            raw = self.raw_steps[step.id].get("depends_on")
            for dep in step.depends_on:
                if dep not in self.seen:
                    at = location_of(raw, raw.index(dep)) if isinstance(raw, list) else step.location
                    hint = suggest(dep, ids) or f"steps: {', '.join(ids[:20])}"
                    self.errors.append(ReferenceError_(
                        f"step '{step.id}' depends on '{dep}', which is not a step", at, hint=hint))

    def _cycles(self, steps: Sequence[Step], known: set[str]) -> None:
        deps = {s.id: [d for d in s.depends_on if d in known] for s in steps}
        by_id = {s.id: s for s in steps}
        for cycle in find_cycles([s.id for s in steps], deps):
            first = by_id[cycle[0]]
            raw = self.raw_steps[first.id]
            edges = ", ".join(f"{b} depends on {a}" for a, b in pairwise(cycle))
            self.errors.append(ReferenceError_(
                "dependency cycle: " + " -> ".join(cycle), location_of(raw, "depends_on"),
                hint=f"none of these steps can start; remove one of: {edges}",
            ))

    def _with_reads(self, step: Step) -> Step:
        """``step`` with ``reads`` (the steps its templates read), checking every name."""
        if step.static:
            return step
        reads: dict[str, None] = {}
        params = self.raw_params[step.id]
        for key, value in step.parameters.items():
            for template in _templates(value):
                for name in sorted(template_names(template.source)):
                    if name in RESERVED_NAMES:
                        continue
                    at = _value_loc(params, key)
                    if name not in self.seen:
                        hint = suggest(name, [*self.seen, *RESERVED_NAMES])
                        self.errors.append(ReferenceError_(
                            f"step '{step.id}': parameter '{key}' reads '{name}', which is neither a step "
                            "nor a variable (env, context, config, secrets)", at, hint=hint))
                    elif not self._runs_before(name, step):
                        self.errors.append(ReferenceError_(
                            f"step '{step.id}': parameter '{key}' reads the output of '{name}', "
                            "which it does not depend on", at, hint=f"add '{name}' to its depends_on"))
                    else:
                        reads[name] = None
        return replace(step, reads=tuple(reads))

    def _runs_before(self, ancestor: str, step: Step) -> bool:
        """Whether ``ancestor`` is among ``step``'s dependencies, direct or not."""
        if ancestor in step.depends_on:
            return True
        stack, seen = list(step.depends_on), set(step.depends_on)
        while stack:
            current = stack.pop()
            if current == ancestor:
                return True
            for dep in self.deps.get(current, ()):
                if dep not in seen:
                    seen.add(dep)
                    stack.append(dep)
        return False
