"""Thinking blocks and reply scenarios: which replies start with ``thinking``, which end early.

Kept apart from the skills (what the model says) and from :mod:`..generation` (the output rules),
so both can use it: the skills' ``respond`` attaches a :class:`ThinkingPlan` to each reply, and
``generation.finalize`` reserves its tokens within ``max_tokens``, draws the reply scenario's
refusals and pauses, and prepends the block.
"""

from __future__ import annotations

import os
import threading
import warnings
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from ...tokens import count_text
from ..errors import SimulatorError

__all__ = [
    "THINKING_BY_DEFAULT",
    "REPLY_SCENARIO_ENV",
    "REPLY_SCENARIOS",
    "ShapeError",
    "ThinkingPlan",
    "OMITTED_THINKING_TOKENS",
    "use_hidden_thinking",
    "hidden_thinking_tokens",
    "plan_thinking",
    "reply_scenario",
    "use_reply_scenario",
]

OMITTED_THINKING_TOKENS = 8
"""Output tokens billed for a thinking block whose text is omitted (a stand-in for the hidden tokens)."""

_HIDDEN: list[Mapping[str, int]] = []
"""The lengths :func:`use_hidden_thinking` set, innermost last (process-wide while its block runs)."""
_HIDDEN_LOCK = threading.Lock()


@contextmanager
def use_hidden_thinking(tokens_by_effort: Mapping[str, int]) -> Iterator[None]:
    """Within this block, a thinking block whose text is omitted bills ``tokens_by_effort[effort]`` output
    tokens (the request's ``output_config.effort``, else the model's default) instead of
    :data:`OMITTED_THINKING_TOKENS`.

    The API bills the thinking it did, not the text it returned: "the tokens Claude spends reasoning
    are billed as output tokens, even when the thinking text isn't returned to you"
    (https://platform.claude.com/docs/build-with-claude/thinking), and lower effort thinks less.
    How many tokens a real model thinks is not public; the default stand-in is 8 so that every
    lesson's figures stay small, and a lesson that measures thinking as a cost sets a length here
    and says so. Process-wide, not per context: a simulator's request handling does not always run
    in the context of the code that sent the request, so this is for one measurement at a time
    (a notebook cell, a benchmark), not for concurrent checks.
    """
    bad = {k: v for k, v in tokens_by_effort.items() if not isinstance(v, int) or v < 1}
    if bad:
        raise ValueError(f"hidden thinking lengths must be positive integers, got {bad}")
    lengths = dict(tokens_by_effort)
    with _HIDDEN_LOCK:
        _HIDDEN.append(lengths)
    try:
        yield
    finally:
        with _HIDDEN_LOCK:
            _HIDDEN.remove(lengths)


def hidden_thinking_tokens(effort: str | None) -> int:
    """Output tokens billed for an omitted thinking block at ``effort`` (see :func:`use_hidden_thinking`)."""
    with _HIDDEN_LOCK:
        lengths = _HIDDEN[-1] if _HIDDEN else None
    if lengths is None or effort not in lengths:
        return OMITTED_THINKING_TOKENS
    return lengths[effort]


THINKING_BY_DEFAULT = True
"""Whether models whose default is adaptive thinking (``thinking_default`` in ``data/models.csv``: the
5.x models) start replies with a ``thinking`` block when the request does not mention ``thinking``.

On, as the documentation says (adaptive thinking on by default; "Responses may start with a
thinking block ... select content blocks by type, not position", Haiku 5.5 what's new; Opus 5's
migration guide: a request without ``thinking`` runs with adaptive thinking). Whether a reply
thinks still follows the effort level (:func:`_skips`). The lessons' stored figures were
regenerated with it on (thinking tokens are billed output and take generation time).
"""

REPLY_SCENARIO_ENV = "COURSE_REPLY_SCENARIO"
"""Environment variable naming the reply scenario of every simulator in the process (default ``plain``)."""

REPLY_SCENARIOS: dict[str, dict[str, Any]] = {
    "plain": {"thinking_by_default": None, "refusal": 0.0, "pause_turn": 0.0},
    "realistic": {"thinking_by_default": True, "refusal": 0.05, "pause_turn": 0.03},
    "hostile": {"thinking_by_default": "always", "refusal": 0.25, "pause_turn": 0.15},
}
"""How replies are shaped, independent of faults: ``thinking_by_default`` (None = :data:`THINKING_BY_DEFAULT`;
``"always"`` = think even where the effort level would skip it)
and the share of replies that end in ``refusal`` / ``pause_turn`` (drawn per request from the seed
and the prompt, so reproducible).

- ``plain`` (the default): the models' documented default shapes and nothing rare. Thinking is on by
  default (:data:`THINKING_BY_DEFAULT`), so a 5.x model's reply may start with a ``thinking`` block,
  decided by the request alone (model, effort, prompt length, tools): the same request always gets
  the same blocks and the same token counts. Never a ``refusal`` or ``pause_turn``. Checks pin it
  (:func:`use_reply_scenario`) where a verdict compares exact texts or token counts: the text blocks
  are the scripted texts, and ``usage.output_tokens`` includes the thinking's tokens, so such a
  check compares the text (read by type) and the usage the API reported, never ``content[0]``.
- ``realistic``: the current models as documented, with the rare endings (5% ``refusal``, 3%
  ``pause_turn``).
- ``hostile``: makes the rare shapes common, to test that code survives them: thinking on every reply
  of a model that thinks, whatever the effort, a quarter of replies refused, 15% paused."""


class ShapeError(SimulatorError, ValueError):
    """A bad ``x-mock-shape`` header or reply scenario (the caller turns it into a 400)."""


_PINNED: ContextVar[str | None] = ContextVar("course_reply_scenario", default=None)


