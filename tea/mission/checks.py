"""The checks of a mission's ``steps:`` list, each problem at its file and line.

One pass records every problem: a step that is not a mapping, an unknown key, an
id that is missing, malformed, reserved or used twice; an unknown ``step_type``
(with the nearest name and the list of built ones); unknown or missing
parameters and values of the wrong kind; a ``depends_on`` naming no step (with
did-you-mean); dependency cycles (named ``a -> b -> c -> a``); and templates
that read a name that is neither a variable (``env``, ``context``, ``config``,
``secrets``) nor a step the template's step depends on.

A 10,000-step mission is checked in a few tens of milliseconds: a step that is
only a new plain id, a built type that needs no parameters and a list of ids is
taken on a short path, any other goes through every check; the location of a key
or value is looked up only for a problem (each step's own, all at once); and every
``Step`` record is made once, after the whole list is checked.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from itertools import pairwise
from typing import Any

from tea.errors import LoadError, Location, ReferenceError_, SchemaError, WorkflowSyntaxError
from tea.keys import suggest
from tea.mission.dag import Plan, find_cycles, make_plan
from tea.mission.model import Step
from tea.mission.schema import ID_PATTERN, RESERVED_NAMES, STEP_KEYS, boolean, number, text_field, unknown_keys
from tea.mission.steps import UnknownStepType, lookup
from tea.mission.steps.base import StepType, check_params
from tea.templates import Template, compile_template, compile_value, has_template, is_static
from tea.yamlsrc import location_of

__all__ = ["StepChecker", "template_names"]

_PLAIN_KEYS = frozenset({"id", "step_type", "depends_on", "parameters"})
"""A step with no other key has no optional field to check (most steps of a big mission)."""

_Draft = tuple[str, str, str, tuple[str, ...], Mapping[str, Any], Any, bool, Any, Any, int, Location]
"""A checked step: ``Step``'s fields from ``id`` to ``location``, in that order."""


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


