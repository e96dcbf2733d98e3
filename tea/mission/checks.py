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
from tea.mission.plan import Plan, find_cycles, make_plan
from tea.mission.schema import ID_PATTERN, RESERVED_NAMES, STEP_KEYS, boolean, number, text_field, unknown_keys
from tea.mission.steps import UnknownStepType, lookup
from tea.mission.steps.base import StepType, check_params
from tea.templates import Template, compile_value, has_template, is_static
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


def _static_copy(value: Any) -> Any:
    """``value`` as ``compile_value`` would give it when it holds no template; ``None`` if it does.

    Most steps' parameters are static: copying them skips the location of every value
    that ``compile_value`` would look up in case a template failed to compile.
    """
    if isinstance(value, str):
        return None if has_template(value) else value
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            out[key] = copied = _static_copy(item)
            if copied is None and item is not None:
                return None
        return out
    if isinstance(value, list):
        items = [_static_copy(item) for item in value]
        return None if any(c is None and v is not None for c, v in zip(items, value, strict=True)) else items
    return value


def _id_loc(item: Mapping[str, Any]) -> Location:
    return location_of(item, "id") if "id" in item else location_of(item)


def _value_loc(raw: Mapping[str, Any], key: str) -> Location:
    getter = getattr(raw, "value_loc", None)
    return getter(key) if getter is not None else location_of(raw, key)


class StepChecker:
    """Checks the ``steps:`` list against the step types and ``settings`` (plain data)."""

    def __init__(self, settings: Mapping[str, Any], errors: list[LoadError]) -> None:
        self.settings = settings
        self.errors = errors
        self.seen: dict[str, Mapping[str, Any]] = {}
        """Step id → its mapping in the file (located only when an error needs it)."""
        self.raw_params: dict[str, Mapping[str, Any]] = {}
        self.raw_steps: dict[str, Mapping[str, Any]] = {}
        self.deps: dict[str, tuple[str, ...]] = {}
        self.plan: Plan | None = None
        """The plan, when the dependencies (of the steps without problems) have no cycle."""
        self.item_locs: list[Location] | None = None

    def check(self, raw: Any, where: Location) -> list[Step]:
        """The steps of ``raw`` (problems recorded; the list is complete only without them)."""
        if not isinstance(raw, list) or not raw:
            self.errors.append(SchemaError("steps must be a non-empty list of steps", where,
                                           hint="- id: first\n    step_type: noop"))
            return []
        locs = getattr(raw, "item_locs", None)  # all at once: faster than one by one
        self.item_locs = locs if locs is not None and len(locs) == len(raw) else None
        steps = [s for n, item in enumerate(raw) if (s := self._step(item, n, raw)) is not None]
        known = {s.id for s in steps}
        self.deps = {s.id: s.depends_on for s in steps}
        self._dependencies(steps)
        self._plan(steps, known)
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
        compiled = _static_copy(params) if params else {}
        static = compiled is not None
        if not static:
            try:
                compiled = compile_value(params, location_of(item, "parameters"))
                static = is_static(compiled)
            except WorkflowSyntaxError as exc:
                errors.append(exc)
                compiled, static = {}, True
        self.raw_params[step_id] = params
        self.raw_steps[step_id] = item
        # "in item" first: most steps leave most of these out (a 10,000-step mission).
        return Step(
            id=step_id,
            name=(text_field(item, "name", errors, where) if "name" in item else None) or step_id,
            step_type=stype.name if stype is not None else str(item.get("step_type")),
            depends_on=self._depends_on(item, where) if "depends_on" in item else (),
            parameters=compiled,
            timeout_seconds=number(item, "timeout_seconds", errors, where, above=True)
            if "timeout_seconds" in item else None,
            continue_on_error=bool(boolean(item, "continue_on_error", errors, where))
            if "continue_on_error" in item else False,
            retry_attempts=number(item, "retry_attempts", errors, where, integer=True)
            if "retry_attempts" in item else None,
            retry_delay_ms=number(item, "retry_delay_ms", errors, where) if "retry_delay_ms" in item else None,
            index=index,
            location=self.item_locs[index] if self.item_locs is not None else location_of(raw, index),
            static=static,
        )

    def _id(self, item: Mapping[str, Any], index: int) -> str | None:
        value = item.get("id")
        if isinstance(value, str) and value not in self.seen and value not in RESERVED_NAMES \
                and ID_PATTERN.match(value):
            self.seen[value] = item
            return value
        at = _id_loc(item)
        if value is None:
            problem = SchemaError(f"steps[{index}] has no id", at, hint="give every step a unique id")
        elif not isinstance(value, str) or not ID_PATTERN.match(value):
            problem = SchemaError(f"step id {value!r} is not a name", at,
                                  hint="use letters, digits and _ (not first a digit), e.g. build_app")
        elif value in RESERVED_NAMES:
            problem = SchemaError(f"step id '{value}' is reserved for template variables", at,
                                  hint=f"{', '.join(sorted(RESERVED_NAMES))} are taken; choose another id")
        else:
            problem = SchemaError(f"duplicate step id '{value}'", at,
                                  hint=f"the first step with this id is at {_id_loc(self.seen[value])}")
        self.errors.append(problem)
        return None

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
        def at() -> Location:
            return location_of(item, "parameters") if "parameters" in item else location_of(item, "step_type")

        for key, message, hint in check_params(stype, params):
            where = location_of(params, key) if key is not None else at()
            self.errors.append(SchemaError(f"step '{step_id}': {message}", where, hint=hint))
        if stype.check is not None:
            literal = {k: v for k, v in params.items() if k in stype.by_name}
            for message in stype.check(literal, self.settings):
                self.errors.append(SchemaError(f"step '{step_id}' ({stype.name}): {message}", at()))

    def _depends_on(self, item: Mapping[str, Any], where: str) -> tuple[str, ...]:
        value = item.get("depends_on")
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.errors.append(SchemaError(f"{where}depends_on must be a list of step ids",
                                           location_of(item, "depends_on"), hint="depends_on: [fetch, build]"))
            return ()
        unique = tuple(dict.fromkeys(value))
        if len(unique) < len(value):
            for n, dep in enumerate(value):
                if dep in value[:n]:
                    self.errors.append(SchemaError(f"{where}depends_on names '{dep}' twice", location_of(value, n)))
        return unique

    def _dependencies(self, steps: Sequence[Step]) -> None:
        """Record every ``depends_on`` naming no step."""
        ids = [s.id for s in steps]
        seen = self.seen
        for step in steps:
            for dep in step.depends_on:
                if dep not in seen:
                    raw = self.raw_steps[step.id].get("depends_on")
                    at = location_of(raw, raw.index(dep)) if isinstance(raw, list) else step.location
                    hint = suggest(dep, ids) or f"steps: {', '.join(ids[:20])}"
                    self.errors.append(ReferenceError_(
                        f"step '{step.id}' depends on '{dep}', which is not a step", at, hint=hint))

    def _plan(self, steps: Sequence[Step], known: set[str]) -> None:
        """Plan the steps; record each dependency cycle when there is one."""
        ids = [s.id for s in steps]
        deps = self.deps
        if any(d not in known for s in steps for d in s.depends_on):
            deps = {s.id: tuple(d for d in s.depends_on if d in known) for s in steps}
        try:
            self.plan = make_plan(ids, deps)
            return
        except ValueError:
            pass
        by_id = {s.id: s for s in steps}
        for cycle in find_cycles(ids, deps):
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
