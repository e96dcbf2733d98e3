"""``reflection.loop``: generate, evaluate, correct, until the output passes.

The reference's action (parameters and result keys). Per iteration: the
``generator`` (``{action: name, ...params}``, the parameters possibly under
``with:``, or ``{run: python}``) produces an
output; the ``evaluator`` judges it (``type: schema`` with a JSON Schema,
``type: llm`` asking ``llm.call`` for ``{valid, score, reason, suggestions}``
(its ``llm.call`` parameters beside ``prompt`` and ``examples``; other keys ignored),
or ``type: custom`` running Python that sets ``result`` to a bool, a score or
``{valid, score, errors}``); if it fails and iterations remain, the
``corrector`` (same forms as the generator) runs and a mapping it returns is
merged into the state the next iteration sees. Inline Python sees ``state``
(with ``reflection_iteration``, ``reflection_output``, ``reflection_errors``,
``reflection_history``), ``output`` and those names directly.

The result holds ``reflection_iteration``, ``reflection_output``,
``reflection_errors``, ``reflection_history``, ``reflection_best``,
``reflection_best_score``, ``success``, ``valid`` (and ``exhausted`` when the
iterations ran out), plus the output's own keys when it is a mapping (else
``result``). ``on_failure``: ``return_best`` (default), ``return_last`` or
``raise`` (the node fails). Because a node's ``with:`` is rendered once before
the call, the ``llm`` evaluator always receives the output after its prompt.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tea.actions._common import Action, ActionContext, fail, takes_context, to_number
from tea.actions._nested import (
    LLM_PARAMETERS,
    ask_llm,
    call_named,
    llm_options,
    parse_json,
    run_snippet,
)

__all__ = ["ACTIONS", "reflection_loop"]

_ACTION = "reflection.loop"
_FAILURES = ("return_best", "return_last", "raise")
_JUDGE = """You are an evaluation assistant. Evaluate the given output and respond with JSON:
{
  "valid": true/false,
  "score": 0.0-1.0,
  "reason": "explanation",
  "suggestions": ["suggestion1", "suggestion2"]
}
Only respond with valid JSON, no other text."""


def _names(state: Mapping[str, Any]) -> dict[str, Any]:
    return {"state": state, "output": state.get("reflection_output"),
            "reflection_output": state.get("reflection_output"),
            "reflection_errors": state.get("reflection_errors", []),
            "reflection_iteration": state.get("reflection_iteration", 0)}


def _produce(ctx: ActionContext, role: str, spec: Any, state: dict[str, Any]) -> Any:
    """Run a generator or corrector spec on ``state``."""
    if isinstance(spec, Mapping) and "action" in spec:
        params = {k: v for k, v in spec.items() if k not in ("action", "with")}
        if isinstance(spec.get("with"), Mapping):  # {action: x, with: {...}} reads naturally too
            params.update(spec["with"])
        return call_named(ctx, _ACTION, str(spec["action"]), state, params)
    if isinstance(spec, Mapping) and "run" in spec:
        return run_snippet(ctx, f"{_ACTION} {role}", spec["run"], _names(state))
    raise fail(ctx, _ACTION, f"{role} must be a mapping with action: or run:, got {spec!r}")


def _verdict(valid: bool, score: float, errors: list[Any], suggestions: Any = ()) -> dict[str, Any]:
    return {"valid": valid, "score": score, "errors": errors, "suggestions": list(suggestions)}


def _schema_verdict(ctx: ActionContext, output: Any, schema: Any) -> dict[str, Any]:
    import jsonschema

    if not isinstance(schema, Mapping):
        raise fail(ctx, _ACTION, f"evaluator.schema must be a JSON Schema mapping, got {schema!r}")
    try:
        validator = jsonschema.Draft7Validator(dict(schema))
        found = list(validator.iter_errors(output))
    except jsonschema.SchemaError as exc:
        raise fail(ctx, _ACTION, f"evaluator.schema is not a valid JSON Schema: {exc.message}") from None
    errors, suggestions = [], []
    for error in found:
        path = ".".join(str(p) for p in error.absolute_path)
        errors.append({"path": path, "message": error.message,
                       "schema_path": list(error.schema_path)})
        if error.validator == "required":
            suggestions.append(f"Add missing required field at path: {path or 'root'}")
        elif error.validator == "type":
            suggestions.append(f"Fix type at path: {path or 'root'}")
    return _verdict(not errors, 0.0 if errors else 1.0, errors, suggestions)


def _llm_verdict(ctx: ActionContext, output: Any, spec: Mapping[str, Any]) -> dict[str, Any]:
    messages = [{"role": "system", "content": _JUDGE}]
    for example in spec.get("examples") or []:
        if isinstance(example, Mapping) and "input" in example and "output" in example:
            messages += [{"role": "user", "content": str(example["input"])},
                         {"role": "assistant", "content": str(example["output"])}]
    shown = output if isinstance(output, str) else json.dumps(output, default=str)
    prompt = spec.get("prompt") or "Evaluate if this output is valid and correct."
    messages.append({"role": "user", "content": f"{prompt}\n\nOutput to evaluate:\n{shown}"})
    # Keys llm.call does not take are ignored, as the reference ignores them.
    options = llm_options(ctx, _ACTION, {k: v for k, v in spec.items() if k in LLM_PARAMETERS})
    text = ask_llm(ctx, messages, options)["content"]
    try:
        parsed = parse_json(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, Mapping):
        valid = bool(parsed.get("valid", parsed.get("pass", False)))
        score = float(parsed.get("score", 1.0 if valid else 0.0))
        reason = [] if valid else [{"message": str(parsed.get("reason", ""))}]
        return _verdict(valid, score, reason, parsed.get("suggestions") or [])
    lower = str(text).lower()
    valid = "valid" in lower and "invalid" not in lower
    return _verdict(valid, 1.0 if valid else 0.0, [] if valid else [{"message": str(text)}])


def _custom_verdict(ctx: ActionContext, output: Any, spec: Mapping[str, Any],
                    state: Mapping[str, Any]) -> dict[str, Any]:
    language = spec.get("language", "python")
    if language != "python":
        raise fail(ctx, _ACTION, f"custom evaluators run Python in tea, not {language!r}")
    result = run_snippet(ctx, f"{_ACTION} evaluator", spec.get("run", ""),
                         {**_names(state), "output": output})
    if isinstance(result, Mapping):
        valid = bool(result.get("valid", False))
        return _verdict(valid, float(result.get("score", 1.0 if valid else 0.0)),
                        list(result.get("errors", [])), result.get("suggestions", []))
    if isinstance(result, int | float) and not isinstance(result, bool):
        ok = result >= 0.5
        return _verdict(ok, float(result), [] if ok else [{"message": f"Score {result} below "
                                                           "threshold"}])
    ok = bool(result)
    return _verdict(ok, 1.0 if ok else 0.0, [] if ok else [{"message": "Validation failed"}])


def _evaluate(ctx: ActionContext, output: Any, spec: Any, state: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(spec, Mapping):
        raise fail(ctx, _ACTION, f"evaluator must be a mapping with type:, got {spec!r}")
    kind = spec.get("type", "schema")
    if kind == "schema":
        return _schema_verdict(ctx, output, spec.get("schema", {}))
    if kind == "llm":
        return _llm_verdict(ctx, output, spec)
    if kind == "custom":
        return _custom_verdict(ctx, output, spec, state)
    raise fail(ctx, _ACTION, f"unknown evaluator type {kind!r} (known: schema, llm, custom)")


def _result(iteration: int, output: Any, history: list[dict[str, Any]], best: tuple[Any, float],
            valid: bool) -> dict[str, Any]:
    out = {"reflection_iteration": iteration, "reflection_output": output,
           "reflection_errors": [] if valid else (history[-1]["errors"] if history else []),
           "reflection_history": history, "reflection_best": output if valid else best[0],
           "reflection_best_score": history[-1]["score"] if valid else best[1],
           "success": valid, "valid": valid}
    if not valid:
        out["exhausted"] = True
    return {**out, **(dict(output) if isinstance(output, Mapping) else {"result": output})}


def _attempt(ctx: ActionContext, generator: Any, evaluator: Any,
             work: dict[str, Any], iteration: int) -> tuple[dict[str, Any], bool]:
    """One generate + evaluate: the history entry, and whether anything was generated.
    A generator that fails at run time is a failed attempt, as in the reference (a bad
    spec fails the node)."""
    try:
        output = _produce(ctx, "generator", generator, work)
    except Exception as exc:
        if getattr(exc, "action", None) == _ACTION:
            raise
        return {"iteration": iteration, "output": None, "score": 0.0, "valid": False,
                "errors": [{"message": f"Generator failed: {exc}"}]}, False
    work["reflection_output"] = output
    verdict = _evaluate(ctx, output, evaluator, work)
    return {"iteration": iteration, "output": output, "score": verdict["score"],
            "valid": verdict["valid"], "errors": verdict["errors"]}, True


def _correct(ctx: ActionContext, corrector: Any, work: dict[str, Any]) -> None:
    """Run the corrector; a mapping it returns is what the next iteration sees."""
    try:
        corrected = _produce(ctx, "corrector", corrector, work)
    except Exception as exc:  # the reference goes on to the next iteration regardless
        work["reflection_errors"].append({"message": f"Corrector failed: {exc}",
                                          "type": "corrector_error"})
        return
    if isinstance(corrected, Mapping):
        work.update(corrected)


@takes_context
def reflection_loop(state: dict[str, Any], generator: Mapping[str, Any],
                    evaluator: Mapping[str, Any], corrector: Mapping[str, Any] | None = None,
                    max_iterations: int = 3, on_failure: str = "return_best", *,
                    ctx: ActionContext) -> dict[str, Any]:
    """Generate → evaluate → correct until valid or ``max_iterations``; see the module."""
    limit = int(to_number(ctx, _ACTION, "max_iterations", max_iterations, minimum=1, integer=True))
    if on_failure not in _FAILURES:
        raise fail(ctx, _ACTION, f"on_failure must be one of {', '.join(_FAILURES)}, "
                   f"got {on_failure!r}")
    work: dict[str, Any] = dict(state)
    history: list[dict[str, Any]] = []
    best: tuple[Any, float] = (None, -1.0)
    for iteration in range(1, limit + 1):
        work.update(reflection_iteration=iteration, reflection_history=history)
        entry, generated = _attempt(ctx, generator, evaluator, work, iteration)
        history.append(entry)
        work["reflection_errors"] = list(entry["errors"])
        if not generated:
            continue
        if entry["score"] > best[1]:
            best = (entry["output"], entry["score"])
        work.update(reflection_best=best[0], reflection_best_score=best[1])
        if entry["valid"]:
            return _result(iteration, entry["output"], history, best, True)
        if iteration < limit and corrector:
            _correct(ctx, corrector, work)
    if on_failure == "raise":
        raise fail(ctx, _ACTION, f"no valid output after {limit} iterations; last errors: "
                   f"{json.dumps(history[-1]['errors'], default=str)[:500]}")
    output = best[0] if on_failure == "return_best" else history[-1]["output"]
    return _result(limit, output, history, best, False)


ACTIONS: dict[str, Action] = {
    "reflection.loop": reflection_loop,
    "actions.reflection_loop": reflection_loop,
}