def _compiled(value: Any) -> Any:
    """``value`` as ``compile_value`` gives it, but without looking up a location for each
    value: a template that does not compile is compiled again by ``compile_value``, to
    word the error at its line."""
    if isinstance(value, str):
        return compile_template(value) if has_template(value) else value
    if isinstance(value, Mapping):
        return {key: _compiled(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_compiled(item) for item in value]
    return value


def _names(value: Any) -> tuple[str, ...] | None:
    """``value`` (a ``depends_on``) when it is absent or a list of distinct strings, else ``None``."""
    if value is None:
        return ()
    if not isinstance(value, list):
        return None
    for name in value:
        if not isinstance(name, str):
            return None
    return tuple(value) if len(set(value)) == len(value) else None


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
        self.deps: dict[str, tuple[str, ...]] = {}
        """Step id → its ``depends_on``, for every step with a good id, in file order."""
        self.templated: dict[str, tuple[Mapping[str, Any], Mapping[str, Any]]] = {}
        """Step id → its ``parameters`` in the file and compiled, for the steps with templates."""
        self.quiet: dict[str, bool] = {}
        """Step type → whether it takes empty parameters without a problem (under ``settings``)."""
        self.plan: Plan | None = None
        """The plan, when the dependencies (of the steps without problems) have no cycle."""

    def check(self, raw: Any, where: Location) -> list[Step]:
        """The steps of ``raw`` (problems recorded; the list is complete only without them)."""
        if not isinstance(raw, list) or not raw:
            self.errors.append(SchemaError("steps must be a non-empty list of steps", where,
                                           hint="- id: first\n    step_type: noop"))
            return []
        locs = getattr(raw, "item_locs", None)  # all at once: faster than one by one
        if locs is None or len(locs) != len(raw):
            locs = [location_of(raw, n) for n in range(len(raw))]
        drafts = self._drafts(raw, locs)
        unknown = set().union(*self.deps.values()).difference(self.seen)
        if unknown:
            self._dependencies()
        self._plan(unknown)
        if not self.templated:
            return [Step(*d) for d in drafts]
        reads = self._reads()
        return [Step(*d, reads[d[0]], False) if d[0] in reads else Step(*d) for d in drafts]

    def _drafts(self, raw: list[Any], locs: Sequence[Location]) -> list[_Draft]:
        """Every step checked; the drafts of the steps with a good id, in file order."""
        seen, deps_of, quiet = self.seen, self.deps, self.quiet
        drafts: list[_Draft] = []
        for index, item in enumerate(raw):
            # Most steps of a big mission, taken here without a call: only a new plain id,
            # a step type that needs no parameters, and dependencies. Any other goes to _step.
            if isinstance(item, dict) and _PLAIN_KEYS.issuperset(item):
                step_id, type_name, params = item.get("id"), item.get("step_type"), item.get("parameters")
                if step_id.__class__ is str and type_name.__class__ is str and quiet.get(type_name) \
                        and (params is None or params == {}) and step_id not in seen \
                        and step_id.isidentifier() and step_id.isascii() and step_id not in RESERVED_NAMES \
                        and (deps := _names(item.get("depends_on"))) is not None:
                    seen[step_id] = item
                    deps_of[step_id] = deps
                    drafts.append((step_id, step_id, type_name, deps, {}, None, False, None, None, index, locs[index]))
                    continue
            if (draft := self._step(item, index, raw, locs[index])) is not None:
                drafts.append(draft)
        return drafts

    def _step(self, item: Any, index: int, raw: list[Any], location: Location) -> _Draft | None:
        """One step checked, every problem recorded."""
        if not isinstance(item, Mapping):
            self.errors.append(SchemaError(f"steps[{index}] must be a mapping with id and step_type",
                                           location_of(raw, index)))
            return None
        unknown_keys(item, STEP_KEYS, "a step", self.errors)
        step_id = self._id(item, index)
        raw_id = item.get("id")
        stype = self._type(item, step_id or (raw_id if isinstance(raw_id, str) else f"steps[{index}]"))
        if step_id is None:
            return None
        params = item.get("parameters")
        if params is None:
            params = {}
        elif not isinstance(params, Mapping):
            self.errors.append(SchemaError(f"step '{step_id}'.parameters must be a mapping",
                                           location_of(item, "parameters")))
            params = {}
        if stype is not None and (params or not self._quiet(stype)):
            self._params(stype, params, item, step_id)
        compiled = self._compile(params, item, step_id) if params else {}
        type_name = stype.name if stype is not None else str(item.get("step_type"))
        return self._fields(item, step_id, type_name, compiled, index, location)

    def _fields(self, item: Mapping[str, Any], step_id: str, type_name: str, compiled: Mapping[str, Any],
                index: int, location: Location) -> _Draft:
        """The step's draft: its other fields checked."""
        errors = self.errors
        where = f"step '{step_id}'."
        # "in item" first: most steps leave most of these out.
        name = (text_field(item, "name", errors, where) if "name" in item else None) or step_id
        deps = self._depends_on(item, step_id)
        self.deps[step_id] = deps
        return (
            step_id, name, type_name, deps, compiled,
            number(item, "timeout_seconds", errors, where, above=True) if "timeout_seconds" in item else None,
            bool(boolean(item, "continue_on_error", errors, where)) if "continue_on_error" in item else False,
            number(item, "retry_attempts", errors, where, integer=True) if "retry_attempts" in item else None,
            number(item, "retry_delay_ms", errors, where) if "retry_delay_ms" in item else None,
            index, location,
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

    def _quiet(self, stype: StepType) -> bool:
        """Whether ``stype`` takes empty parameters without a problem (asked once per type)."""
        quiet = self.quiet.get(stype.name)
        if quiet is None:
            quiet = not check_params(stype, {}) and (stype.check is None or not stype.check({}, self.settings))
            self.quiet[stype.name] = quiet
        return quiet

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

    def _compile(self, params: Mapping[str, Any], item: Mapping[str, Any], step_id: str) -> Any:
        """``params`` with their templates compiled (the step is then ``templated``)."""
        try:
            compiled = _compiled(params)
        except WorkflowSyntaxError:
            try:
                compile_value(params, location_of(item, "parameters"))
            except WorkflowSyntaxError as exc:
                self.errors.append(exc)
            return {}
        if not is_static(compiled):
            self.templated[step_id] = params, compiled
        return compiled

    def _depends_on(self, item: Mapping[str, Any], step_id: str) -> tuple[str, ...]:
        value = item.get("depends_on")
        names = _names(value)
        if names is not None:
            return names
        if isinstance(value, list) and all(isinstance(dep, str) for dep in value):
            return self._twice(value, step_id)
        self.errors.append(SchemaError(f"step '{step_id}'.depends_on must be a list of step ids",
                                       location_of(item, "depends_on"), hint="depends_on: [fetch, build]"))
        return ()

    def _twice(self, value: list[str], step_id: str) -> tuple[str, ...]:
        """``value`` without repeats, each repeat recorded."""
        for n, dep in enumerate(value):
            if dep in value[:n]:
                self.errors.append(SchemaError(f"step '{step_id}'.depends_on names '{dep}' twice",
                                               location_of(value, n)))
        return tuple(dict.fromkeys(value))

    def _dependencies(self) -> None:
        """Record every ``depends_on`` naming no step."""
        ids = list(self.deps)
        seen = self.seen
        for step_id, deps in self.deps.items():
            for dep in deps:
                if dep not in seen:
                    raw = seen[step_id]["depends_on"]  # a list: the step has dependencies
                    at = location_of(raw, raw.index(dep))
                    hint = suggest(dep, ids) or f"steps: {', '.join(ids[:20])}"
                    self.errors.append(ReferenceError_(
                        f"step '{step_id}' depends on '{dep}', which is not a step", at, hint=hint))

    def _plan(self, unknown: set[str]) -> None:
        """Plan the steps (leaving out dependencies on ``unknown`` ids); record each cycle."""
        ids = list(self.deps)
        deps = self.deps
        if unknown:
            deps = {s: tuple(d for d in before if d not in unknown) for s, before in deps.items()}
        try:
            self.plan = make_plan(ids, deps)
            return
        except ValueError:
            pass
        for cycle in find_cycles(ids, deps):
            edges = ", ".join(f"{b} depends on {a}" for a, b in pairwise(cycle))
            self.errors.append(ReferenceError_(
                "dependency cycle: " + " -> ".join(cycle), location_of(self.seen[cycle[0]], "depends_on"),
                hint=f"none of these steps can start; remove one of: {edges}",
            ))

    def _reads(self) -> dict[str, tuple[str, ...]]:
        """Step id → the steps its templates read, for each templated step; every name checked."""
        return {step_id: self._reads_of(step_id, *both) for step_id, both in self.templated.items()}

    def _reads_of(self, step_id: str, params: Mapping[str, Any], compiled: Mapping[str, Any]) -> tuple[str, ...]:
        reads: dict[str, None] = {}
        for key, value in compiled.items():
            for template in _templates(value):
                for name in sorted(template_names(template.source)):
                    if name in RESERVED_NAMES:
                        continue
                    if name not in self.seen:
                        hint = suggest(name, [*self.seen, *RESERVED_NAMES])
                        self.errors.append(ReferenceError_(
                            f"step '{step_id}': parameter '{key}' reads '{name}', which is neither a step "
                            "nor a variable (env, context, config, secrets)", _value_loc(params, key), hint=hint))
                    elif not self._runs_before(name, step_id):
                        self.errors.append(ReferenceError_(
                            f"step '{step_id}': parameter '{key}' reads the output of '{name}', "
                            "which it does not depend on", _value_loc(params, key),
                            hint=f"add '{name}' to its depends_on"))
                    else:
                        reads[name] = None
        return tuple(reads)

    def _runs_before(self, ancestor: str, step_id: str) -> bool:
        """Whether ``ancestor`` is among ``step_id``'s dependencies, direct or not."""
        direct = self.deps[step_id]
        if ancestor in direct:
            return True
        stack, seen = list(direct), set(direct)
        while stack:
            current = stack.pop()
            if current == ancestor:
                return True
            for dep in self.deps.get(current, ()):
                if dep not in seen:
                    seen.add(dep)
                    stack.append(dep)
        return False
