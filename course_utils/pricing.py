"""Token prices (``data/pricing.csv``) and exact cost arithmetic for Messages API usage.

    >>> from course_utils.pricing import cost, format_usd
    >>> format_usd(cost({"input_tokens": 1200, "output_tokens": 300}, "claude-haiku-4-5"))
    '$0.0027'

``cost`` accepts the SDK's ``Usage`` object (``message.usage``) or a plain dict with the same field
names (raw JSON, a ledger row). All money is :class:`decimal.Decimal`: no float rounding, so totals of
many small requests add up exactly.

Billing rules implemented (see ``docs/api-notes.md`` and the comments at the top of the CSV):

* ``input_tokens`` is the *uncached* input (after the last cache breakpoint) at the base input rate;
* ``cache_read_input_tokens`` at the cache-read rate;
* ``cache_creation_input_tokens`` at the 5-minute or 1-hour write rate, using the
  ``cache_creation.ephemeral_5m_input_tokens`` / ``ephemeral_1h_input_tokens`` breakdown when present;
  tokens without a TTL breakdown are priced as 5-minute writes (the default TTL);
* ``output_tokens`` at the output rate;
* ``batch=True`` multiplies *every* line (cache writes and reads included) by the model's
  ``batch_discount``: the batch docs say all usage is charged at 50% of standard prices.

Limitation: ``claude-haiku-5-5`` is priced at its standard (prompt <= 100,000 tokens) tier only.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any, Mapping

from .models import DATA_DIR
from .errors import CourseError

__all__ = [
    "ModelPrice",
    "UnknownPriceError",
    "PRICES",
    "ALIASES",
    "PRICING_CSV",
    "price",
    "cost",
    "cost_breakdown",
    "format_usd",
    "resolve_model",
]

PRICING_CSV = DATA_DIR / "pricing.csv"
PRICING_LEGACY_CSV = DATA_DIR / "pricing_legacy.csv"
"""Legacy and deprecated models the simulator still serves (same columns as ``pricing.csv``)."""
MTOK = Decimal(1_000_000)

ALIASES: dict[str, str] = {
    # The Claude Haiku 4.5 overview lists the snapshot id ``claude-haiku-4-5-20251001`` with the
    # Claude API alias ``claude-haiku-4-5``: the same model, so the same price. The 5.5 models and
    # Sonnet 4.6 are published under a single id (no dated snapshot), so they need no entry.
    "claude-haiku-4-5-20251001": "claude-haiku-4-5",
    # Deprecated models, listed by the SDK under both the alias and the snapshot id.
    "claude-opus-4-5-20251101": "claude-opus-4-5",
    "claude-sonnet-4-5-20250929": "claude-sonnet-4-5",
}


class UnknownPriceError(CourseError, KeyError):
    """Raised for a model id with no row in ``data/pricing.csv``."""

    def __init__(self, model: str, known: list[str]):
        self.model = model
        self.known = known
        super().__init__(model)

    def __str__(self) -> str:  # KeyError would repr() the message; keep it readable
        return f"no price for model {self.model!r}; known models: {', '.join(self.known)}"


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens for one model, plus the Message Batches multiplier."""

    model: str
    input_per_mtok: Decimal
    cache_write_5m_per_mtok: Decimal
    cache_write_1h_per_mtok: Decimal
    cache_read_per_mtok: Decimal
    output_per_mtok: Decimal
    batch_discount: Decimal
    """Multiplier for batch requests (``0.5`` = half price)."""
    long_prompt_threshold: int | None = None
    """Prompts (input + cache reads + cache writes) above this many tokens pay ``long_prompt_multiplier``."""
    long_prompt_multiplier: Decimal = Decimal(1)


_FIELDS = (
    "input_per_mtok",
    "cache_write_5m_per_mtok",
    "cache_write_1h_per_mtok",
    "cache_read_per_mtok",
    "output_per_mtok",
    "batch_discount",
)


@lru_cache(maxsize=1)
def PRICES() -> dict[str, ModelPrice]:  # noqa: N802 - a cached loader named like the table it returns
    """All price rows keyed by model id, read once from ``data/pricing.csv`` (``#`` lines are comments)."""
    rows: dict[str, ModelPrice] = {}
    for path in (PRICING_CSV, PRICING_LEGACY_CSV):
        if path.exists():
            _read_prices(path, rows)
    return rows


