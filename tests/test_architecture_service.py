"""The support desk over real HTTP: 202 + event id, SSE answers, idempotent retries, restarts; both buses."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from _wait import wait_until

from course_utils.architecture.bus import InMemoryBus, RedisStreamsBus
from course_utils.architecture.service import SupportDesk, SupportDeskServer
from course_utils.architecture.store import DeskStore
from course_utils.architecture.vectors import VectorIndex
from course_utils.architecture.workers import Pipeline
from course_utils.resilience import IdempotencyStore
from course_utils.streaming import SSEParser
from course_utils.tenancy import TenantRegistry

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def index() -> VectorIndex:
    idx = VectorIndex()
    for line in (DATA / "lesson08_kb.jsonl").read_text(encoding="utf-8").splitlines():
        a = json.loads(line)
        if a["tenant"] in ("acme", "globex"):
            idx.add(a["tenant"], [(a["doc_id"], f"{a['title']}. {a['text']}")])
    return idx


@pytest.fixture(params=["memory", "redis"])
def bus_factory(request):
    if request.param == "memory":
        return lambda: InMemoryBus(idle_timeout_s=5.0)
    url = request.getfixturevalue("redis_url")
    request.getfixturevalue("redis_client")
    prefix = f"svc:{uuid.uuid4().hex[:8]}"
    return lambda: RedisStreamsBus(url, prefix=prefix, idle_timeout_s=5.0)


REGISTRY = TenantRegistry()
KEYS = {tenant: REGISTRY.register(tenant, "pro") for tenant in ("acme", "globex")}
OPERATOR = {"Authorization": "Bearer op_service-tests"}


def _auth(tenant: str) -> dict[str, str]:
    """The tenant's credentials: the only way a request says who it is."""
    return {"Authorization": f"Bearer {KEYS[tenant]}"}


def _desk(sim, index, bus, tmp_path: Path) -> SupportDesk:
    store = DeskStore(tmp_path / "conversations.db")
    pipeline = Pipeline(bus, store, index, lambda tenant: sim.tenant(tenant).async_client())
    return SupportDesk(
        pipeline,
        registry=REGISTRY,
        idempotency=IdempotencyStore(tmp_path / "idempotency.db"),
        heartbeat_s=0.5,
        operator_key=OPERATOR["Authorization"].split()[1],
    )


@pytest.fixture()
def desk_server(sim, index, bus_factory, tmp_path) -> Iterator[SupportDeskServer]:
    with SupportDeskServer(_desk(sim, index, bus_factory(), tmp_path)) as srv:
        yield srv


def _post(http: httpx.Client, cid: str, text: str, key: str, tenant: str = "acme") -> httpx.Response:
    return http.post(
        f"/conversations/{cid}/messages", json={"text": text}, headers={**_auth(tenant), "Idempotency-Key": key}
    )


