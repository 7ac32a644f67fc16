"""The model catalog (``data/models.csv``): context windows, output limits, latency and quality.

Shared by the simulator (latency, context checks, classification accuracy) and by lesson code
(routing, budgets), so there is one table to edit. The request rules each model enforces (which
settings it refuses with a 400) come from ``data/model_rules.csv``, one row per model and rule with
the documentation page it was read from.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from .errors import CourseError

__all__ = [
    "ModelSpec",
    "DATA_DIR",
    "RULES",
    "catalog",
    "get_model",
    "UnknownModelError",
    "RetiredModelError",
    "DEFAULT_MODEL",
]

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEFAULT_MODEL = "claude-haiku-5-5"

RULES: tuple[str, ...] = (
    "sampling_params",
    "assistant_prefill",
    "thinking_budget",
    "forced_tool_choice",
    "thinking_disabled",
    "thinking_disabled_high_effort",
)
"""The request rules ``data/model_rules.csv`` states for every model (``allowed`` true or false)."""


class UnknownModelError(CourseError, KeyError):
    """Raised for a model id the catalog does not list (or one that is retired, for inference)."""


class RetiredModelError(UnknownModelError):
    """Raised for a model past its end-of-life date: it stays in the catalog, but requests naming it fail."""


def _epoch(value: str) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


@dataclass(frozen=True)
class ModelSpec:
    """One row of the model catalog."""

    id: str
    display_name: str
    created_at: str
    context_window: int
    max_output: int
    ttft_s: float
    """Median time to first token at ``time_scale=1``, in seconds."""
    output_tps: float
    """Median output rate at ``time_scale=1``, tokens per second."""
    quality: float
    """Probability (0..1) of labelling an item of average difficulty correctly."""
    verbosity: float
    """Relative length of free-form answers (1.0 = balanced)."""
    min_cache_tokens: int
    """Shortest prefix that prompt caching will cache for this model."""
    tier: str
    thinking_default: str = "none"
    """``adaptive``: replies start with a thinking block unless the request disables it (the 5.5 models);
    ``none``: only when the request enables thinking (``data/models.csv``)."""
    line: str | None = None
    """The model line (``opus``, ``sonnet``, ``haiku``, ...), or None (the teaching model)."""
    thinking_modes: frozenset[str] = frozenset()
    """Thinking types besides ``enabled``/``disabled`` that the model accepts (``adaptive``, ``between_tools``)."""
    default_effort: str | None = None
    """The API's default ``output_config.effort`` for the model (e.g. ``medium`` on Haiku 5.5), or None."""
    deprecated_at: str | None = None
    """RFC 3339 time of the model's deprecation (None while active)."""
    retires_at: str | None = None
    """RFC 3339 end-of-life time: from then on requests naming the model get 404 (None: not scheduled)."""
    refused: frozenset[str] = frozenset()
    """The :data:`RULES` this model refuses with a 400 (e.g. ``forced_tool_choice`` on Sonnet 5.5)."""

    def lifecycle(self, now: float) -> str:
        """``active``, ``deprecated`` or ``retired`` at epoch time ``now`` (as the models API reports it)."""
        retires = _epoch(self.retires_at or "")
        if retires is not None and now >= retires:
            return "retired"
        return "deprecated" if self.deprecated_at else "active"

    @property
    def thinking_supported(self) -> bool:
        """Whether the model thinks at all (every real Claude model here; not the teaching model)."""
        return self.line is not None

    @property
    def forced_tool_use(self) -> bool:
        """Whether ``tool_choice`` of type ``any``/``tool`` is accepted."""
        return "forced_tool_choice" not in self.refused


@lru_cache(maxsize=1)
def catalog() -> dict[str, ModelSpec]:
    """All models, keyed by id, in catalog order."""
    refused = _refused_rules()
    rows: dict[str, ModelSpec] = {}
    with open(DATA_DIR / "models.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            rows[row["id"]] = ModelSpec(
                id=row["id"],
                display_name=row["display_name"],
                created_at=row["created_at"],
                context_window=int(row["context_window"]),
                max_output=int(row["max_output"]),
                ttft_s=float(row["ttft_s"]),
                output_tps=float(row["output_tps"]),
                quality=float(row["quality"]),
                verbosity=float(row["verbosity"]),
                min_cache_tokens=int(row["min_cache_tokens"]),
                tier=row["tier"],
                thinking_default=row.get("thinking_default") or "none",
                line=row.get("line") or None,
                thinking_modes=frozenset(t for t in (row.get("thinking_modes") or "").split(";") if t),
                default_effort=row.get("default_effort") or None,
                deprecated_at=row.get("deprecated_at") or None,
                retires_at=row.get("retires_at") or None,
                refused=refused.get(row["id"], frozenset()),
            )
    missing = {m: set(RULES) - seen for m, seen in _stated_rules().items() if set(RULES) - seen}
    unstated = [m for m in rows if m not in _stated_rules()]
    if missing or unstated:
        # Every model states every rule, so a new catalog row cannot silently accept everything.
        raise ValueError(f"data/model_rules.csv: rules missing for {missing or unstated}")
    return rows


def _read_rules() -> list[dict[str, str]]:
    with open(DATA_DIR / "model_rules.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        if r["rule"] not in RULES or r["allowed"] not in ("true", "false"):
            raise ValueError(f"data/model_rules.csv: bad row {r}")
    return rows


def _refused_rules() -> dict[str, frozenset[str]]:
    out: dict[str, set[str]] = {}
    for r in _read_rules():
        if r["allowed"] == "false":
            out.setdefault(r["model"], set()).add(r["rule"])
    return {m: frozenset(v) for m, v in out.items()}


def _stated_rules() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in _read_rules():
        out.setdefault(r["model"], set()).add(r["rule"])
    return out


def get_model(model_id: str, *, now: float | None = None) -> ModelSpec:
    """Look up a model that answers requests; raises :class:`UnknownModelError` if the catalog does
    not list it, and :class:`RetiredModelError` (a subclass) if it is past its end-of-life date at
    ``now`` (default: the current time of :data:`course_utils.clock.SYSTEM_CLOCK`, virtual inside a
    virtual loop). Deprecated models answer until then, as on the API."""
    try:
        spec = catalog()[model_id]
    except KeyError:
        raise UnknownModelError(model_id) from None
    if spec.retires_at:
        if now is None:
            from .clock import SYSTEM_CLOCK

            now = SYSTEM_CLOCK.time()
        if spec.lifecycle(now) == "retired":
            raise RetiredModelError(model_id)
    return spec
