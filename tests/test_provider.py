"""The client factory: simulator by default, the real API with one setting, keys never shown."""

from __future__ import annotations

import anthropic
import pytest

import course_utils
from course_utils import provider


@pytest.fixture(autouse=True)
def _clean_settings(monkeypatch):
    monkeypatch.setattr(provider, "_settings", {})
    monkeypatch.delenv("COURSE_PROVIDER", raising=False)


def test_default_is_the_shared_simulator():
    c = course_utils.client()
    assert isinstance(c, anthropic.Anthropic)
    server = course_utils.shared_server()
    assert str(c.base_url).rstrip("/") == server.base_url
    assert course_utils.shared_server() is server  # one per process
    assert isinstance(course_utils.async_client(), anthropic.AsyncAnthropic)
    assert server.base_url.startswith("http://127.0.0.1:")


def test_real_provider_without_a_key_says_what_to_set(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("COURSE_PROVIDER", "anthropic")
    with pytest.raises(course_utils.ProviderConfigError, match="ANTHROPIC_API_KEY"):
        course_utils.client()
    with pytest.raises(course_utils.ProviderConfigError, match="ANTHROPIC_API_KEY"):
        course_utils.async_client(provider="anthropic")


def test_real_provider_with_a_key_targets_the_api_and_hides_the_key(monkeypatch):
    secret = "sk-ant-test-" + "x" * 40
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    c = course_utils.client(provider="anthropic")
    assert "api.anthropic.com" in str(c.base_url)
    assert secret not in repr(c) and secret not in str(c)
    assert course_utils.current_provider("real") == "anthropic"


def test_configure_sets_provider_and_rejects_unknown_names():
    course_utils.configure(provider="simulator")
    assert course_utils.current_provider() == "simulator"
    with pytest.raises(course_utils.ProviderConfigError, match="simulator"):
        course_utils.configure(provider="openai")


def test_forced_time_scale_overrides_what_a_notebook_asks_for(monkeypatch):
    from course_utils.mock_provider.config import FORCE_TIME_SCALE_ENV

    monkeypatch.setenv(FORCE_TIME_SCALE_ENV, "0.02")
    server = course_utils.MockServer(time_scale=1.0)
    assert server.config.time_scale == 0.02
    monkeypatch.delenv(FORCE_TIME_SCALE_ENV)
    assert course_utils.MockServer(time_scale=1.0).config.time_scale == 1.0
