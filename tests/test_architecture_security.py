"""The support desk against a hostile tenant (issue 29), over real HTTP on loopback.

One test (or more) per finding: stats are authenticated and scoped to the caller's tenant; event ids
carry no global sequence; no malformed body gets a 500; bodies, content types and streams are bounded;
keys can be revoked and rotated and a revoked key gets 401 at once. The fuzz test of every endpoint's
bodies and headers is ``tests/test_architecture_service_fuzz.py``; the service run on its own (lesson
07's controls, keys off stdout) is ``tests/test_architecture_main.py``.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from course_utils.architecture.bus import InMemoryBus
from course_utils.architecture import service
from course_utils.architecture.service import SupportDesk, SupportDeskServer
from course_utils.architecture.store import DeskStore
from course_utils.architecture.vectors import VectorIndex
from course_utils.architecture.workers import Pipeline
from course_utils.resilience import IdempotencyStore
from course_utils.streaming import SSEParser
from course_utils.tenancy import TenantRegistry

DATA = Path(__file__).resolve().parents[1] / "data"
OPERATOR_KEY = "op_security-tests"


@pytest.fixture(scope="module")
def index() -> VectorIndex:
    idx = VectorIndex()
    for line in (DATA / "lesson08_kb.jsonl").read_text(encoding="utf-8").splitlines():
        a = json.loads(line)
        if a["tenant"] in ("acme", "globex"):
            idx.add(a["tenant"], [(a["doc_id"], f"{a['title']}. {a['text']}")])
    return idx


class Desk:
    """A served desk with its own registry (tests revoke keys) and the tenants' credentials."""

    def __init__(self, server: SupportDeskServer, registry: TenantRegistry, keys: dict[str, str]) -> None:
        self.server, self.registry, self.keys = server, registry, keys
        self.http = httpx.Client(base_url=server.base_url, timeout=30)

    def auth(self, tenant: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[tenant]}"}

    def post(self, tenant: str, cid: str, text: str, key: str, **headers: str) -> httpx.Response:
        return self.http.post(
            f"/conversations/{cid}/messages",
            json={"text": text},
            headers={**self.auth(tenant), "Idempotency-Key": key, **headers},
        )

    def read_stream(self, tenant: str, url: str) -> list[Any]:
        parser, events = SSEParser(), []
        with self.http.stream("GET", url, headers=self.auth(tenant), timeout=60) as response:
            assert response.status_code == 200, response.read()
            for chunk in response.iter_text():
                events += parser.feed(chunk)
        return events


@pytest.fixture()
def make_desk(sim, index, tmp_path) -> Iterator[Any]:
    """``make_desk(**SupportDesk options)``: a desk on the in-process bus, served on 127.0.0.1."""
    opened: list[Desk] = []

    def make(**options: Any) -> Desk:
        registry = TenantRegistry()
        keys = {t: registry.register(t, "pro") for t in ("acme", "globex")}
        n = len(opened)
        pipeline = Pipeline(
            InMemoryBus(idle_timeout_s=5.0),
            DeskStore(tmp_path / f"conversations{n}.db"),
            index,
            lambda tenant: sim.tenant(tenant).async_client(),
        )
        desk = SupportDesk(
            pipeline,
            registry=registry,
            idempotency=IdempotencyStore(tmp_path / f"idempotency{n}.db"),
            **{"heartbeat_s": 0.5, **options},
        )
        server = SupportDeskServer(desk).start()
        opened.append(Desk(server, registry, keys))  # type: ignore[arg-type]
        return opened[-1]

    yield make
    for d in opened:
        d.http.close()
        d.server.stop()


def _own_stats_when(desk: Desk, tenant: str, requests: int) -> dict:
    """The tenant's /stats once its ``requests`` traces are in (the observer runs just after the end event)."""
    for _ in range(200):
        stats = desk.http.get("/stats", headers=desk.auth(tenant)).json()
        if stats["slo"]["requests"] >= requests:
            return stats
        threading.Event().wait(0.05)
    raise AssertionError(f"/stats never showed {requests} requests: {stats}")


# ----- finding 1: /stats -------------------------------------------------------------------------------
def test_stats_need_a_key_and_show_only_the_callers_tenant(make_desk):
    desk = make_desk()
    for headers in ({}, {"Authorization": "Bearer tk_unknown"}, {"Authorization": "Basic YWNtZTo="}):
        refused = desk.http.get("/stats", headers=headers)
        assert refused.status_code == 401 and "API key" in refused.json()["error"]["message"]
    accepted = desk.post("acme", "c1", "I forgot my password", "k1")
    desk.read_stream("acme", accepted.headers["location"])
    acme = _own_stats_when(desk, "acme", 1)
    assert (acme["scope"], acme["tenant"], acme["slo"]["requests"]) == ("tenant", "acme", 1)
    assert sum(acme["answered_by"].values()) == 1
    # globex has posted nothing: acme's message, its cost and its models are not in globex's figures.
    globex = desk.http.get("/stats", headers=desk.auth("globex")).json()
    assert (globex["tenant"], globex["slo"]["requests"], globex["answered_by"]) == ("globex", 0, {})
    assert globex["slo"]["cost_per_conversation_usd"] is None and "model_calls" not in globex
    # Without an operator key configured, no key opens the whole service's figures.
    assert desk.http.get("/stats", headers={"Authorization": "Bearer op_"}).status_code == 401


