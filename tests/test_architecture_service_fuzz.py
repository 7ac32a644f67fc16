"""No request gets a 500 from the support desk (issue 29): every answer is 2xx or a 4xx in its error shape.

A property-based fuzzer, as the simulator's (``tests/test_request_fuzz.py``): message bodies built from
valid ones and broken (wrong types, lone surrogates, escaped or as raw invalid UTF-8, deep nesting,
truncation, sizes around the limits, raw bytes), and every endpoint's headers (``Authorization``,
``Idempotency-Key``, ``Content-Type``, ``Last-Event-ID``), path and query. The desk runs in-process
(``httpx.ASGITransport``: no sockets) with the API only (``run_workers=False``: accepted messages wait
on the bus), so thousands of requests fit in seconds. Seeded (``derandomize``) and bounded.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Iterator
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from course_utils.architecture.bus import InMemoryBus
from course_utils.architecture import service
from course_utils.architecture.service import MAX_TEXT_CHARS, SupportDesk, create_app
from course_utils.architecture.store import DeskStore
from course_utils.architecture.vectors import VectorIndex
from course_utils.architecture.workers import Pipeline
from course_utils.tenancy import TenantRegistry

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.generate, Phase.shrink],
)
SENT: dict[str, int] = {"requests": 0}


class InProcess:
    """One desk (API only) behind an in-process ASGI transport, driven from sync tests on one event loop."""

    def __init__(self) -> None:
        self.registry = TenantRegistry()
        self.key = self.registry.register("acme", "pro")
        pipeline = Pipeline(InMemoryBus(), DeskStore(), VectorIndex(), lambda tenant: None)
        desk = SupportDesk(
            pipeline,
            registry=self.registry,
            run_workers=False,
            operator_key="op_fuzz",
            heartbeat_s=0.01,
            stream_idle_s=0.02,  # a stream that would stay open ends at once: the transport waits for the end
        )
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(desk)), base_url="http://desk", timeout=30
        )

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        SENT["requests"] += 1
        return self.loop.run_until_complete(self.client.request(method, url, **kw))

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


@pytest.fixture(scope="module")
def desk() -> Iterator[InProcess]:
    d = InProcess()
    yield d
    d.close()


def _assert_well_formed(r: httpx.Response) -> None:
    assert r.status_code < 500, r.text[:500]
    if r.status_code >= 400:
        error = r.json()["error"]
        assert error["status"] == r.status_code and isinstance(error["message"], str) and error["message"]


# ----- bodies -------------------------------------------------------------------------------------------
chars = st.one_of(st.characters(), st.integers(0xD800, 0xDFFF).map(chr))  # lone surrogates included
texts = st.one_of(
    st.text(chars, max_size=40),
    st.integers(MAX_TEXT_CHARS - 2, MAX_TEXT_CHARS + 2).map(lambda n: "é" * n),
    st.sampled_from(["hello \ud800 world", "\udfff", "\ud83d\ude00", " ", "", "\x00", "a\u2028b"]),
)
leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), texts)
values = st.recursive(
    leaves, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(texts, kids, max_size=4), max_leaves=12
)
messages = st.fixed_dictionaries({"text": st.one_of(texts, values)}, optional={"extra": values, "tenant": texts})


@st.composite
def bodies(draw: Any) -> bytes:
    kind = draw(st.sampled_from(["message", "value", "nested", "truncated", "raw", "large"]))
    if kind == "raw":
        return draw(st.binary(max_size=300))
    if kind == "nested":
        depth = draw(st.integers(1, 120_000))
        closed = draw(st.booleans())
        return b'{"text": "hi", "x": ' + b"[" * depth + (b"]" * depth + b"}" if closed else b"")
    if kind == "large":
        size = draw(
            st.sampled_from([service.MAX_BODY_BYTES - 200, service.MAX_BODY_BYTES + 1, 3 * service.MAX_BODY_BYTES])
        )
        return json.dumps({"text": "hi", "pad": "x" * size}).encode()
    value = draw(messages if kind in ("message", "truncated") else values)
    ascii_only = draw(st.booleans())
    # Not ASCII: raw UTF-8, with surrogates written as the invalid bytes "surrogatepass" makes.
    encoded = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    if kind == "truncated":
        return encoded[: draw(st.integers(0, len(encoded)))]
    return encoded


@settings(FUZZ, max_examples=1_000)
@given(body=bodies(), idem=st.text(st.characters(max_codepoint=0xFF), min_size=1, max_size=12))
def test_no_message_body_gets_a_500(desk, body, idem):
    headers = {
        "Authorization": f"Bearer {desk.key}",
        "Idempotency-Key": idem.encode("latin-1"),
        "Content-Type": "application/json",
    }
    r = desk.request("POST", "/conversations/c1/messages", content=body, headers=headers)
    _assert_well_formed(r)


# ----- headers, paths and queries of every endpoint --------------------------------------------------------
header_text = st.text(st.characters(max_codepoint=0xFF), max_size=300).map(lambda s: s.encode("latin-1"))


@st.composite
def authorizations(draw: Any) -> bytes | None:
    """An Authorization header; ``{KEY}`` and ``{OP}`` stand for the tenant's and the operator's keys."""
    choice = draw(st.sampled_from(["valid", "operator", "none", "random", "bearer-random", "scheme"]))
    if choice == "none":
        return None
    if choice in ("valid", "operator"):
        prefix = draw(st.sampled_from([b"Bearer ", b"bearer  ", b"BEARER\t"]))
        return prefix + (b"{KEY}" if choice == "valid" else b"{OP}") + draw(st.sampled_from([b"", b" ", b"\t", b"x"]))
    if choice == "bearer-random":
        return b"Bearer " + draw(header_text)
    if choice == "scheme":
        return draw(st.sampled_from([b"Basic YWNtZTo=", b"Bearer", b"Bearer ", b" ", b"Bearer tk_"]))
    return draw(header_text)


ids = st.one_of(
    st.from_regex(r"[0-9]{1,21}(-[0-9]{1,21})?", fullmatch=True),
    st.text(st.characters(max_codepoint=0xFF), max_size=30),
    st.sampled_from(["0", "1-0", "18446744073709551615-18446744073709551615", "18446744073709551616-0", "-"]),
)
paths = st.one_of(st.sampled_from(["c1", "a" * 64, "a" * 65, ".", "..", "-x", "c%2Fd"]), st.text(max_size=20))
endpoints = st.sampled_from(
    [
        ("POST", "/conversations/{cid}/messages"),
        ("GET", "/conversations/{cid}/stream"),
        ("GET", "/conversations/{cid}"),
        ("GET", "/stats"),
        ("POST", "/admin/tenants/{cid}/rotate"),
        ("DELETE", "/conversations/{cid}"),
        ("GET", "/nowhere/{cid}"),
    ]
)


@settings(FUZZ, max_examples=1_000)
@given(
    endpoint=endpoints,
    cid=paths,
    auth=authorizations(),
    idem=st.one_of(st.none(), header_text),
    content_type=st.one_of(
        st.none(),
        header_text,
        st.sampled_from(
            ["application/json", "application/json; charset=utf-8", "application/json;charset=", "text/plain"]
        ),
    ),
    last_event_id=st.one_of(st.none(), ids),
    query=st.dictionaries(st.sampled_from(["after", "until", "tenant"]), ids, max_size=2),
    body=st.one_of(st.just(b'{"text": "hello"}'), bodies()),
)
def test_no_header_path_or_query_gets_a_500(desk, endpoint, cid, auth, idem, content_type, last_event_id, query, body):
    method, template = endpoint
    if auth is not None:
        auth = auth.replace(b"{KEY}", desk.key.encode()).replace(b"{OP}", b"op_fuzz")
    headers: dict[str, Any] = {}
    for name, value in (
        ("Authorization", auth),
        ("Idempotency-Key", idem),
        ("Content-Type", content_type),
        ("Last-Event-ID", last_event_id.encode("latin-1") if isinstance(last_event_id, str) else None),
    ):
        if value is not None:
            headers[name] = value
    url = template.format(cid=quote(cid.encode("utf-8", "surrogatepass"), safe=""))
    r = desk.request(method, url, params=query, headers=headers, content=body if method == "POST" else None)
    _assert_well_formed(r)
    if r.status_code == 200 and template.endswith("/rotate"):  # the operator rotated acme's keys: keep fuzzing with it
        desk.key = r.json()["api_key"]


def test_the_fuzzers_sent_thousands_of_requests(desk):
    """Runs after the fuzz tests in file order; with random order, it fuzzes on its own first."""
    if SENT["requests"] < 1_000:
        test_no_message_body_gets_a_500(desk)
        test_no_header_path_or_query_gets_a_500(desk)
    assert SENT["requests"] >= 1_000, SENT