def _read_stream(http: httpx.Client, url: str, tenant: str = "acme") -> list[Any]:
    parser, events = SSEParser(), []
    with http.stream("GET", url, headers=_auth(tenant), timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        for chunk in response.iter_text():
            events += parser.feed(chunk)
    return events


def _stats_when(http: httpx.Client, ready) -> dict:
    """/stats (the operator's view) once ``ready(stats)``: the observer records a trace just after the end event."""
    last: list[dict] = [{}]

    def stats() -> dict | None:
        last[0] = http.get("/stats", headers=OPERATOR).json()
        return last[0] if ready(last[0]) else None

    return wait_until(stats, timeout=60, what="/stats to show the trace", detail=lambda: f"/stats: {last[0]}")


def _billed(sim) -> int:
    ledger = sim.ledger()
    return int(((ledger["endpoint"] == "/v1/messages") & (ledger["status"] == 200)).sum())


def test_post_answers_202_at_once_and_the_answer_streams_over_sse(desk_server, sim):
    with httpx.Client(base_url=desk_server.base_url, timeout=30) as http:
        accepted = _post(http, "c1", "I forgot my password", "key-1")
        assert accepted.status_code == 202
        body = accepted.json()
        assert body["event_id"] and body["conversation_id"] == "c1" and body["message_id"]
        events = _read_stream(http, accepted.headers["location"])
        kinds = [e.event for e in events]
        assert kinds[-1] == "end" and set(kinds[:-1]) == {"delta"}
        text = "".join(json.loads(e.data)["text"] for e in events[:-1])
        assert json.loads(events[-1].data)["usage"]["output_tokens"] > 0
        conversation = http.get("/conversations/c1", headers=_auth("acme")).json()
        assert [m["role"] for m in conversation["messages"]] == ["user", "assistant"]
        assert conversation["messages"][1]["content"] == text
        # A reconnect with Last-Event-ID resumes after it: only the end event is left.
        resumed = _read_stream(http, accepted.headers["location"] + f"&after={events[-2].id}")
        assert [e.event for e in resumed] == ["end"]
    assert _billed(sim) == 1


def test_a_retried_post_is_the_same_message_one_answer_and_one_charge(desk_server, sim):
    with httpx.Client(base_url=desk_server.base_url, timeout=30) as http:
        first = _post(http, "c2", "Can I get a refund?", "retry-me")
        again = _post(http, "c2", "Can I get a refund?", "retry-me")
        assert (first.status_code, again.status_code) == (202, 202)
        assert again.json() == first.json()
        _read_stream(http, first.headers["location"])
        late = _post(http, "c2", "Can I get a refund?", "retry-me")  # after the answer, too
        assert late.json() == first.json()
        reused = _post(http, "c2", "Something else entirely", "retry-me")
        assert reused.status_code == 422 and "different request body" in reused.json()["error"]["message"]
        messages = http.get("/conversations/c2", headers=_auth("acme")).json()["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant"]
    assert _billed(sim) == 1


def test_bad_requests_get_clear_errors_and_store_nothing(desk_server):
    with httpx.Client(base_url=desk_server.base_url, timeout=30) as http:
        url = "/conversations/c3/messages"
        cases = [
            (http.post(url, json={"text": "hi"}, headers={"Idempotency-Key": "k"}), 401, "Authorization"),
            # A tenant named by the caller is not an identity: without a key the header changes nothing.
            (http.post(url, json={"text": "hi"}, headers={"X-Tenant": "acme", "Idempotency-Key": "k"}), 401, "API key"),
            (http.post(url, json={"text": "hi"}, headers=_auth("acme")), 400, "Idempotency-Key"),
            (
                http.post(
                    url,
                    content=b"{not json",
                    headers={**_auth("acme"), "Idempotency-Key": "k", "Content-Type": "application/json"},
                ),
                400,
                "JSON",
            ),
            (
                http.post(url, json={"text": "  "}, headers={**_auth("acme"), "Idempotency-Key": "k"}),
                400,
                "non-empty",
            ),
            (
                http.post(url, json={"text": "x" * 9000}, headers={**_auth("acme"), "Idempotency-Key": "k"}),
                413,
                "longer",
            ),
            (
                http.post(
                    url, json={"text": "hi"}, headers={"Authorization": "Bearer tk_forged", "Idempotency-Key": "k"}
                ),
                401,
                "API key",
            ),
        ]
        for response, status, words in cases:
            assert response.status_code == status, response.text
            assert words in response.json()["error"]["message"]
        assert http.get("/conversations/c3", headers=_auth("acme")).status_code == 404
        assert http.get("/conversations/c3/stream?after=yesterday", headers=_auth("acme")).status_code == 400


def test_a_tenant_cannot_read_another_tenants_conversation(desk_server):
    with httpx.Client(base_url=desk_server.base_url, timeout=30) as http:
        accepted = _post(http, "shared-id", "How do I export my data?", "k-1", tenant="acme")
        _read_stream(http, accepted.headers["location"])
        assert http.get("/conversations/shared-id", headers=_auth("globex")).status_code == 404
        spoofed = {**_auth("globex"), "X-Tenant": "acme"}  # naming another tenant does not make you it
        assert http.get("/conversations/shared-id?tenant=acme", headers=spoofed).status_code == 404
        assert http.get("/conversations/shared-id", headers=_auth("acme")).status_code == 200


def test_conversations_survive_a_restart_of_the_service(sim, index, bus_factory, tmp_path):
    with SupportDeskServer(_desk(sim, index, bus_factory(), tmp_path)) as srv:
        with httpx.Client(base_url=srv.base_url, timeout=30) as http:
            accepted = _post(http, "c4", "How do I cancel my plan?", "k-4")
            _read_stream(http, accepted.headers["location"])
            before = http.get("/conversations/c4", headers=_auth("acme")).json()
    with SupportDeskServer(_desk(sim, index, bus_factory(), tmp_path)) as srv:  # a deploy: new process, same files
        with httpx.Client(base_url=srv.base_url, timeout=30) as http:
            assert http.get("/conversations/c4", headers=_auth("acme")).json() == before
            replay = _post(http, "c4", "How do I cancel my plan?", "k-4")  # a retry across the deploy
            assert replay.json() == accepted.json()
            follow_up = _post(http, "c4", "And will my data be kept?", "k-5")
            _read_stream(http, follow_up.headers["location"])
            stats = _stats_when(http, lambda s: s["slo"]["requests"] >= 1)
            assert (stats["slo"]["requests"], stats["model_calls"], stats["replayed_answers"]) == (1, 1, 0), stats
    assert _billed(sim) == 2
