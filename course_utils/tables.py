"""The one result-table convention of the course library.

An operation that produces many rows (per request, per turn, per strategy, per tenant) returns a
result object, and that object has

- ``.frame() -> pandas.DataFrame``: one row per item, columns named in ``snake_case`` with the unit
  as a suffix (``latency_s``, ``cost_usd``, ``input_tokens``), in a stable order; and, where a
  lesson needs headline figures,
- ``.summary() -> dict[str, float | int | str]``: the few numbers a sentence of prose quotes.

Nothing else builds a table for display: notebooks call ``.frame()`` and style it.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["Tabular"]


@runtime_checkable
class Tabular(Protocol):
    """What every result object with rows provides."""

    def frame(self) -> Any:  # pandas.DataFrame; typed Any so importing this costs nothing
        """One row per item, snake_case columns with unit suffixes."""
        ...
