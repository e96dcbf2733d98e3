"""What a step's templates read, and rendering its parameters just before it starts.

::

    {{ fetch.output.body }}     the output of step fetch (one the step depends on, checked at load);
                                {{ fetch.status }} and {{ fetch.error }} too
    {{ env.HOME }}              the driver's environment
    {{ context.user }}          the run's input (tea run -i '{"user": ...}')
    {{ config.retry_attempts }} the mission's config block
    {{ secrets.api_token }}     --secrets (outputs and errors are redacted, never the values sent)

Rendering happens in the driver, where every finished step's output is, so a
step running on a worker process or a remote host receives plain values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tea.mission.model import Step
from tea.mission.result import StepResult
from tea.secrets import Secrets
from tea.templates import EnvironProxy, TemplateError, render_value

__all__ = ["TemplateError", "Variables"]


class Variables:
    """The run-wide part of every template's context; ``render`` adds the step's inputs."""

    def __init__(self, context: Mapping[str, Any], config: Mapping[str, Any], secrets: Secrets) -> None:
        self.base: dict[str, Any] = {"env": EnvironProxy(), "context": dict(context), "config": dict(config),
                                     "secrets": secrets}

    def render(self, step: Step, outputs: Mapping[str, Mapping[str, Any]],
               results: Mapping[str, StepResult]) -> dict[str, Any]:
        """``step``'s parameters with its templates rendered (``TemplateError`` when one fails).

        ``outputs`` are the finished steps' outputs as they were produced (not redacted);
        ``results`` give their status and error.
        """
        if step.static:
            return dict(step.parameters)
        scope = dict(self.base)
        for name in step.reads:
            result = results.get(name)
            scope[name] = {
                "output": outputs.get(name, {}),
                "status": result.status if result is not None else None,
                "error": result.error if result is not None else None,
            }
        rendered: dict[str, Any] = render_value(dict(step.parameters), scope)
        return rendered
