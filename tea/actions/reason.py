"""Reasoning patterns over ``llm.call``: ``reason.cot``, ``reason.react``, ``reason.self_correct``.

The prompts, parameters and result keys are the reference's. Every other
``with:`` key (``model``, ``provider``, ``shell_provider``, ``api_base``,
``timeout``...) goes to ``llm.call``, over ``settings.llm`` as usual. A failed
LLM call fails the node (the reference returns ``{error, success: false}``
instead; tea's ``on_error`` handles it). ``reasoning_trace`` entries carry a
``timestamp`` (seconds since the epoch) as in the reference.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from tea.actions._common import Action, ActionContext, fail, takes_context, to_number
from tea.actions._nested import (
    ask_llm,
    call_named,
    llm_options,
    lookup,
    option_problems,
    parse_json,
)

__all__ = ["ACTIONS", "reason_cot", "reason_react", "reason_self_correct"]

THINKING_FORMATS = {
    "step_by_step": "Think through this step by step:\n1. First, identify the key components of "
    "the problem\n2. Work through each component systematically\n3. Show your reasoning at each "
    "step\n4. Arrive at a final answer",
    "pros_cons": "Analyze this by considering pros and cons:\n1. List the positive "
    "aspects/arguments\n2. List the negative aspects/arguments\n3. Weigh the evidence\n4. Reach a "
    "balanced conclusion",
    "tree": "Think through this using tree-structured reasoning:\n1. Identify the main branches "
    "of analysis\n2. Explore each branch systematically\n3. Combine insights from all branches\n"
    "4. Synthesize a final answer",
    "first_principles": "Reason from first principles:\n1. Identify the fundamental truths or "
    "axioms\n2. Build up your reasoning from these foundations\n3. Question assumptions at each "
    "step\n4. Derive the answer logically",
}
COT_SYSTEM = """You are a careful reasoning assistant. When given a problem, you will think \
through it systematically before providing your answer.

Your response MUST be valid JSON in this exact format:
{{
  "thinking": "Your detailed step-by-step reasoning here...",
  "answer": "Your final answer here (can be a string, number, or structured data)"
}}

{thinking_format}"""
REACT_SYSTEM = """You are a ReAct agent. For each step, you will:
1. THINK about what you need to do
2. Decide on an ACTION to take (or conclude if you have the answer)
3. Wait for the OBSERVATION from the action

You have access to these tools:
{tools}

Your response MUST be valid JSON in one of these formats:

For taking an action:
{{"thought": "Your reasoning about what to do next...", "action": "tool_name", \
"action_input": {{"param1": "value1"}}}}

For providing the final answer (when you have enough information):
{{"thought": "Your reasoning about why you can now answer...", "action": "final_answer", \
"action_input": {{"answer": "Your final answer here"}}}}

Think carefully and only use the final_answer action when you truly have the answer."""
SELF_CORRECT_SYSTEM = """You are a self-improving assistant. You will generate an initial \
response, then critique and improve it.

Your response MUST be valid JSON in this format:
{
  "output": "Your response to the task",
  "confidence": 0.0 to 1.0,
  "potential_issues": ["Issue 1", "Issue 2"]
}"""
CRITIC_SYSTEM = """You are a critical reviewer. Analyze the given output and identify \
improvements.

{critic_prompt}