def test_the_whole_services_figures_need_the_operators_own_credential(make_desk):
    desk = make_desk(operator_key=OPERATOR_KEY)
    accepted = desk.post("acme", "c1", "I forgot my password", "k1")
    desk.read_stream("acme", accepted.headers["location"])
    _own_stats_when(desk, "acme", 1)
    operator = {"Authorization": f"Bearer {OPERATOR_KEY}"}
    everything = desk.http.get("/stats", headers=operator).json()
    assert (everything["scope"], everything["slo"]["requests"], everything["model_calls"]) == ("all", 1, 1)
    assert desk.http.get("/stats", headers={"Authorization": f"Bearer {OPERATOR_KEY}x"}).status_code == 401
    assert desk.http.get("/conversations/c1", headers=operator).status_code == 401  # not a tenant's key


# ----- finding 2: event ids ----------------------------------------------------------------------------
def test_event_ids_carry_no_count_of_other_tenants_traffic(make_desk):
    desk = make_desk()
    first = desk.post("globex", "g1", "How do I export my data?", "g-1")
    desk.read_stream("globex", first.headers["location"])
    for i in range(3):  # another tenant's traffic between globex's two messages
        busy = desk.post("acme", f"a{i}", "I forgot my password", f"a-{i}")
        desk.read_stream("acme", busy.headers["location"])
    second = desk.post("globex", "g2", "How do I export my data?", "g-2")
    events = desk.read_stream("globex", second.headers["location"])
    # Each id counts events of globex's own conversation: its first message there, whatever acme did.
    assert first.json()["event_id"] == second.json()["event_id"] == "1-0"
    assert [e.id for e in events] == [f"{n}-0" for n in range(2, 2 + len(events))]
    # And the 202's id is a position in that stream: resuming after it gives this message's answer.
    resumed = desk.read_stream("globex", second.headers["location"] + f"&after={second.json()['event_id']}")
    assert [e.id for e in resumed] == [e.id for e in events]


# ----- finding 3: no 500 -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"text": "hello \\ud800 world"}', id="lone-surrogate"),
        pytest.param(b'{"text": "hello \\udfff"}', id="lone-low-surrogate"),
        pytest.param(b'{"text": "hi", "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", id="deep-nesting"),
        pytest.param(b"[" * 100_000, id="deep-nesting-unclosed"),
    ],
)
def test_bodies_that_raised_500_get_400_in_the_error_shape(make_desk, body):
    desk = make_desk()
    headers = {**desk.auth("acme"), "Idempotency-Key": "k", "Content-Type": "application/json"}
    response = desk.http.post("/conversations/c1/messages", content=body, headers=headers)
    assert response.status_code == 400, response.text[:300]
    assert response.json()["error"]["status"] == 400
    assert desk.http.get("/conversations/c1", headers=desk.auth("acme")).status_code == 404  # nothing stored


