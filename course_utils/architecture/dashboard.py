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


def _from_otel(spans: Any) -> Trace:
    """OpenTelemetry spans of one trace (``Telemetry.spans(trace_id)``) as a :class:`Trace` to draw:
    one bar per span, named as the span; the first token from ``gen_ai.response.time_to_first_chunk``."""
    from .trace import Span

    spans = sorted(spans, key=lambda s: s.start_time)
    if not spans:
        raise ValueError("no OpenTelemetry spans to draw")
    out = []
    for s in spans:
        attrs = dict(s.attributes or {})
        ttfc = attrs.get("gen_ai.response.time_to_first_chunk")
        if ttfc is not None:
            attrs["first_token_at"] = s.start_time / 1e9 + float(ttfc)
        out.append(Span(s.name, s.start_time / 1e9, s.end_time / 1e9, attrs))
    root = spans[0]
    conv = str((root.attributes or {}).get("gen_ai.conversation.id", ""))
    return Trace(f"{root.context.trace_id:032x}"[:12], str(root.resource.attributes.get("service.name", "")), conv, out)


def waterfall(trace: Any, *, ax: Any = None) -> Any:
    """A horizontal bar per span of ``trace`` (in the order they started), x in ms from its arrival.

    ``trace`` is a :class:`~.trace.Trace` or a list of OpenTelemetry spans of one trace
    (:meth:`~.telemetry.Telemetry.spans`). Marks the time to first token when the trace has one.
    Returns the figure. Raises ``ValueError`` for a trace without spans (there is nothing to draw,
    and an empty chart would hide that).
    """
    import matplotlib.pyplot as plt

    if not isinstance(trace, Trace):
        trace = _from_otel(list(trace))
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
        color = _COLORS.get(row.stage, _COLORS["model"] if row.stage.startswith("chat") else "#b279a2")
        ax.barh(i, width, left=row.offset_ms, color=color, edgecolor="#333333")
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


def _answered_by(trace: Trace) -> str | None:
    links = [s.attrs.get("link") for s in trace.spans if s.stage == "model" and s.attrs.get("link")]
    return links[-1] if links else None


def load_series(source: Any, *, bins: int = 12, primary_model: str | None = None) -> Any:
    """Per time bin of the run (by each request's arrival): requests and the SLO figures.

    ``source`` is a :class:`TraceLog` or a LoadResult. Bins are ``bins`` equal slices of the span
    from the first to the last arrival, on the run's clock; ``bin_start_s``/``bin_end_s`` are
    seconds from the first arrival. A bin without requests has 0 requests and NaN figures. With
    ``primary_model`` (a LoadResult's own by default), ``fallback_rate`` is the share of the bin's
    requests answered by another model. Raises ``ValueError`` for an empty log or ``bins < 1``.
    """
    import pandas as pd

    log = _log_of(source)
    primary_model = primary_model or getattr(source, "primary_model", None) or None
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
        if primary_model:
            answered = [a for a in map(_answered_by, bucket) if a is not None and a != "cache"]
            row["fallback_rate"] = sum(a != primary_model for a in answered) / len(answered) if answered else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass
class Dashboard:
    """The load-test dashboard: the figure, the binned series, the whole run's figures and a takeaway."""

    figure: Any
    series: Any
    overall: dict[str, float]
    takeaway: str
    outage: tuple[float, float] | None = None
    """The primary model's outage in seconds since the first arrival (the shaded band), or None."""


def _takeaway(
    series: Any,
    overall: dict[str, float],
    outage: tuple[float, float] | None,
    during_outage: tuple[int, int] | None = None,
) -> str:
    """A few short sentences, computed from the data: the worst bin (if the run has several), and the
    requests that arrived during the outage (``during_outage``: how many, how many the fallback answered)."""
    parts = [f"p95 time to first token {overall['p95_ttft_s']:.2f} s over {int(overall['requests'])} requests."]
    p95 = series["p95_ttft_s"]
    if p95.notna().sum() > 1:
        worst = int(p95.idxmax())
        a, b = series["bin_start_s"][worst], series["bin_end_s"][worst]
        during = outage is not None and a < outage[1] and b > outage[0]
        parts.append(
            f"Worst bin: arrivals at {a:.0f}-{b:.0f} s, p95 {p95[worst]:.2f} s"
            + (" (during the outage)." if during else " (outside the outage)." if outage else ".")
        )
    if during_outage is not None:
        n, fallback = during_outage
        parts.append(
            f"{n} requests arrived during the outage, {100 * fallback / n:.0f}% answered by the fallback model."
            if n
            else "No request arrived during the outage."
        )
    parts.append(
        f"Errors {100 * overall['error_rate']:.1f}%, cache hits {100 * overall['cache_hit_rate']:.0f}%, "
        f"${overall['cost_per_request_usd']:.5f} per request."
    )
    return " ".join(parts)