Your response MUST be valid JSON in this format:
{{
  "issues": ["Issue 1", "Issue 2"],
  "suggestions": ["Suggestion 1", "Suggestion 2"],
  "improved_output": "The improved version of the output",
  "improvement_score": 0.0 to 1.0
}}"""
_DEFAULT_CRITIC = "Identify any issues with correctness, clarity, completeness, and style."


def _examples(examples: Any) -> str:
    if not examples:
        return ""
    parts = ["\n\nHere are some examples:\n"]
    for i, ex in enumerate(examples if isinstance(examples, list) else [], 1):
        ex = ex if isinstance(ex, Mapping) else {}
        parts += [f"\nExample {i}:", f"Problem: {ex.get('problem', '')}",
                  f"Thinking: {ex.get('thinking', '')}", f"Answer: {ex.get('answer', '')}"]
    return "\n".join(parts)


def _model(opts: Mapping[str, Any], ctx: ActionContext) -> Any:
    return opts.get("model") or ctx.section("llm").get("model")


@takes_context
def reason_cot(state: dict[str, Any], problem: Any, thinking_format: str = "step_by_step",
               few_shot_examples: list[dict[str, Any]] | None = None,
               temperature: float | None = None, *, ctx: ActionContext,
               **llm: Any) -> dict[str, Any]:
    """Chain of thought: ``{thinking, answer, reasoning_trace, model, thinking_format,
    reasoning_thinking, reasoning_answer}``."""
    opts = llm_options(ctx, "reason.cot", {**llm, "temperature": temperature})
    system = COT_SYSTEM.format(thinking_format=THINKING_FORMATS.get(
        thinking_format, THINKING_FORMATS["step_by_step"])) + _examples(few_shot_examples)
    trace: list[dict[str, Any]] = [{"step": "cot_request", "timestamp": time.time(),
                                    "problem": problem, "thinking_format": thinking_format,
                                    "model": _model(opts, ctx)}]
    reply = ask_llm(ctx, [{"role": "system", "content": system},
                          {"role": "user", "content": f"Problem: {problem}"}], opts)
    try:
        parsed = parse_json(reply["content"])
    except ValueError as exc:
        raise fail(ctx, "reason.cot", f"the model's reply is not the JSON asked for: {exc}") from None
    parsed = parsed if isinstance(parsed, Mapping) else {"answer": parsed}
    thinking, answer = parsed.get("thinking", ""), parsed.get("answer", "")
    trace.append({"step": "cot_response", "timestamp": time.time(), "thinking": thinking,
                  "answer": answer, "usage": reply.get("usage", {})})
    return {"thinking": thinking, "answer": answer, "reasoning_trace": trace,
            "model": _model(opts, ctx), "thinking_format": thinking_format,
            "reasoning_thinking": thinking, "reasoning_answer": answer}


def _tools_text(ctx: ActionContext, tools: list[str]) -> str:
    lines = []
    for name in tools:
        doc = (getattr(lookup(ctx, "reason.react", name), "__doc__", None) or "").strip()
        lines.append(f"- {name}: {doc.splitlines()[0] if doc else f'Execute the {name} action'}")
    lines.append("- final_answer: Use this when you have the final answer to the goal")
    return "\n".join(lines)


def _observe(ctx: ActionContext, state: dict[str, Any], tools: list[str], action: Any,
             action_input: Any) -> str:
    if action not in tools:
        return f"Unknown action: {action}. Available: {tools}"
    params = action_input if isinstance(action_input, Mapping) else {"input": action_input}
    try:
        return json.dumps(call_named(ctx, "reason.react", action, state, params), default=str)
    except Exception as exc:  # the model sees the failure and may try something else
        return f"Error executing {action}: {exc}"


@takes_context
def reason_react(state: dict[str, Any], goal: Any, tools: list[str] | None = None,
                 max_steps: int = 10, temperature: float | None = None, *,
                 ctx: ActionContext, **llm: Any) -> dict[str, Any]:
    """Thought → action → observation until ``final_answer``: ``{steps, final_answer,
    reasoning_trace, react_steps, model, total_steps}`` (+ ``reasoning_answer``)."""
    opts = llm_options(ctx, "reason.react", {**llm, "temperature": temperature})
    limit = int(to_number(ctx, "reason.react", "max_steps", max_steps, minimum=1, integer=True))
    available = [str(t) for t in tools or []]
    messages = [{"role": "system", "content": REACT_SYSTEM.format(tools=_tools_text(ctx, available))},
                {"role": "user", "content": f"Goal: {goal}"}]
    trace: list[dict[str, Any]] = [{"step": "react_start", "timestamp": time.time(), "goal": goal,
                                    "tools": available, "max_steps": limit}]
    steps: list[dict[str, Any]] = []
    model = _model(opts, ctx)
    for number in range(1, limit + 1):
        content = ask_llm(ctx, messages, opts)["content"]
        text = content if isinstance(content, str) else json.dumps(content)
        messages.append({"role": "assistant", "content": text})
        try:
            parsed = parse_json(content)
            if not isinstance(parsed, Mapping):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            trace.append({"step": f"step_{number}_parse_error", "timestamp": time.time(),
                          "error": str(exc), "raw_content": text[:500]})
            messages.append({"role": "user", "content": "Your response was not valid JSON. "
                             "Please respond with valid JSON."})
            continue
        record = {"step": number, "thought": parsed.get("thought", ""),
                  "action": parsed.get("action", ""),
                  "action_input": parsed.get("action_input", {}), "timestamp": time.time()}
        if record["action"] == "final_answer":
            given = record["action_input"]
            answer = given.get("answer", given) if isinstance(given, Mapping) else given
            steps.append({**record, "observation": "Goal achieved."})
            trace.append({**steps[-1], "step": f"step_{number}", "type": "final_answer"})
            return {"steps": steps, "final_answer": answer, "reasoning_trace": trace,
                    "react_steps": steps, "reasoning_answer": answer, "model": model,
                    "total_steps": number}
        observation = _observe(ctx, state, available, record["action"], record["action_input"])
        steps.append({**record, "observation": observation})
        trace.append({**steps[-1], "step": f"step_{number}", "type": "action"})
        messages.append({"role": "user", "content": f"Observation: {observation}"})
    return {"steps": steps, "final_answer": None, "reasoning_trace": trace, "react_steps": steps,
            "model": model, "total_steps": limit,
            "warning": f"Max steps ({limit}) reached without achieving goal"}


def _first_draft(ctx: ActionContext, task: Any, opts: Mapping[str, Any]) -> dict[str, Any]:
    content = ask_llm(ctx, [{"role": "system", "content": SELF_CORRECT_SYSTEM},
                            {"role": "user", "content": f"Task: {task}"}], opts)["content"]
    try:
        parsed = parse_json(content)
    except ValueError:
        parsed = None
    if not isinstance(parsed, Mapping):
        return {"output": content, "confidence": 0.5, "potential_issues": []}
    return {"output": parsed.get("output", content), "confidence": parsed.get("confidence", 0.5),
            "potential_issues": parsed.get("potential_issues", [])}


@takes_context
def reason_self_correct(state: dict[str, Any], task: Any, generator_model: str | None = None,
                        critic_model: str | None = None, improvement_rounds: int = 2,
                        critic_prompt: str | None = None, temperature: float | None = None, *,
                        ctx: ActionContext, **llm: Any) -> dict[str, Any]:
    """Generate, then critique and improve ``improvement_rounds`` times: ``{output,
    improvement_history, reasoning_trace, reasoning_answer, model, generator_model,
    critic_model, rounds_completed}``."""
    opts = llm_options(ctx, "reason.self_correct", {**llm, "temperature": temperature})
    rounds = int(to_number(ctx, "reason.self_correct", "improvement_rounds", improvement_rounds,
                           minimum=0, integer=True))
    model = _model(opts, ctx)
    gen_model, crit_model = generator_model or model, critic_model or model
    draft = _first_draft(ctx, task, {**opts, "model": gen_model} if gen_model else opts)
    output = draft["output"]
    history: list[dict[str, Any]] = [{"round": 0, "type": "initial", **draft,
                                      "timestamp": time.time()}]
    trace: list[dict[str, Any]] = [{"step": "initial_generation", "timestamp": time.time(),
                                    "output": str(output)[:500],
                                    "confidence": draft["confidence"]}]
    system = CRITIC_SYSTEM.format(critic_prompt=critic_prompt or _DEFAULT_CRITIC)
    critic_opts = {**opts, "model": crit_model} if crit_model else opts
    for number in range(1, rounds + 1):
        content = ask_llm(ctx, [{"role": "system", "content": system},
                                {"role": "user", "content": f"Task: {task}\n\nCurrent output:\n"
                                 f"{output}"}], critic_opts)["content"]
        try:
            critique = parse_json(content)
            if not isinstance(critique, Mapping):
                raise ValueError("not a JSON object")
        except ValueError:
            trace.append({"step": f"critique_round_{number}_parse_error",
                          "timestamp": time.time(), "raw_content": str(content)[:200]})
            continue
        output = critique.get("improved_output", output)
        history.append({"round": number, "type": "improvement",
                        "issues_found": critique.get("issues", []),
                        "suggestions": critique.get("suggestions", []), "output": output,
                        "improvement_score": critique.get("improvement_score", 0.5),
                        "timestamp": time.time()})
        trace.append({"step": f"improvement_round_{number}", "timestamp": time.time(),
                      "issues_count": len(history[-1]["issues_found"]),
                      "improvement_score": history[-1]["improvement_score"]})
    return {"output": output, "improvement_history": history, "reasoning_trace": trace,
            "reasoning_answer": output, "model": model, "generator_model": gen_model,
            "critic_model": crit_model, "rounds_completed": rounds}


reason_cot.__tea_validate__ = lambda p, s: option_problems(  # type: ignore[attr-defined]
    p, ("problem", "thinking_format", "few_shot_examples", "temperature"))
reason_react.__tea_validate__ = lambda p, s: option_problems(  # type: ignore[attr-defined]
    p, ("goal", "tools", "max_steps", "temperature"))
reason_self_correct.__tea_validate__ = lambda p, s: option_problems(  # type: ignore[attr-defined]
    p, ("task", "generator_model", "critic_model", "improvement_rounds", "critic_prompt",
        "temperature"))

ACTIONS: dict[str, Action] = {
    "reason.cot": reason_cot,
    "actions.reason_cot": reason_cot,
    "reason.react": reason_react,
    "actions.reason_react": reason_react,
    "reason.self_correct": reason_self_correct,
    "actions.reason_self_correct": reason_self_correct,
}
