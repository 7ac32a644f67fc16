"""course_utils.cost attribution and trend: exact Decimal dollars per feature/model/day, p95 alert."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest

from course_utils.cost import cost_frame, cost_report, daily_trend, prompt_growth_alerts, row_cost, usage_of
from course_utils.cost.rightsizing import batch_savings

ROW = {
    "ts": "2027-01-11T09:00:00Z",
    "feature": "chat",
    "model": "claude-haiku-4-5",  # $1 input, $1.25 5m write, $2 1h write, $0.10 read, $5 output per MTok
    "batch": False,
    "input_tokens": 1_000_000,
    "cache_creation_5m": 1_000_000,
    "cache_creation_1h": 1_000_000,
    "cache_read_input_tokens": 1_000_000,
    "output_tokens": 1_000_000,
}


def test_every_token_class_has_its_own_rate():
    assert row_cost(ROW) == Decimal("1") + Decimal("1.25") + Decimal("2") + Decimal("0.10") + Decimal("5")


def test_batch_discount_applies_to_every_line_and_strings_are_parsed():
    assert row_cost({**ROW, "batch": True}) == (Decimal("9.35") / 2)
    assert row_cost({**ROW, "batch": "true"}) == row_cost({**ROW, "batch": True})
    with pytest.raises(ValueError, match="batch"):
        row_cost({**ROW, "batch": "maybe"})


def test_cache_tokens_are_not_priced_as_input():
    only_reads = {**ROW, "input_tokens": 0, "cache_creation_5m": 0, "cache_creation_1h": 0, "output_tokens": 0}
    assert row_cost(only_reads) == Decimal("0.10")


def test_bad_rows_are_refused_with_the_field_named():
    with pytest.raises(ValueError, match="output_tokens"):
        row_cost({**ROW, "output_tokens": -1})
    with pytest.raises(ValueError, match="model"):
        row_cost({**ROW, "model": ""})
    assert usage_of({"model": "x"})["input_tokens"] == 0  # missing columns are zero, not an error


def test_report_sums_decimals_exactly_by_day_and_feature():
    tiny = {**ROW, "input_tokens": 1, "cache_creation_5m": 0, "cache_creation_1h": 0, "cache_read_input_tokens": 0}
    tiny["output_tokens"] = 0
    rows = [tiny] * 10 + [{**tiny, "feature": "faq", "ts": "2027-01-12T23:59:59Z"}]
    report = cost_report(rows, by=("day", "feature"))
    chat = report[(report.day == "2027-01-11") & (report.feature == "chat")].iloc[0]
    assert chat["cost"] == Decimal("0.00001")  # 10 x $0.000001, no float drift
    assert isinstance(chat["cost"], Decimal)
    assert chat["requests"] == 10
    assert set(report.day) == {"2027-01-11", "2027-01-12"}


def test_empty_report_has_the_columns():
    assert list(cost_report([], by=("feature",)).columns)[:2] == ["feature", "requests"]


def _frame(prompts_by_day: dict[str, list[int]]) -> pd.DataFrame:
    rows = [
        {**ROW, "ts": f"{day}T10:00:00Z", "input_tokens": n, "cache_creation_5m": 0, "cache_creation_1h": 0,
         "cache_read_input_tokens": 0, "output_tokens": 10}
        for day, lengths in prompts_by_day.items()
        for n in lengths
    ]  # fmt: skip
    return cost_frame(rows)


def test_trend_percentiles_are_observed_lengths():
    trend = daily_trend(_frame({"2027-01-11": list(range(1, 101))}))
    assert trend.loc[0, "p50_prompt_tokens"] == 50
    assert trend.loc[0, "p95_prompt_tokens"] == 95


def test_alert_fires_on_the_day_p95_grows_past_the_threshold_only():
    frame = _frame(
        {"2027-01-11": [100] * 20, "2027-01-12": [140] * 20, "2027-01-13": [300] * 20, "2027-01-14": [310] * 20}
    )
    alerts = prompt_growth_alerts(daily_trend(frame), max_growth=0.5)
    assert [(a.day, a.before, a.after) for a in alerts] == [("2027-01-13", 140, 300)]
    assert "+114%" in str(alerts[0])
    assert prompt_growth_alerts(daily_trend(frame), max_growth=0.3) != alerts  # 100 -> 140 is +40%
    with pytest.raises(ValueError):
        prompt_growth_alerts(daily_trend(frame), max_growth=-1)


def test_alert_per_feature_is_not_diluted_by_other_traffic():
    rows = _frame({"2027-01-11": [100] * 5, "2027-01-12": [400] * 5})
    rows["feature"] = "chat"
    other = _frame({"2027-01-11": [1000] * 100, "2027-01-12": [1000] * 100})
    other["feature"] = "faq"
    both = pd.concat([rows, other])
    assert prompt_growth_alerts(daily_trend(both), 0.5) == []
    per = prompt_growth_alerts(daily_trend(both, by=("feature",)), 0.5, scope="feature")
    assert [(a.day, a.scope) for a in per] == [("2027-01-12", "chat")]


def test_batch_savings_halves_the_chosen_features_only():
    frame = cost_frame([ROW, {**ROW, "feature": "faq"}, {**ROW, "feature": "faq", "batch": True}])
    assert batch_savings(frame, ["faq"]) == Decimal("9.35") / 2
    assert batch_savings(frame, []) == 0


def test_shipped_ledger_week_has_the_incident_shape():
    frame = cost_frame(pd.read_csv("data/lesson06_ledger.csv.gz"))
    per_day = cost_report(frame, by=("day",)).set_index("day")["cost"]
    assert len(per_day) == 7
    assert per_day.iloc[-1] > 8 * per_day.iloc[0]
    alerts = prompt_growth_alerts(daily_trend(frame, by=("feature",)), 0.5, scope="feature")
    # The release lands on Wednesday the 13th; chat prompts keep growing after it, nothing else does.
    assert (alerts[0].day, alerts[0].scope) == ("2027-01-13", "chat")
    assert {a.scope for a in alerts} == {"chat"}


# --- what-if ----------------------------------------------------------------------------------
from course_utils.cost import total, with_batch, with_cost_factor, with_exact_cache, with_prompt_budget  # noqa: E402 - grouped with their tests


def _faq(ts: str, digest: str) -> dict:
    return {**ROW, "feature": "faq", "ts": ts, "request_hash": digest}


def test_exact_cache_whatif_respects_the_ttl_from_the_storing_request():
    frame = cost_frame(
        [
            _faq("2027-01-11T10:00:00Z", "a"),
            _faq("2027-01-11T10:30:00Z", "a"),  # hit
            _faq("2027-01-11T11:00:00Z", "a"),  # 60 min after the store: expired, stores again
            _faq("2027-01-11T11:10:00Z", "b"),
            {**ROW, "ts": "2027-01-11T11:20:00Z", "request_hash": "a"},  # another feature
        ]
    )
    out = with_exact_cache(frame, "faq", ttl_s=3600)
    assert out["cache_hit"].tolist() == [False, True, False, False, False]
    assert total(out) == total(frame) - row_cost(ROW)
    assert not frame.get("cache_hit", pd.Series([False])).any()  # the input frame is not changed


def test_prompt_budget_batch_and_factor_whatifs_reprice_only_their_rows():
    frame = cost_frame([ROW, {**ROW, "feature": "faq"}])
    capped = with_prompt_budget(frame, "chat", 1000)
    assert capped.loc[0, "input_tokens"] == 1000 and capped.loc[1, "input_tokens"] == 1_000_000
    assert capped.loc[0, "cost"] == row_cost({**ROW, "input_tokens": 1000})
    assert capped.loc[1, "cost"] == frame.loc[1, "cost"]
    batched = with_batch(frame, ["faq"])
    assert batched.loc[1, "cost"] == frame.loc[1, "cost"] / 2 and batched.loc[0, "cost"] == frame.loc[0, "cost"]
    scaled = with_cost_factor(frame, "chat", Decimal("0.25"))
    assert scaled.loc[0, "cost"] == frame.loc[0, "cost"] / 4
    with pytest.raises(ValueError):
        with_cost_factor(frame, "chat", Decimal(-1))


def test_response_row_prices_like_the_response_itself():
    from course_utils.cost import response_row
    from course_utils.pricing import cost

    message = {
        "model": "claude-haiku-4-5",
        "usage": {
            "input_tokens": 20,
            "output_tokens": 30,
            "cache_read_input_tokens": 4000,
            "cache_creation_input_tokens": 5000,
            "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 4000},
        },
    }
    row = response_row(message, feature="chat", ts="2027-01-11T00:00:00Z")
    assert (row["cache_creation_5m"], row["cache_creation_1h"]) == (1000, 4000)
    assert row_cost(row) == cost(message["usage"], "claude-haiku-4-5")
    batch_row = response_row(message, feature="chat", ts="2027-01-11T00:00:00Z", batch=True)
    assert row_cost(batch_row) == cost(message["usage"], "claude-haiku-4-5", batch=True)
    with pytest.raises(ValueError, match="usage"):
        response_row({"model": "x"}, feature="chat", ts=0)
