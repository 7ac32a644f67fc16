"""Issue 13 item 6: the models the API serves. Deprecated models answer until their end-of-life
date (the SDK warns), retired ones get 404, and ``GET /v1/models`` returns ``capabilities``.

SDK ``ModelInfo.lifecycle``: "`deprecated`: The model remains callable ... headed for retirement";
"`retired`: The model is no longer available for use; inference requests naming it fail. It remains
in the catalogue as the historical record of its retirement." End-of-life dates: the SDK's
``DEPRECATED_MODELS`` (claude-opus-4-5: January 22nd, 2027; claude-sonnet-4-5: November 30th, 2026).
"""

from __future__ import annotations

import asyncio
import typing
import warnings
from datetime import datetime, timezone
from decimal import Decimal

import anthropic
import pytest
from anthropic._data import DEPRECATED_MODELS
from anthropic.types import ModelParam

from course_utils.clock import SYSTEM_CLOCK, VIRTUAL_EPOCH, run_virtual
from course_utils.models import RetiredModelError, catalog, get_model
from course_utils.pricing import cost

ASK = [{"role": "user", "content": "Say hi."}]
DAY = 86_400.0


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_lifecycle_follows_the_end_of_life_dates():
    opus45, sonnet45 = catalog()["claude-opus-4-5"], catalog()["claude-sonnet-4-5"]
    assert opus45.lifecycle(_epoch("2027-01-21T23:59:59Z")) == "deprecated"
    assert opus45.lifecycle(_epoch("2027-01-22T00:00:00Z")) == "retired"
    assert sonnet45.lifecycle(_epoch("2026-11-29T12:00:00Z")) == "deprecated"
    assert sonnet45.lifecycle(_epoch("2026-11-30T00:00:00Z")) == "retired"
    assert catalog()["claude-haiku-5-5"].lifecycle(_epoch("2030-01-01T00:00:00Z")) == "active"
    get_model("claude-opus-4-5", now=_epoch("2027-01-01T00:00:00Z"))
    with pytest.raises(RetiredModelError):
        get_model("claude-opus-4-5", now=_epoch("2027-02-01T00:00:00Z"))


def test_the_catalog_dates_are_the_sdks():
    months = {
        m: i
        for i, m in enumerate(
            [
                "January",
                "February",
                "March",
                "April",
                "May",
                "June",
                "July",
                "August",
                "September",
                "October",
                "November",
                "December",
            ],
            1,
        )
    }
    for model, when in DEPRECATED_MODELS.items():
        month, day, year = when.replace(",", "").split()
        spec = catalog()[model]
        assert spec.retires_at == f"{year}-{months[month]:02d}-{int(day[:-2]):02d}T00:00:00Z", model


