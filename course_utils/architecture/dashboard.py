"""The observability views: one request's stage waterfall, and the load test's dashboard.

:func:`waterfall` draws a :class:`~.trace.Trace`'s spans as horizontal bars on the trace's own clock
(milliseconds from the request's arrival; gaps between bars are time queued on the bus).

:func:`load_series` bins a run's requests by their arrival on the run's (virtual) clock and computes,
per bin, the same figures :meth:`~.trace.TraceLog.slo` computes for the whole run: p50 and p95 time to
first token, error rate, cost per conversation and cache hit rate. :func:`load_dashboard` draws them
and returns a one-line takeaway computed from the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .trace import Trace, TraceLog

__all__ = ["waterfall", "load_series", "load_dashboard", "Dashboard"]

_COLORS = {"api": "#8c8c8c", "retrieval": "#4c78a8", "context": "#72b7b2", "model": "#f58518", "metering": "#54a24b"}


def waterfall(trace: Trace, *, ax: Any = None) -> Any:
    """A horizontal bar per span of ``trace`` (in the order they started), x in ms from its arrival.

    Marks the time to first token when the trace has one. Returns the figure. Raises ``ValueError``
    for a trace without spans (there is nothing to draw, and an empty chart would hide that).
    """
    import matplotlib.pyplot as plt

    if not trace.spans:
        raise ValueError(f"trace {trace.request_id!r} has no spans to draw")
    frame = trace.frame()
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 0.5 * len(frame) + 1.6), layout="constrained")
    else:
        fig = ax.figure
    labels = []
    for i, row in enumerate(frame.itertuples()):
        # A zero-length span (the API's accept) still gets a visible sliver.
        width = max(row.duration_ms, 0.002 * max(1e-9, 1000 * trace.total_s))
        ax.barh(i, width, left=row.offset_ms, color=_COLORS.get(row.stage, "#b279a2"), edgecolor="#333333")
        ax.text(row.offset_ms + width, i, f" {row.duration_ms:,.0f} ms", va="center", fontsize=8)
        labels.append(row.stage)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()  # pipeline order top to bottom
    ttft = trace.ttft_s
    if not math.isnan(ttft):
        ax.axvline(1000 * ttft, color="#d62728", ls="--", lw=1, label=f"first token at {1000 * ttft:,.0f} ms")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("time since the request arrived (ms)")
    ax.set_ylabel("stage")
    ax.set_xlim(0, 1000 * trace.total_s * 1.15 or 1)
    ax.set_title(
        f"Request {trace.request_id} ({trace.tenant}): {1000 * trace.total_s:,.0f} ms end to end, "
        f"{1000 * trace.queued_s:,.0f} ms queued"
    )
    return fig


def _log_of(source: Any) -> TraceLog:
    if isinstance(source, TraceLog):
        return source
    traces = getattr(source, "traces", None)  # a LoadResult
    if isinstance(traces, TraceLog):
        return traces
    raise TypeError(f"expected a TraceLog or a LoadResult, got {type(source).__name__}")


def load_series(source: Any, *, bins: int = 12) -> Any:
    """Per time bin of the run (by each request's arrival): requests and the SLO figures.

    ``source`` is a :class:`TraceLog` or a LoadResult. Bins are ``bins`` equal slices of the span
    from the first to the last arrival, on the run's clock; ``bin_start_s``/``bin_end_s`` are
    seconds from the first arrival. A bin without requests has 0 requests and NaN figures.
    Raises ``ValueError`` for an empty log or ``bins < 1``.
    """
    import pandas as pd

    log = _log_of(source)
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    traces = [t for t in log.traces if t.spans]
    if not traces:
        raise ValueError("the trace log is empty: run the load first")
    t0 = min(t.start for t in traces)
    span_s = max(t.start for t in traces) - t0
    width = span_s / bins if span_s > 0 else 1.0
    buckets: list[list[Trace]] = [[] for _ in range(bins)]
    for t in traces:
        buckets[min(bins - 1, int((t.start - t0) / width))].append(t)
    rows = []
    for i, bucket in enumerate(buckets):
        row: dict[str, Any] = {"bin_start_s": i * width, "bin_end_s": (i + 1) * width}
        row.update(TraceLog(bucket).slo())  # the same definitions as the whole run's figures
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass
class Dashboard:
    """The load-test dashboard: the figure, the binned series, the whole run's figures and a takeaway."""

    figure: Any
    series: Any
    overall: dict[str, float]
    takeaway: str


def _takeaway(series: Any, overall: dict[str, float]) -> str:
    """One line summarising the run, computed from the data (worst bin for p95 TTFT)."""
    p95 = series["p95_ttft_s"]
    parts = [f"p95 TTFT {overall['p95_ttft_s']:.2f} s over {int(overall['requests'])} requests"]
    if p95.notna().any():
        worst = int(p95.idxmax())
        parts[0] += (
            f" (worst {p95[worst]:.2f} s for arrivals at "
            f"{series['bin_start_s'][worst]:.0f}-{series['bin_end_s'][worst]:.0f} s)"
        )
    parts.append(f"errors {100 * overall['error_rate']:.1f}%")
    parts.append(f"${overall['cost_per_conversation_usd']:.4f} per conversation")
    parts.append(f"cache hits {100 * overall['cache_hit_rate']:.0f}%")
    return "; ".join(parts) + "."


def load_dashboard(source: Any, *, bins: int = 12, title: str | None = None) -> Dashboard:
    """Draw the load test's dashboard from a :class:`TraceLog` or a LoadResult (see :func:`load_series`).

    Four panels over the run's time: p50/p95 time to first token (s), error rate (%), cost per
    conversation (USD), cache hit rate (%); dotted lines show the whole run's values, which equal
    :meth:`TraceLog.slo`.
    """
    import matplotlib.pyplot as plt

    log = _log_of(source)
    series = load_series(log, bins=bins)
    overall = log.slo()
    mid = (series["bin_start_s"] + series["bin_end_s"]) / 2
    fig, axes = plt.subplots(2, 2, figsize=(11, 6.5), sharex=True, layout="constrained")
    panels = [
        (axes[0, 0], [("p50_ttft_s", "p50"), ("p95_ttft_s", "p95")], 1, "time to first token", "seconds"),
        (axes[0, 1], [("error_rate", "error rate")], 100, "error rate", "% of requests"),
        (axes[1, 0], [("cost_per_conversation_usd", "cost")], 1, "cost per conversation", "USD"),
        (axes[1, 1], [("cache_hit_rate", "cache hits")], 100, "cache hit rate", "% of requests"),
    ]
    for ax, columns, scale, name, unit in panels:
        for column, label in columns:
            (line,) = ax.plot(mid, series[column] * scale, marker="o", ms=3, label=label)
            whole = overall[column]
            if not math.isnan(whole):
                ax.axhline(whole * scale, color=line.get_color(), ls=":", lw=1, label=f"{label}, whole run")
        ax.set_title(name)
        ax.set_ylabel(unit)
        top = max([scale * v for v in series[columns[-1][0]] if not math.isnan(v)], default=0.0)
        if scale == 100:  # a rate: keep a 0-5 % floor so a flat zero line does not look like noise
            ax.set_ylim(0, max(5.0, 1.15 * top))
        else:
            ax.set_ylim(bottom=0)
        ax.legend(fontsize=7, loc="upper left")
    for ax in axes[1]:
        ax.set_xlabel("request arrival (s since the first request, run's clock)")
    takeaway = _takeaway(series, overall)
    fig.suptitle(title or f"Load test: {int(overall['requests'])} requests in {len(series)} time bins")
    return Dashboard(fig, series, overall, takeaway)
