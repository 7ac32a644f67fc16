"""Per-model request rules: the known settings a model refuses with a 400.

Which model refuses what is data, not code: ``data/model_rules.csv`` (one row per catalog model and
rule, with the documentation page it comes from), loaded into :attr:`ModelSpec.refused`. This module
only knows how to recognise each rule in a request and what the API answers.

Wording: the sampling-parameter and thinking-budget messages are the API's, as quoted in public
reports (see ``docs/api-notes.md`` §8, row 4); the others are not documented, so they say plainly
what is refused and what to do instead.
"""

from __future__ import annotations

from typing import Callable

from ..models import ModelSpec
from .errors import InvalidRequest
from .request import MessagesRequest

__all__ = ["check_model_rules", "violations"]

# Defaults the API documents for the sampling parameters (sending the default is not a change).
_SAMPLING_DEFAULTS = {"temperature": 1.0, "top_p": 1.0}


def _sampling(req: MessagesRequest) -> str | None:
    for name in ("temperature", "top_p", "top_k"):
        value = getattr(req, name)
        if value is not None and value != _SAMPLING_DEFAULTS.get(name):
            return f"`{name}` is deprecated for this model."
    return None


def _prefill(req: MessagesRequest) -> str | None:
    if req.prefill:
        return (
            "messages: assistant message prefill is not supported for this model; "
            "the conversation must end with a user message."
        )
    return None


def _thinking_budget(req: MessagesRequest) -> str | None:
    if (req.thinking or {}).get("type") == "enabled":
        return '"thinking.type.enabled" is not supported for this model. Use "thinking.type.adaptive" instead.'
    return None


def _thinking_disabled(req: MessagesRequest) -> str | None:
    if (req.thinking or {}).get("type") == "disabled":
        return (
            '"thinking.type.disabled" is not supported for this model. Omit thinking (adaptive thinking) '
            'or, where the model supports it, send thinking.type "between_tools".'
        )
    return None


def _thinking_disabled_high_effort(req: MessagesRequest) -> str | None:
    effort = (req.output_config or {}).get("effort")
    if (req.thinking or {}).get("type") == "disabled" and effort in ("xhigh", "max"):
        return (
            f'"thinking.type.disabled" is only supported with output_config.effort "high" or lower for this model '
            f'(got "{effort}"). Keep thinking on, or lower the effort.'
        )
    return None


def _forced_tool(req: MessagesRequest) -> str | None:
    kind = (req.tool_choice or {}).get("type")
    if kind in ("any", "tool"):
        return (
            f"tool_choice: forced tool use (type '{kind}') is not supported for this model; "
            'use tool_choice {"type": "auto"} and describe in the prompt which tool to use'
        )
    return None


_CHECKS: dict[str, Callable[[MessagesRequest], str | None]] = {
    "sampling_params": _sampling,
    "assistant_prefill": _prefill,
    "thinking_budget": _thinking_budget,
    "thinking_disabled": _thinking_disabled,
    "thinking_disabled_high_effort": _thinking_disabled_high_effort,
    "forced_tool_choice": _forced_tool,
}


def violations(req: MessagesRequest, model: ModelSpec) -> list[tuple[str, str]]:
    """``(rule, message)`` for every rule of ``model.refused`` that ``req`` breaks, in a fixed order."""
    out = []
    for rule, check in _CHECKS.items():
        if rule in model.refused:
            message = check(req)
            if message is not None:
                out.append((rule, message))
    return out


def _thinking_shape(req: MessagesRequest, model: ModelSpec) -> str | None:
    """Rules every model shares, from the thinking pages rather than ``data/model_rules.csv``:

    * adaptive thinking on a model without it (``thinking_modes`` in ``data/models.csv``): "On earlier
      models, including Claude Sonnet 4.5, Claude Opus 4.5, and Claude Haiku 4.5, extended thinking
      is the only thinking mode" (thinking-troubleshooting page); the API's reply, as reported:
      "adaptive thinking is not supported on this model";
    * a budget not below ``max_tokens``: "budget_tokens must be set to a value less than max_tokens.
      However, when using interleaved thinking with tools, you can exceed this limit" (extended
      thinking page), so a request with tools is let through.
    """
    thinking = req.thinking or {}
    kind = thinking.get("type")
    if kind == "adaptive" and model.line is not None and "adaptive" not in model.thinking_modes:
        return "adaptive thinking is not supported on this model"
    budget = thinking.get("budget_tokens")
    if kind == "enabled" and req.max_tokens is not None and isinstance(budget, int) and not req.tools:
        if budget >= req.max_tokens:
            return (
                "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at "
                "https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size"
            )
    return None


def check_model_rules(req: MessagesRequest, model: ModelSpec) -> None:
    """Raise the API's 400 for the first rule ``req`` breaks on ``model``; return if it breaks none."""
    found = violations(req, model)
    if found:
        raise InvalidRequest(found[0][1])
    message = _thinking_shape(req, model)
    if message is not None:
        raise InvalidRequest(message)