def load_dashboard(
    source: Any, *, bins: int = 12, title: str | None = None, primary_model: str | None = None
) -> Dashboard:
    """Draw the load test's dashboard from a :class:`TraceLog` or a LoadResult (see :func:`load_series`).

    Four panels over the run's time (request arrival, seconds since the first): p50/p95 time to first
    token (s); errors and degradation (% of requests: error rate, answered by the fallback model,
    redelivered); cost per request (USD); cache hit rate (%). Dotted lines show the whole run's values,
    computed with the same definitions (:meth:`TraceLog.slo`). A LoadResult's outage of the primary
    model is shaded on every panel.
    """
    import matplotlib.pyplot as plt

    log = _log_of(source)
    series = load_series(log, bins=bins, primary_model=primary_model or getattr(source, "primary_model", None))
    overall = log.slo()
    t0 = min(t.start for t in log.traces if t.spans)
    outage = None
    spec = getattr(source, "spec", None)
    if spec is not None and getattr(spec, "outage_at", None) is not None and getattr(source, "started_at", 0):
        begin = source.started_at + spec.outage_at - t0
        outage = (begin, begin + spec.outage_s)
    mid = (series["bin_start_s"] + series["bin_end_s"]) / 2
    fig, axes = plt.subplots(2, 2, figsize=(11, 6.5), sharex=True, layout="constrained")
    rates = [("error_rate", "errors"), ("redelivered_rate", "redelivered")]
    if "fallback_rate" in series:
        rates.insert(1, ("fallback_rate", "answered by the fallback"))
    panels = [
        (axes[0, 0], [("p50_ttft_s", "p50"), ("p95_ttft_s", "p95")], 1, "time to first token", "seconds"),
        (axes[0, 1], rates, 100, "errors and degraded answers", "% of requests"),
        (axes[1, 0], [("cost_per_request_usd", "cost")], 1, "cost per request", "USD"),
        (axes[1, 1], [("cache_hit_rate", "cache hits")], 100, "cache hit rate", "% of requests"),
    ]
    for ax, columns, scale, name, unit in panels:
        tops = [0.0]
        for column, label in columns:
            (line,) = ax.plot(mid, series[column] * scale, marker="o", ms=3, label=label)
            tops += [scale * v for v in series[column] if not math.isnan(v)]
            whole = overall.get(column, math.nan)
            if not math.isnan(whole):
                ax.axhline(whole * scale, color=line.get_color(), ls=":", lw=1, label=f"{label}, whole run")
        end = float(series["bin_end_s"].max())
        if outage is not None and outage[0] < end and outage[1] > 0:  # shade only the part the run saw
            ax.axvspan(max(0.0, outage[0]), min(end, outage[1]), color="#d62728", alpha=0.1, label="primary model down")
        ax.set_xlim(0, end)
        ax.set_title(name)
        ax.set_ylabel(unit)
        if scale == 100:  # a rate: keep a 0-5 % floor so a flat zero line does not look like noise
            ax.set_ylim(0, max(5.0, 1.15 * max(tops)))
        else:
            ax.set_ylim(bottom=0)
        ax.legend(fontsize=7, loc="upper left")
    for ax in axes[1]:
        ax.set_xlabel("request arrival (s since the first request, run's clock)")
    during = None
    primary = primary_model or getattr(source, "primary_model", None)
    if outage is not None and primary:
        inside = [t for t in log.traces if t.spans and outage[0] <= t.start - t0 < outage[1]]
        answered = [a for a in map(_answered_by, inside) if a is not None and a != "cache"]
        during = (len(answered), sum(a != primary for a in answered))
    takeaway = _takeaway(series, overall, outage, during)
    fig.suptitle(title or f"Load test: {int(overall['requests'])} requests in {len(series)} time bins")
    return Dashboard(fig, series, overall, takeaway, outage)
