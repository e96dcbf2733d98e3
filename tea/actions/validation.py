"""``validate.extraction`` and ``retry.loop``: check extracted data, and retry with corrections.

``validate.extraction`` runs the reference's layers in order and stops at the
first that fails: the structural ``schema`` (``entities.required_fields``;
``relationships.types``, ``required_fields``, ``type_requirements``), then the
``probes`` (for each entity or relationship matching ``where``, a yes/no
question to ``llm.call``; a "no" with ``on_fail: reject`` stops, ``warn`` goes
on). It returns ``{valid, errors, validated_at}``. Entities, relationships and
the source text default to ``state.entities``, ``state.relationships`` and
``state.text``; schema, probes and logging default to the workflow's top-level
``extraction_schema``, ``semantic_probes`` and ``validation_logging`` when the
engine provides them. Prolog ``constraints`` need a Prolog engine tea does not
have: giving them fails the node.

``retry.loop`` calls the ``validate`` action; while it says ``valid: false`` and
retries remain, it runs ``correct`` (a node of the graph, when the engine
provides ``ctx.run_node``, or an ``{action: ...}`` / ``{run: ...}`` mapping) and
validates again. It returns the corrected state plus ``_retry_count``,
``_retry_errors``, ``_retry_result``, ``_retry_exhausted`` and the last
validation result's keys.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from tea.actions._common import Action, ActionContext, confine, fail, takes_context, to_number
from tea.actions._nested import ask_llm, call_named, run_snippet
from tea.templates import compile_expression, compile_template

__all__ = ["ACTIONS", "retry_loop", "validate_extraction"]

_EQ = re.compile(r"^\s*(\w+)\s*(==|!=)\s*['\"]([^'\"]+)['\"]\s*$")
_NEGATIVE = ("no", "false", "incorrect", "negative", "not true", "not correct")
_POSITIVE = ("yes", "true", "correct", "affirmative", "indeed")
_CHECKER = "You are a fact-checker. Answer with ONLY 'yes' or 'no'."


def _missing(kind: str, index: int, item: Mapping[str, Any], name: str, error: str,
             message: str) -> dict[str, Any]:
    return {"type": error, "path": f"{kind}[{index}].{name}",
            "entity" if kind == "entities" else "relationship": item, "expected": name,
            "actual": None, "message": message}


def _structural(schema: Mapping[str, Any], entities: list[Any],
                relationships: list[Any]) -> list[dict[str, Any]]:
    ents, rels = schema.get("entities") or {}, schema.get("relationships") or {}
    errors = []
    for i, entity in enumerate(entities):
        for name in ents.get("required_fields", []):
            if entity.get(name) is None:
                errors.append(_missing("entities", i, entity, name, "missing_required_field",
                                       f"Entity missing required field '{name}'"))
    types, needs = rels.get("types", []), rels.get("type_requirements", {})
    for i, rel in enumerate(relationships):
        for name in rels.get("required_fields", []):
            if rel.get(name) is None:
                errors.append(_missing("relationships", i, rel, name, "missing_required_field",
                                       f"Relationship missing required field '{name}'"))
        kind = rel.get("type")
        if types and kind not in types:
            errors.append({"type": "invalid_relationship_type", "path": f"relationships[{i}].type",
                           "relationship": rel, "expected": types, "actual": kind,
                           "message": f"Invalid relationship type '{kind}', expected one of {types}"})
        for name in needs.get(kind, []) if kind else []:
            if rel.get(name) is None:
                errors.append(_missing("relationships", i, rel, name, "missing_type_specific_field",
                                       f"Relationship type '{kind}' requires field '{name}'"))
    return errors


def _matches(where: Any, item: Mapping[str, Any]) -> bool:
    if not where:
        return True
    simple = _EQ.match(str(where))
    if simple:
        name, op, value = simple.groups()
        return (str(item.get(name)) == value) == (op == "==")
    try:
        return bool(compile_expression(str(where)).render(dict(item)))
    except Exception:  # as in the reference, a condition that cannot be evaluated is false
        return False


def _says_yes(text: Any) -> bool:
    lower = str(text).lower().strip()
    if any(word in lower for word in _NEGATIVE):
        return False
    return any(word in lower for word in _POSITIVE)


def _probe_options(ctx: ActionContext, state: Mapping[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {"max_tokens": 10}
    if state.get("llm_model"):  # the reference lets state pick the probing model
        options["model"] = state["llm_model"]
    if state.get("llm_provider") in ("ollama", "openai", "shell"):
        options["provider"] = state["llm_provider"]
    return options


def _probe_one(ctx: ActionContext, probe: Mapping[str, Any], item: Mapping[str, Any],
               context: dict[str, Any], options: dict[str, Any]) -> dict[str, Any] | None:
    """The error for one probe on one item, or ``None`` when the model says yes."""
    template = str(probe.get("probe", ""))
    try:
        question = str(compile_template(template).render({**item, **context}))
    except Exception as exc:
        return {"type": "probe_render_error", "message": str(exc), "probe": template, "item": item}
    try:
        answer = ask_llm(ctx, [{"role": "system", "content": _CHECKER},
                               {"role": "user", "content": question}], options)["content"]
    except Exception as exc:
        return {"type": "probe_execution_error", "message": str(exc), "probe": template,
                "question": question, "item": item}
    if _says_yes(answer):
        return None
    return {"type": "semantic_probe_failed", "probe": template, "question": question,
            "response": answer, "item": item, "message": f"LLM probe failed: {question}"}


def _probes(ctx: ActionContext, probes: list[Any], data: dict[str, list[Any]],
            context: dict[str, Any], state: Mapping[str, Any]) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    options = _probe_options(ctx, state)
    for probe in probes:
        kind = probe.get("for_each") if isinstance(probe, Mapping) else None
        if kind not in ("entity", "relationship"):
            errors.append({"type": "invalid_probe_config",
                           "message": f"Invalid for_each value: {kind}"})
            continue
        for item in data[kind]:
            if not _matches(probe.get("where"), item):
                continue
            error = _probe_one(ctx, probe, item, context, options)
            if error is not None:
                errors.append(error)
                if probe.get("on_fail", "reject") == "reject":
                    return errors
    return errors


def _log_failure(ctx: ActionContext, config: Any, agent: str, layer: str,
                 errors: list[dict[str, Any]], attempt: dict[str, Any]) -> None:
    if not (isinstance(config, Mapping) and config.get("enabled")
            and config.get("log_failures", True)):
        return
    path = confine(ctx, "validate.extraction", os.path.expandvars(
        str(config.get("log_path", "./validation_failures.jsonl"))), name="log_path")
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"timestamp": datetime.now(UTC).isoformat(), "agent_name": agent,
             "failure_type": layer, "context": {"errors": errors}, "extraction_attempt": attempt}
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(entry, default=str) + "\n")


def _document(ctx: ActionContext, key: str) -> Any:
    document = getattr(ctx, "document", None)
    return document.get(key) if isinstance(document, Mapping) else None


@takes_context
def validate_extraction(state: dict[str, Any], entities: list[dict[str, Any]] | None = None,
                        relationships: list[dict[str, Any]] | None = None,
                        source_text: str | None = None, schema: Mapping[str, Any] | None = None,
                        constraints: Mapping[str, Any] | None = None,
                        probes: list[dict[str, Any]] | None = None,
                        logging: Mapping[str, Any] | None = None, agent_name: str = "unknown",
                        *, ctx: ActionContext) -> dict[str, Any]:
    """Check extracted entities and relationships; ``{valid, errors, validated_at}``."""
    if constraints or _document(ctx, "validation_constraints"):
        raise fail(ctx, "validate.extraction", "Prolog validation constraints are not supported "
                   "by tea", hint="drop constraints:/validation_constraints or check in a run: node")
    data = {"entity": list(state.get("entities", []) if entities is None else entities),
            "relationship": list(state.get("relationships", []) if relationships is None
                                 else relationships)}
    text = state.get("text", "") if source_text is None else source_text
    schema = schema or _document(ctx, "extraction_schema")
    probes = probes or _document(ctx, "semantic_probes") or []
    logging = logging or _document(ctx, "validation_logging")
    attempt = {"entities": data["entity"], "relationships": data["relationship"]}
    for layer in ("schema", "probe"):
        errors = (_structural(schema or {}, data["entity"], data["relationship"])
                  if layer == "schema" else
                  _probes(ctx, list(probes), data, {"state": state, "text": text or ""}, state))
        if errors:
            _log_failure(ctx, logging, agent_name, layer, errors, attempt)
            return {"valid": False, "errors": errors,
                    "validated_at": datetime.now(UTC).isoformat()}
    return {"valid": True, "errors": [], "validated_at": datetime.now(UTC).isoformat()}


def _corrector(ctx: ActionContext, correct: Any, work: dict[str, Any]) -> Any:
    if isinstance(correct, Mapping) and "action" in correct:
        params = {k: v for k, v in correct.items() if k != "action"}
        return call_named(ctx, "retry.loop", str(correct["action"]), work, params)
    if isinstance(correct, Mapping) and "run" in correct:
        return run_snippet(ctx, "retry.loop correct", correct["run"], {"state": work})
    run_node = getattr(ctx, "run_node", None)
    if not callable(run_node):
        raise fail(ctx, "retry.loop", f"cannot run the correction node '{correct}' from here",
                   hint="give correct: as {action: ...} or {run: ...}")
    return run_node(str(correct), work)


@takes_context
def retry_loop(state: dict[str, Any], validate: str, correct: Any,
               validate_args: Mapping[str, Any] | None = None, max_retries: int = 1,
               retry_delay: float = 0.0, *, ctx: ActionContext) -> dict[str, Any]:
    """Validate, correct and validate again up to ``max_retries`` times; see the module."""
    retries = int(to_number(ctx, "retry.loop", "max_retries", max_retries, minimum=0, integer=True))
    delay = to_number(ctx, "retry.loop", "retry_delay", retry_delay, minimum=0)
    if not correct:
        raise fail(ctx, "retry.loop", "'correct' is required (a node name or {action: ...})")
    work, count = dict(state), 0
    while True:
        work["_retry_count"] = count
        try:
            result = call_named(ctx, "retry.loop", validate, work, dict(validate_args or {}),
                                local={"validate.extraction": validate_extraction})
        except Exception as exc:
            if getattr(exc, "action", None) == "retry.loop":
                raise
            result = {"valid": False, "errors": [{"message": str(exc), "type": "validation_error"}]}
        result = dict(result) if isinstance(result, Mapping) else {"valid": bool(result)}
        errors = list(result.get("errors", []))
        done = bool(result.get("valid", False)) or count == retries
        work["_retry_errors"] = errors
        if done:
            valid = bool(result.get("valid", False))
            return {**work, "_retry_count": count, "_retry_errors": [] if valid else errors,
                    "_retry_result": result, "_retry_exhausted": not valid, **result}
        try:
            update = _corrector(ctx, correct, work)
        except Exception as exc:
            if getattr(exc, "action", None) == "retry.loop":
                raise
            return {**work, "_retry_count": count, "_retry_exhausted": False, "valid": False,
                    "_retry_errors": [*errors, {"message": f"Correction '{correct}' failed: {exc}",
                                                "type": "correction_error"}],
                    "_retry_result": {"valid": False, "errors": errors, "correction_error": str(exc)}}
        if isinstance(update, Mapping):
            work.update(update)
        if delay:
            time.sleep(delay)
        count += 1


ACTIONS: dict[str, Action] = {
    "validate.extraction": validate_extraction,
    "actions.validate_extraction": validate_extraction,
    "retry.loop": retry_loop,
    "actions.retry_loop": retry_loop,
}