@contextmanager
def use_reply_scenario(name: str) -> Iterator[None]:
    """Within this block (and the tasks and threads it starts), replies follow scenario ``name``
    whatever :data:`REPLY_SCENARIO_ENV` says: e.g. a check's probe pins ``"plain"`` when its verdict
    compares exact reply texts, or ``"hostile"`` to test code against thinking blocks and refusals.
    Applies to in-process simulators (a server in another thread does not see the context)."""
    reply_scenario(name)  # fail early on an unknown name
    token = _PINNED.set(name)
    try:
        yield
    finally:
        _PINNED.reset(token)


def reply_scenario(name: str | None = None) -> dict[str, Any]:
    """The reply scenario named, else the one pinned by :func:`use_reply_scenario`, else the one
    :data:`REPLY_SCENARIO_ENV` names (``plain`` if unset)."""
    if name is None:
        name = _PINNED.get()
    if name is None:
        env = os.environ.get(REPLY_SCENARIO_ENV, "").strip() or "plain"
        if env not in REPLY_SCENARIOS:
            # A typo in the environment must not turn every reply into a 500: say so, and stay plain.
            warnings.warn(
                f"{REPLY_SCENARIO_ENV}={env!r} is not a reply scenario (known: "
                f"{', '.join(REPLY_SCENARIOS)}); using 'plain'",
                RuntimeWarning,
                stacklevel=2,
            )
            return REPLY_SCENARIOS["plain"]
        return REPLY_SCENARIOS[env]
    try:
        return REPLY_SCENARIOS[name.strip()]
    except KeyError:
        raise ShapeError(f"unknown reply scenario {name!r}; known: {', '.join(REPLY_SCENARIOS)}") from None


@dataclass(frozen=True)
class ThinkingPlan:
    """The thinking block a reply starts with: its text (empty when ``display`` is omitted) and tokens."""

    text: str
    tokens: int


def plan_thinking(
    request: Any, model: Any, *, forced: bool = False, scenario: dict[str, Any] | None = None
) -> ThinkingPlan | None:
    """Whether this reply starts with a thinking block, as the model's documentation describes.

    - ``thinking: {"type": "disabled"}``: no thinking (the models that refuse it were refused earlier);
      ``between_tools``: none up front either (its thinking blocks come between tool calls).
    - ``{"type": "adaptive" | "enabled"}``: thinking; adaptive skips it at ``effort: "low"``, and at
      ``medium`` (the request's, or the model's default) for a simple request (:func:`_skips`).
    - no ``thinking``: the model's ``thinking_default`` (``adaptive`` on the 5.x models, none on the
      older ones), when thinking by default is on (:data:`THINKING_BY_DEFAULT` or the scenario); never
      under a forced ``tool_choice`` (``any`` / ``tool``): forcing a tool prefills the reply with the
      ``tool_use``, and "forced tool use ... is incompatible with extended thinking" (extended-thinking
      guide), so a request that forces a tool and says nothing about thinking does not think.
    - ``display``: ``omitted`` (empty text) by default on models whose default is adaptive
      ("Thinking text is omitted by default", Haiku 5.5 what's new), ``summarized`` otherwise.
    """
    cfg = request.thinking if isinstance(getattr(request, "thinking", None), dict) else None
    default_adaptive = getattr(model, "thinking_default", "none") == "adaptive"
    effort = ((getattr(request, "output_config", None) or {}).get("effort")) or getattr(model, "default_effort", None)
    always = (scenario or {}).get("thinking_by_default") == "always"
    if forced:
        display = "omitted"
    elif cfg is not None:
        kind = cfg.get("type")
        if kind in ("disabled", "between_tools"):
            # between_tools: "thinking turned off, and any short progress updates the model writes
            # between tool calls come back as thinking blocks" (SDK ThinkingTypes): none up front.
            return None
        if not getattr(model, "thinking_supported", True):
            return None
        if kind == "adaptive" and not always and _skips(effort, request):
            return None
        display = cfg.get("display") or ("omitted" if default_adaptive else "summarized")
    else:
        by_default = (scenario or {}).get("thinking_by_default")
        if by_default is None:
            by_default = THINKING_BY_DEFAULT
        if not (default_adaptive and by_default) or _forces_a_tool(request):
            return None
        if not always and _skips(effort, request):
            return None
        display = "omitted"
    if display == "omitted":
        return ThinkingPlan("", hidden_thinking_tokens(effort))
    text = _thinking_summary(request)
    return ThinkingPlan(text, count_text(text))


_SIMPLE_WORDS = 40


def _forces_a_tool(request: Any) -> bool:
    """Whether ``tool_choice`` forces tool use (``any`` or a named ``tool``)."""
    choice = getattr(request, "tool_choice", None)
    return isinstance(choice, dict) and choice.get("type") in ("any", "tool")


def _skips(effort: str | None, request: Any) -> bool:
    """Whether adaptive thinking skips this request: always at ``low`` effort; at ``medium`` (the default
    of Haiku 5.5 and Opus 5.5) for a simple one, a short last user turn with no tools. The docs: "At
    the default effort level (high), Claude almost always thinks. At lower effort levels, Claude may
    skip thinking for simpler problems." A deterministic stand-in for "simpler"."""
    if effort == "low":
        return True
    if effort == "medium":
        words = len((getattr(request, "last_user_text", "") or "").split())
        return words < _SIMPLE_WORDS and not getattr(request, "tools", ())
    return False


def _thinking_summary(request: Any) -> str:
    asked = " ".join((getattr(request, "last_user_text", "") or "").split()[:16])
    return f"The user asks: {asked}. I will answer directly and concisely." if asked else "I will answer directly."
