"""Issue 13 item 6: the models the API serves. Deprecated models answer until their end-of-life
date (the SDK warns), retired ones get 404, and ``GET /v1/models`` returns ``capabilities``.

SDK ``ModelInfo.lifecycle``: "`deprecated`: The model remains callable ... headed for retirement";
"`retired`: The model is no longer available for use; inference requests naming it fail. It remains
in the catalogue as the historical record of its retirement." End-of-life dates: the SDK's
``DEPRECATED_MODELS`` (claude-opus-4-5: January 22nd, 2027; claude-sonnet-4-5: November 30th, 2026).
"""

from __future__ import annotations

import asyncio
import warnings
from datetime import datetime

import anthropic
import pytest
from anthropic._data import DEPRECATED_MODELS

from course_utils.clock import VIRTUAL_EPOCH, run_virtual
from course_utils.mock_provider.inprocess import InProcessServer
from course_utils.models import RetiredModelError, catalog, get_model

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


def test_deprecated_model_answers_with_the_sdk_warning_retired_ones_404():
    # Virtual time starts at 2027-01-15: Opus 4.5 is deprecated (until 2027-01-22), Sonnet 4.5 retired.
    srv = InProcessServer(seed=0, time_scale=0, rate_limit_tier="unlimited")

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


@pytest.mark.parametrize(
    "model", ["claude-opus-5", "claude-sonnet-5", "claude-haiku-4-5-20251001", "claude-opus-4-5-20251101"]
)
def test_other_sdk_listed_models_answer(model):
    srv = InProcessServer(seed=0, time_scale=0, rate_limit_tier="unlimited")

    async def go() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            msg = await srv.async_client(max_retries=0).messages.create(model=model, max_tokens=20, messages=ASK)
        assert msg.model == model and msg.usage.output_tokens > 0

    run_virtual(go())


def test_models_list_has_capabilities_that_match_what_messages_enforces():
    srv = InProcessServer(seed=0, time_scale=0, rate_limit_tier="unlimited")

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
