"""The app as gunicorn's asyncio worker serves it (app/asgi.py, production's default): every
reply is the one the WSGI app makes for the same request (the webhook's common 200 made on the
event loop, everything else by Flask in the pool), bodies over their cap are refused without
being read, and a delivery is answered only after the commit that holds its event.

Driven here in-process by a minimal ASGI client over the real app and database; the live
server (gunicorn with gunicorn.conf.py) is what tests/processes.py runs for the crash, fault
and observability suites."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from app_instance import serve_instance
from flask import Flask
from sqlalchemy import select
from support import Billing, database_down
from test_webhook_fast_path import GENERATED_ID, PATH, Counting, both_ways, call, event, signed

from app.asgi import AsgiServer
from app.extensions import db
from app.models import AuditEntry, WebhookEvent


@dataclass
class Exchange:
    """One request through the ASGI app: what it read of the body, and what it sent."""

    status: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    receives: int = 0
    sent: int = 0

    def comparable(self) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = [
            (name, "<made>" if name == "x-request-id" and GENERATED_ID.match(value) else value)
            for name, value in self.headers
        ]
        return self.status, headers, self.body

    def json(self) -> Any:
        return json.loads(self.body)


def wsgi_comparable(reply: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """A WSGI reply (test_webhook_fast_path's `call`) as the ASGI side's headers read."""
    status, headers, body = reply.comparable()
    return int(status[:3]), [(name.lower(), value) for name, value in headers], body


async def exchange(
    server: AsgiServer,
    method: str,
    path: str,
    chunks: list[bytes] | None = None,
    headers: dict[str, str] | None = None,
    *,
    client: tuple[str, int] = ("10.1.2.3", 40000),
    declare_length: bool = True,
    disconnect: bool = False,
) -> Exchange:
    """Send `chunks` as the body (its total declared as Content-Length unless told not to);
    `disconnect`: the client goes away after the last chunk instead of ending the body."""
    chunks = chunks or []
    sent_headers = dict(headers or {})
    if declare_length:
        sent_headers["content-length"] = str(sum(len(chunk) for chunk in chunks))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in sent_headers.items()],
        "client": client,
        "server": ("127.0.0.1", 3001),
    }
    result = Exchange()
    pending = list(chunks)

    async def receive() -> dict[str, Any]:
        result.receives += 1
        if pending:
            chunk = pending.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(pending) or disconnect}
        if disconnect:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        result.sent += 1
        if message["type"] == "http.response.start":
            result.status = message["status"]
            result.headers = [(k.decode(), v.decode()) for k, v in message["headers"]]
        else:
            result.body += message.get("body", b"")

    await server(scope, receive, send)
    return result


def deliver(server: AsgiServer, payload: str, secret: str, **headers: str) -> Exchange:
    body, sent = signed(payload, secret, **headers)
    return asyncio.run(exchange(server, "POST", PATH, [body], sent))


@pytest.fixture
def server(app: Flask, billing: Billing) -> Iterator[AsgiServer]:
    served = AsgiServer(app, threads=4)
    served.wsgi = Counting(served.wsgi)  # what reached the WSGI chain (Flask's pool)
    yield served
    served.pool.shutdown()


def flask_calls(server: AsgiServer) -> int:
    counting: Counting = server.wsgi  # type: ignore[assignment]
    return counting.calls


def stored(app: Flask, event_id: str) -> WebhookEvent | None:
    with app.app_context():
        return db.session.get(WebhookEvent, event_id)


def test_a_delivery_is_answered_on_the_event_loop_with_the_routes_reply(
    app: Flask, billing: Billing, server: AsgiServer
) -> None:
    _fast, route = both_ways(app)
    secret = billing.webhook_secret
    for attempt in ("recorded", "duplicate"):
        mine = deliver(server, json.dumps(event("evt_asgi_a")), secret)
        theirs = call(route, *signed(json.dumps(event("evt_asgi_route")), secret))
        assert mine.comparable() == wsgi_comparable(theirs), attempt
        assert mine.status == 200 and mine.json()["status"] == attempt
    assert flask_calls(server) == 0, "Flask's pool was never needed"
    assert stored(app, "evt_asgi_a") is not None
    echoed = deliver(server, json.dumps(event("evt_asgi_b")), secret, **{"X-Request-ID": "r-9"})
    assert ("x-request-id", "r-9") in echoed.headers


def test_deliveries_in_flight_together_are_each_answered_once_their_batch_is_committed(
    app: Flask, billing: Billing, server: AsgiServer
) -> None:
    secret = billing.webhook_secret
    ids = [f"evt_asgi_batch_{n}" for n in range(12)]
    payloads = [json.dumps(event(event_id)) for event_id in ids]
    payloads.append(payloads[3])  # a redelivery in the same batch

    async def all_at_once() -> list[Exchange]:
        return await asyncio.gather(
            *(exchange(server, "POST", PATH, [p.encode()], signed(p, secret)[1]) for p in payloads)
        )

    replies = asyncio.run(all_at_once())
    assert [r.status for r in replies] == [200] * len(payloads)
    statuses = [r.json()["status"] for r in replies]
    assert statuses.count("recorded") == len(ids) and statuses.count("duplicate") == 1
    with app.app_context():
        rows = db.session.scalars(select(WebhookEvent.id).where(WebhookEvent.id.in_(ids))).all()
    assert sorted(rows) == sorted(ids)


def test_deliveries_arriving_a_few_loop_passes_apart_share_one_commit(
    app: Flask, billing: Billing, server: AsgiServer
) -> None:
    """Under load a worker's deliveries arrive one or two passes of the loop apart, not all at
    once: the writer lets the loop run a few passes before it takes a batch, so they share one
    statement and its commit instead of paying one each."""
    secret = billing.webhook_secret
    inbox = server.inbox
    assert inbox is not None
    batches: list[int] = []
    write = inbox._write

    def counted(events: Any) -> set[str]:
        batches.append(len(events))
        return write(events)

    inbox._write = counted  # type: ignore[method-assign]
    ids = [f"evt_asgi_passes_{n}" for n in range(4)]

    async def after_passes(passes: int, payload: str) -> Exchange:
        for _ in range(passes):
            await asyncio.sleep(0)
        return await exchange(server, "POST", PATH, [payload.encode()], signed(payload, secret)[1])

    async def staggered() -> list[Exchange]:
        payloads = [json.dumps(event(event_id)) for event_id in ids]
        return await asyncio.gather(*(after_passes(n, p) for n, p in enumerate(payloads)))

    replies = asyncio.run(staggered())
    assert [r.json()["status"] for r in replies] == ["recorded"] * len(ids)
    assert batches == [len(ids)], f"batches written: {batches}"


def test_every_other_request_is_answered_by_flask_as_under_wsgi(
    app: Flask, billing: Billing, server: AsgiServer
) -> None:
    secret = billing.webhook_secret
    _fast, route = both_ways(app)
    for name, payload in {
        "forged": json.dumps(event("evt_asgi_forged")),
        "malformed": json.dumps(event("evt_asgi_malformed", data=None)),
    }.items():
        key = "whsec_not_ours" if name == "forged" else secret
        before = flask_calls(server)
        mine = deliver(server, payload, key)
        assert flask_calls(server) == before + 1, f"{name}: left to the route"
        theirs = call(route, *signed(payload, key))
        assert mine.comparable() == wsgi_comparable(theirs), name
        assert mine.status == 400
    health = asyncio.run(exchange(server, "GET", "/healthz"))
    assert health.status == 200 and health.json()["status"] == "ok"
    unauthorized = asyncio.run(
        exchange(
            server, "POST", "/api/usage/generations", [b"{}"], {"content-type": "application/json"}
        )
    )
    assert unauthorized.status == 401 and unauthorized.json()["error"]["code"] == "missing_token"
    assert dict(unauthorized.headers)["content-type"] == "application/json"


def test_a_body_over_its_cap_is_refused_without_being_read(
    app: Flask, billing: Billing, server: AsgiServer
) -> None:
    cap = int(app.config["MAX_CONTENT_LENGTH"])
    huge = [b"x" * 1024] * (cap // 1024 + 2)
    declared = asyncio.run(exchange(server, "POST", "/api/usage/generations", huge))
    assert declared.status == 413 and declared.json()["error"]["code"] == "payload_too_large"
    assert declared.receives == 0, "refused from its Content-Length, not read"
    webhook_cap = int(app.config["WEBHOOK_MAX_BYTES"])
    # Without a length (chunked): read up to the cap and one byte more, then refused.
    endless = [b"x" * 1024] * (webhook_cap // 1024 + 2)
    chunked = asyncio.run(
        exchange(
            server, "POST", PATH, endless, {"transfer-encoding": "chunked"}, declare_length=False
        )
    )
    assert chunked.status == 413 and chunked.json()["error"]["code"] == "payload_too_large"
    assert chunked.receives == webhook_cap // 1024 + 1 < len(endless)
    big = json.dumps(event("evt_asgi_big", padding="x" * webhook_cap))
    too_big = deliver(server, big, billing.webhook_secret)
    assert too_big.status == 413 and too_big.receives == 0
    assert stored(app, "evt_asgi_big") is None


def test_a_chunked_delivery_within_the_cap_is_answered_on_the_event_loop(
    app: Flask, billing: Billing, server: AsgiServer
) -> None:
    payload = json.dumps(event("evt_asgi_chunked"))
    body, headers = signed(payload, billing.webhook_secret, **{"Transfer-Encoding": "chunked"})
    reply = asyncio.run(
        exchange(server, "POST", PATH, [body[:20], body[20:]], headers, declare_length=False)
    )
    assert reply.status == 200 and reply.json()["status"] == "recorded"
    assert flask_calls(server) == 0 and stored(app, "evt_asgi_chunked") is not None


def test_a_client_gone_mid_body_gets_no_reply_and_nothing_is_recorded(
    app: Flask, billing: Billing, server: AsgiServer
) -> None:
    payload = json.dumps(event("evt_asgi_gone"))
    body, headers = signed(payload, billing.webhook_secret)
    headers["content-length"] = str(len(body))
    gone = asyncio.run(
        exchange(server, "POST", PATH, [body[:10]], headers, declare_length=False, disconnect=True)
    )
    assert gone.sent == 0 and flask_calls(server) == 0
    assert stored(app, "evt_asgi_gone") is None


def test_a_database_outage_is_the_routes_503_and_nothing_is_acknowledged(
    app: Flask, billing: Billing, tmp_path: Any
) -> None:
    secret = "whsec_asgi_down"
    with (
        database_down(app, tmp_path) as outage,
        serve_instance(app, STRIPE_WEBHOOK_SECRET=secret, DATABASE_URL=outage.url) as instance,
    ):
        served = AsgiServer(instance.app, threads=2)
        try:
            _fast, route = both_ways(instance.app)
            for n in range(2):  # the second one while the outage is known
                payload = json.dumps(event(f"evt_asgi_down_{n}"))
                mine = deliver(served, payload, secret)
                theirs = call(route, *signed(payload, secret))
                assert mine.comparable() == wsgi_comparable(theirs)
                assert mine.status == 503
                assert mine.json()["error"]["code"] == "database_unavailable"
                assert dict(mine.headers)["retry-after"]
        finally:
            served.pool.shutdown()


def test_behind_a_proxy_a_redelivery_is_audited_with_the_forwarded_client(
    app: Flask, billing: Billing
) -> None:
    secret = "whsec_asgi_proxied"
    with serve_instance(app, STRIPE_WEBHOOK_SECRET=secret, TRUSTED_PROXY_COUNT=1) as instance:
        served = AsgiServer(instance.app, threads=2)
        try:
            payload = json.dumps(event("evt_asgi_proxied"))
            forwarded = {"X-Forwarded-For": "203.0.113.9", "X-Request-ID": "proxied-2"}
            assert deliver(served, payload, secret).json()["status"] == "recorded"
            again = deliver(served, payload, secret, **forwarded)
            assert again.json()["status"] == "duplicate"
        finally:
            served.pool.shutdown()
        with instance.app.app_context():
            entry = db.session.scalars(
                select(AuditEntry).where(AuditEntry.request_id == "proxied-2")
            ).one()
    assert entry.action == "webhook.duplicate" and entry.ip == "203.0.113.9"


def test_a_websocket_is_refused_at_the_handshake(server: AsgiServer) -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(server({"type": "websocket", "path": "/api/me", "headers": []}, receive, send))
    assert sent == [{"type": "websocket.close", "code": 1008}]