# ----- finding 4: bounded inputs and streams -----------------------------------------------------------
def test_a_body_over_the_limit_gets_413_declared_or_chunked(make_desk):
    desk = make_desk()
    headers = {**desk.auth("acme"), "Idempotency-Key": "big", "Content-Type": "application/json"}
    big = json.dumps({"text": "hi", "padding": "x" * 10_000_000}).encode()
    declared = desk.http.post("/conversations/c1/messages", content=big, headers=headers)
    assert declared.status_code == 413 and str(service.MAX_BODY_BYTES) in declared.json()["error"]["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
        for i in range(0, len(big), 65_536):
            yield big[i : i + 65_536]

    chunked = desk.http.post("/conversations/c1/messages", content=chunks(), headers=headers)
    assert chunked.status_code == 413
    just_fits = json.dumps({"text": "hi", "padding": "x" * (service.MAX_BODY_BYTES - 100)}).encode()
    assert desk.http.post("/conversations/c1/messages", content=just_fits, headers=headers).status_code == 202


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"]
)
def test_a_body_that_is_not_json_by_its_content_type_gets_415(make_desk, content_type):
    desk = make_desk()
    headers = {**desk.auth("acme"), "Idempotency-Key": "k"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = desk.http.post("/conversations/c1/messages", content=b'{"text": "hi"}', headers=headers)
    assert response.status_code == 415 and "application/json" in response.json()["error"]["message"]
    ok = {**headers, "Content-Type": "application/json; charset=UTF-8"}
    assert desk.http.post("/conversations/c1/messages", content=b'{"text": "hi"}', headers=ok).status_code == 202


def test_a_tenant_over_its_stream_cap_gets_429_and_others_are_not_affected(make_desk):
    desk = make_desk(max_streams_per_tenant=2)
    url = "/conversations/c1/stream"
    with (
        desk.http.stream("GET", url, headers=desk.auth("acme")) as one,
        desk.http.stream("GET", url, headers=desk.auth("acme")) as two,
    ):
        assert (one.status_code, two.status_code) == (200, 200)
        third = desk.http.get(url, headers=desk.auth("acme"))
        assert third.status_code == 429 and int(third.headers["retry-after"]) >= 1
        assert "2 open streams" in third.json()["error"]["message"]
        with desk.http.stream("GET", url, headers=desk.auth("globex")) as other:  # its own cap, untouched
            assert other.status_code == 200
    # Closed streams give their slots back (the server notices the disconnect at its next heartbeat).
    for _ in range(100):
        with desk.http.stream("GET", url, headers=desk.auth("acme")) as again:
            if again.status_code == 200:
                break
        threading.Event().wait(0.1)
    assert again.status_code == 200


def test_a_stream_with_no_event_for_the_idle_timeout_closes_itself(make_desk):
    desk = make_desk(heartbeat_s=0.05, stream_idle_s=0.3)
    lines: list[str] = []
    with desk.http.stream("GET", "/conversations/quiet/stream", headers=desk.auth("acme")) as response:
        assert response.status_code == 200
        for line in response.iter_lines():  # returns only when the server ends the stream
            lines.append(line)
            assert len(lines) < 1000, "the stream is still open after hundreds of heartbeats"
    assert [line for line in lines if line][-1].startswith(": closed: no event for 0.3 s"), lines[-3:]


# ----- finding 5: revocation -----------------------------------------------------------------------
def test_a_revoked_key_gets_401_at_once_everywhere_and_its_open_stream_ends(make_desk):
    desk = make_desk()
    accepted = desk.post("acme", "c1", "How do I cancel my plan?", "k1")
    desk.read_stream("acme", accepted.headers["location"])
    leaked = desk.auth("acme")
    with desk.http.stream("GET", "/conversations/c1/stream?after=999999-0", headers=leaked) as open_stream:
        assert open_stream.status_code == 200
        assert desk.registry.revoke_key(desk.keys["acme"]) is True
        body = "".join(open_stream.iter_text())  # ends at the next heartbeat, without a restart
    assert "revoked" in body
    for method, url in [("GET", "/stats"), ("GET", "/conversations/c1"), ("GET", "/conversations/c1/stream")]:
        assert desk.http.request(method, url, headers=leaked).status_code == 401
    assert desk.post("acme", "c1", "again", "k2").status_code == 401
    assert desk.http.get("/conversations/c1", headers=desk.auth("globex")).status_code == 404  # others unaffected


def test_a_tenant_rotates_its_key_and_the_old_one_is_dead(make_desk):
    desk = make_desk()
    old = desk.auth("acme")
    rotated = desk.http.post("/keys/rotate", headers=old)
    assert rotated.status_code == 200
    desk.keys["acme"] = rotated.json()["api_key"]
    assert desk.http.get("/stats", headers=old).status_code == 401
    assert desk.http.post("/keys/rotate", headers=old).status_code == 401  # a thief cannot rotate it back
    assert desk.http.get("/stats", headers=desk.auth("acme")).json()["tenant"] == "acme"


def test_the_operator_revokes_every_key_of_a_tenant_without_a_restart(make_desk):
    desk = make_desk(operator_key=OPERATOR_KEY)
    operator = {"Authorization": f"Bearer {OPERATOR_KEY}"}
    spare = desk.registry.issue_key("acme")
    assert desk.http.post("/admin/tenants/acme/rotate", headers=desk.auth("acme")).status_code == 401
    rotated = desk.http.post("/admin/tenants/acme/rotate", headers=operator)
    assert rotated.status_code == 200 and rotated.json()["revoked_keys"] == 2
    for key in (desk.keys["acme"], spare):
        assert desk.http.get("/stats", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    fresh = {"Authorization": f"Bearer {rotated.json()['api_key']}"}
    assert desk.http.get("/stats", headers=fresh).json()["tenant"] == "acme"
    assert desk.http.get("/stats", headers=desk.auth("globex")).status_code == 200
    assert desk.http.post("/admin/tenants/nobody/rotate", headers=operator).status_code == 404