def _read_prices(path: Any, rows: dict[str, ModelPrice]) -> None:
    PRICING_CSV = path  # noqa: N806 - the messages below name the file read
    with open(path, newline="", encoding="utf-8") as fh:
        lines = [line for line in fh if line.strip() and not line.lstrip().startswith("#")]
    for row in csv.DictReader(lines):
        model = row["model"].strip()
        if model in rows:
            raise ValueError(f"duplicate price row for {model!r} in {PRICING_CSV}")
        values = {}
        for field in _FIELDS:
            value = Decimal(row[field].strip())
            if value < 0:
                raise ValueError(f"negative {field} for {model!r} in {PRICING_CSV}")
            values[field] = value
        threshold = (row.get("long_prompt_threshold") or "").strip()
        multiplier = (row.get("long_prompt_multiplier") or "").strip()
        rows[model] = ModelPrice(
            model=model,
            **values,
            long_prompt_threshold=int(threshold) if threshold else None,
            long_prompt_multiplier=Decimal(multiplier) if multiplier else Decimal(1),
        )


def resolve_model(model: str) -> str:
    """The id the price table uses for ``model`` (exact ids only; documented snapshot aliases mapped)."""
    return ALIASES.get(model, model)


def price(model: str) -> ModelPrice:
    """The price row for an exact model id; raises :class:`UnknownPriceError` listing the known ids."""
    table = PRICES()
    try:
        return table[resolve_model(model)]
    except KeyError:
        raise UnknownPriceError(model, sorted(table)) from None


def _field(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _count(obj: Any, name: str) -> int:
    value = _field(obj, name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise TypeError(f"usage field {name!r} must be an int token count, got {value!r}")
    if value < 0:
        raise ValueError(f"usage field {name!r} must not be negative, got {value}")
    return value


def _token_counts(usage: Any) -> dict[str, int]:
    """Split usage into the five billed token classes."""
    if usage is None:
        raise TypeError("usage is None")
    created_total = _count(usage, "cache_creation_input_tokens")
    breakdown = _field(usage, "cache_creation")
    write_5m = _count(breakdown, "ephemeral_5m_input_tokens")
    write_1h = _count(breakdown, "ephemeral_1h_input_tokens")
    # Anything in the total the breakdown does not account for has no TTL: price it as a 5m write.
    if created_total > write_5m + write_1h:
        write_5m += created_total - write_5m - write_1h
    return {
        "input": _count(usage, "input_tokens"),
        "cache_write_5m": write_5m,
        "cache_write_1h": write_1h,
        "cache_read": _count(usage, "cache_read_input_tokens"),
        "output": _count(usage, "output_tokens"),
    }


def cost_breakdown(usage: Any, model: str, batch: bool = False) -> dict[str, Decimal]:
    """Dollar cost per token class (keys as :func:`cost` sums them), batch discount applied to each."""
    p = price(model)
    counts = _token_counts(usage)
    rates = {
        "input": p.input_per_mtok,
        "cache_write_5m": p.cache_write_5m_per_mtok,
        "cache_write_1h": p.cache_write_1h_per_mtok,
        "cache_read": p.cache_read_per_mtok,
        "output": p.output_per_mtok,
    }
    factor = p.batch_discount if batch else Decimal(1)
    prompt = counts["input"] + counts["cache_write_5m"] + counts["cache_write_1h"] + counts["cache_read"]
    if p.long_prompt_threshold is not None and prompt > p.long_prompt_threshold:
        # A long prompt moves every token of the request, output included, to the higher tier.
        factor *= p.long_prompt_multiplier
    return {key: Decimal(counts[key]) * rates[key] * factor / MTOK for key in rates}


def cost(usage: Any, model: str, batch: bool = False) -> Decimal:
    """Exact USD cost of one response's ``usage`` on ``model`` (``batch=True`` for Message Batches)."""
    return sum(cost_breakdown(usage, model, batch=batch).values(), Decimal(0))


def format_usd(amount: Decimal | int | float | str, places: int = 4) -> str:
    """Display dollars, e.g. ``$0.0123``; amounts too small for ``places`` keep two significant digits."""
    value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    sign = "-" if value < 0 else ""
    value = abs(value)
    quantum = Decimal(1).scaleb(-places)
    if value != 0 and value < quantum:
        # e.g. 0.000015 -> "$0.000015" rather than "$0.0000"
        exponent = value.adjusted() - 1
        text = format(value.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_UP), "f")
    else:
        text = f"{value.quantize(quantum, rounding=ROUND_HALF_UP):,.{places}f}"
    return f"{sign}${text}"