def test_deprecated_model_answers_with_the_sdk_warning_retired_ones_404(make_server):
    # Virtual time starts at 2027-01-15: Opus 4.5 is deprecated (until 2027-01-22), Sonnet 4.5 retired.
    srv = make_server(seed=0, time_scale=0, rate_limit_tier="unlimited")

    async def go() -> None:
        c = srv.async_client(max_retries=0)
        with pytest.warns(DeprecationWarning, match="claude-opus-4-5.*January 22nd, 2027"):
            msg = await c.messages.create(model="claude-opus-4-5", max_tokens=20, messages=ASK)
        assert msg.model == "claude-opus-4-5" and msg.content
        for retired in ("claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "claude-mythos-preview"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                with pytest.raises(anthropic.NotFoundError) as err:
                    await c.messages.create(model=retired, max_tokens=20, messages=ASK)
            assert err.value.body["error"] == {"type": "not_found_error", "message": f"model: {retired}"}
        # The models API still lists a retired model, as the historical record.
        info = await c.models.retrieve("claude-sonnet-4-5")
        assert info.lifecycle == "retired" and info.retires_at is not None
        info = await c.models.retrieve("claude-opus-4-5")
        assert info.lifecycle == "deprecated" and info.deprecated_at is not None
        # A week later Opus 4.5 has reached its end of life too.
        await asyncio.sleep(7 * DAY)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            with pytest.raises(anthropic.NotFoundError):
                await c.messages.create(model="claude-opus-4-5", max_tokens=20, messages=ASK)
        assert (await c.models.retrieve("claude-opus-4-5")).lifecycle == "retired"

    assert VIRTUAL_EPOCH == _epoch("2027-01-15T08:00:00Z")
    run_virtual(go())


def _sdk_models() -> list[str]:
    """Every model id the installed SDK lists (the ``Literal`` inside ``ModelParam``)."""
    literal = next(arg for arg in typing.get_args(ModelParam) if typing.get_origin(arg) is typing.Literal)
    return list(typing.get_args(literal))


def _end_of_life(model: str) -> float | None:
    """The SDK's end-of-life date for ``model`` (``DEPRECATED_MODELS``, "June 30th, 2026"), as epoch time."""
    when = DEPRECATED_MODELS.get(model)
    if when is None:
        return None
    month, day, year = when.replace(",", "").split()
    return datetime.strptime(f"{year} {month} {day[:-2]}", "%Y %B %d").replace(tzinfo=timezone.utc).timestamp()


def test_the_catalog_lists_every_model_the_sdk_lists():
    assert len(_sdk_models()) >= 20  # the parse found the list, not an empty Literal
    assert set(_sdk_models()) <= set(catalog()), sorted(set(_sdk_models()) - set(catalog()))


def test_every_sdk_listed_model_answers_until_its_end_of_life_and_404s_after(make_server):
    """Computed from the SDK itself: each model it lists answers (deprecated ones with the SDK's warning)
    unless the SDK's end-of-life date has passed at the simulator's time, then it gets 404."""
    srv = make_server(seed=0, time_scale=0, rate_limit_tier="unlimited")
    answered: list[str] = []
    retired: list[str] = []

    async def go() -> None:
        c = srv.async_client(max_retries=0)
        now = SYSTEM_CLOCK.time()
        for model in _sdk_models():
            eol = _end_of_life(model)
            if eol is not None and now >= eol:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    with pytest.raises(anthropic.NotFoundError) as err:
                        await c.messages.create(model=model, max_tokens=20, messages=ASK)
                assert err.value.body["error"] == {"type": "not_found_error", "message": f"model: {model}"}
                retired.append(model)
                continue
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                msg = await c.messages.create(model=model, max_tokens=20, messages=ASK)
            deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
            assert bool(deprecations) == (eol is not None), (model, [str(w.message) for w in caught])
            assert msg.model == model and msg.usage.output_tokens > 0, model
            assert msg.stop_reason in ("end_turn", "max_tokens"), (model, msg.stop_reason)
            answered.append(model)

    run_virtual(go())
    # At the virtual epoch (2027-01-15) the SDK's own dates retire Sonnet 4.5 and Mythos Preview only.
    assert sorted(retired) == ["claude-mythos-preview", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929"]
    assert len(answered) == len(_sdk_models()) - 3


@pytest.mark.parametrize(
    "model, price_in, price_out, cache_read",
    [
        ("claude-opus-4-6", "5", "25", "0.50"),
        ("claude-fable-5", "10", "50", "1"),
        ("claude-fable-5-1", "10", "50", "0.25"),
        ("claude-mythos-5-1", "10", "50", "0.25"),
        ("claude-fable-5-2", "8", "40", "0.20"),
    ],
)
def test_new_models_bill_at_their_documented_prices(model, price_in, price_out, cache_read):
    # The pricing page's model table (docs/api-notes.md, models section): 1M input + 1M output + 1M cache reads.
    usage = {"input_tokens": 1_000_000, "output_tokens": 1_000_000, "cache_read_input_tokens": 1_000_000}
    assert cost(usage, model) == Decimal(price_in) + Decimal(price_out) + Decimal(cache_read)


def test_fable_refuses_what_its_docs_say_and_opus_4_6_takes_a_budget(make_server):
    """Fable 5.1+ and Mythos 5.1+ refuse forced tool use (a Fable 5.1 breaking change) and disabled
    thinking ("always on"); Fable 5 still takes forced tool use; Opus 4.6 refuses prefill but still
    takes a thinking budget (deprecated, and the SDK warns)."""
    srv = make_server(seed=0, time_scale=0, rate_limit_tier="unlimited")
    tool = {"name": "get_time", "description": "Current time.", "input_schema": {"type": "object", "properties": {}}}

    async def go() -> None:
        c = srv.async_client(max_retries=0)
        for model in ("claude-fable-5-1", "claude-mythos-5-2", "claude-fable-5-2"):
            with pytest.raises(anthropic.BadRequestError):
                await c.messages.create(
                    model=model, max_tokens=50, messages=ASK, tools=[tool], tool_choice={"type": "any"}
                )
            with pytest.raises(anthropic.BadRequestError):
                await c.messages.create(model=model, max_tokens=50, messages=ASK, thinking={"type": "disabled"})
        msg = await c.messages.create(
            model="claude-fable-5", max_tokens=200, messages=ASK, tools=[tool], tool_choice={"type": "any"}
        )
        assert any(b.type == "tool_use" for b in msg.content)
        # Adaptive thinking is always on for Fable: a reply that asks for nothing still thinks when
        # thinking is explicitly adaptive.
        msg = await c.messages.create(
            model="claude-fable-5-2", max_tokens=200, messages=ASK, thinking={"type": "adaptive"}
        )
        assert msg.content[0].type == "thinking"
        with pytest.raises(anthropic.BadRequestError):
            await c.messages.create(
                model="claude-opus-4-6", max_tokens=50, messages=[*ASK, {"role": "assistant", "content": "Hi"}]
            )
        with pytest.warns(UserWarning, match="claude-opus-4-6"):
            msg = await c.messages.create(
                model="claude-opus-4-6",
                max_tokens=2000,
                messages=ASK,
                thinking={"type": "enabled", "budget_tokens": 1024},
            )
        assert msg.content[0].type == "thinking"

    run_virtual(go())


def test_models_list_has_capabilities_that_match_what_messages_enforces(make_server):
    srv = make_server(seed=0, time_scale=0, rate_limit_tier="unlimited")

    async def go() -> None:
        c = srv.async_client(max_retries=0)
        infos = [m async for m in c.models.list(lifecycle=["active", "deprecated", "retired"])]
        assert {m.id for m in infos} == set(catalog())
        # By default the list holds the active and deprecated models only (SDK ModelListParams).
        default = {m.id async for m in c.models.list()}
        assert default == {m.id for m in infos if m.lifecycle != "retired"}
        assert "claude-sonnet-4-5" not in default and "claude-opus-4-5" in default
        assert {m.id async for m in c.models.list(lifecycle=["retired"])} == {
            "claude-sonnet-4-5",
            "claude-sonnet-4-5-20250929",
            "claude-mythos-preview",
        }
        with pytest.raises(anthropic.BadRequestError, match="lifecycle"):
            await c.models.list(extra_query={"lifecycle[]": "gone"})
        for info in infos:
            caps = info.capabilities
            assert caps is not None, info.id
            assert set(caps.model_dump()) == {
                "batch",
                "citations",
                "code_execution",
                "context_management",
                "effort",
                "image_input",
                "pdf_input",
                "server_tools",
                "structured_outputs",
                "thinking",
            }
            if info.lifecycle == "retired":
                continue
            # thinking.types.disabled says whether {"type": "disabled"} is refused: check it.
            try:
                await c.messages.create(model=info.id, max_tokens=20, messages=ASK, thinking={"type": "disabled"})
                accepted = True
            except anthropic.BadRequestError:
                accepted = False
            assert accepted == caps.thinking.types.disabled.supported, info.id
        haiku55 = next(m for m in infos if m.id == "claude-haiku-5-5").capabilities
        assert haiku55.thinking.types.adaptive.supported and not haiku55.thinking.types.enabled.supported
        sonnet46 = next(m for m in infos if m.id == "claude-sonnet-4-6").capabilities
        assert sonnet46.thinking.types.enabled.supported and sonnet46.effort.supported

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        run_virtual(go())
