"""The webhook's WSGI fast path (app/api/webhook_fast_path.py) answers exactly as the Flask
route does: every reply it makes, or leaves to the route, is byte for byte the route's for the
same input (status, JSON, headers; the request id's value aside when the app made one), with
the same access line, metrics and audit entries."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from app_instance import serve_instance
from flask import Flask
from sqlalchemy import select, text
from support import Billing, captured_logs, database_down, is_postgres, sign_payload, wait_until
from werkzeug.test import EnvironBuilder

from app.api.webhook_fast_path import WebhookFastPath
from app.extensions import db
from app.models import AuditEntry
from app.observability import metrics

PATH = "/api/webhooks/stripe"
GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Reply:
    status: str
    headers: list[tuple[str, str]]
    body: bytes

    def comparable(self) -> tuple[str, list[tuple[str, str]], bytes]:
        """The request id the app made (a new one each time) as a placeholder."""
        headers = [
            (name, "<made>" if name == "X-Request-ID" and GENERATED_ID.match(value) else value)
            for name, value in self.headers
        ]
        return self.status, headers, self.body


class Counting:
    """The Flask app behind the fast path, counting what reaches it."""

    def __init__(self, wsgi_app: Any) -> None:
        self.wsgi_app = wsgi_app
        self.calls = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.calls += 1
        return self.wsgi_app(environ, start_response)


def both_ways(app: Flask) -> tuple[WebhookFastPath, Counting]:
    """A fast path of our own around the app's Flask WSGI app (the installed one's inner app)."""
    installed = app.wsgi_app
    assert isinstance(installed, WebhookFastPath), "the fast path is installed"
    route = Counting(installed.flask)
    return WebhookFastPath(app, route), route


def call(
    wsgi_app: Any,
    body: bytes,
    headers: dict[str, str],
    *,
    remote: str = "10.1.2.3",
) -> Reply:
    environ = EnvironBuilder(
        path=PATH,
        method="POST",
        data=body,
        headers=headers,
        environ_base={"REMOTE_ADDR": remote},
    ).get_environ()
    started: dict[str, Any] = {}

    def start_response(status: str, response_headers: Any, exc_info: Any = None) -> None:
        started.update(status=status, headers=list(response_headers))

    result = wsgi_app(environ, start_response)
    try:
        data = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return Reply(started["status"], started["headers"], data)


def event(event_id: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "id": event_id,
        "object": "event",
        "type": "invoice.created",
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": {"id": f"in_{event_id}", "customer": "cus_fast"}},
    }
    body.update(overrides)
    return body


def signed(payload: str, secret: str, **headers: str) -> tuple[bytes, dict[str, str]]:
    return payload.encode(), {
        "Content-Type": "application/json",
        "Stripe-Signature": sign_payload(payload, secret),
        **headers,
    }


def test_recorded_and_duplicate_are_answered_by_the_fast_path_as_the_route_does(
    app: Flask, billing: Billing
) -> None:
    fast, route = both_ways(app)
    secret = billing.webhook_secret
    for attempt in ("recorded", "duplicate"):
        mine = call(fast, *signed(json.dumps(event("evt_fast_a")), secret))
        assert route.calls == 0, f"{attempt}: the fast path answered it"
        theirs = call(route, *signed(json.dumps(event("evt_route_a")), secret))
        assert mine.comparable() == theirs.comparable(), attempt
        assert mine.status == "200 OK" and json.loads(mine.body)["status"] == attempt
        route.calls = 0
    # A request id the caller sent is echoed, the rest of the reply unchanged.
    mine = call(fast, *signed(json.dumps(event("evt_fast_b")), secret, **{"X-Request-ID": "r-1"}))
    theirs = call(
        route, *signed(json.dumps(event("evt_route_b")), secret, **{"X-Request-ID": "r-1"})
    )
    assert ("X-Request-ID", "r-1") in mine.headers and mine == theirs


def test_every_refusal_and_unusual_delivery_is_the_routes_own_reply(
    app: Flask, billing: Billing
) -> None:
    fast, route = both_ways(app)
    secret = billing.webhook_secret
    good = json.dumps(event("evt_refused"))
    now = int(time.time())
    too_large = json.dumps(event("evt_big", padding="x" * int(app.config["WEBHOOK_MAX_BYTES"])))
    cases: dict[str, tuple[bytes, dict[str, str]]] = {
        "forged": signed(good, "whsec_not_ours"),
        "missing signature": (good.encode(), {"Content-Type": "application/json"}),
        "stale": (good.encode(), {"Stripe-Signature": sign_payload(good, secret, now - 3600)}),
        "future": (good.encode(), {"Stripe-Signature": sign_payload(good, secret, now + 3600)}),
        "garbage signature": (good.encode(), {"Stripe-Signature": "t=1,v1=abc"}),
        "unreadable JSON": signed("{not json", secret),
        "not an object": signed("[1, 2]", secret),
        "malformed event": signed(json.dumps(event("evt_malformed", data=None)), secret),
        "not UTF-8": (b'{"id": "evt_\xff"}', {"Stripe-Signature": sign_payload("x", secret)}),
        "too large": signed(too_large, secret),
        "empty": signed("", secret),
    }
    for name, (body, headers) in cases.items():
        before = route.calls
        mine = call(fast, body, headers)
        assert route.calls == before + 1, f"{name}: left to the route"
        theirs = call(route, body, headers)
        assert mine.comparable() == theirs.comparable(), name
        assert mine.status.startswith(("400", "413")), (name, mine.status)


def test_a_valid_signature_in_an_unusual_header_is_left_to_the_route_and_recorded(
    app: Flask, billing: Billing
) -> None:
    """The SDK accepts a header with a space before an extra scheme; the fast path leaves
    anything but the plain form to it."""
    fast, route = both_ways(app)
    secret = billing.webhook_secret

    def unusual(event_id: str) -> tuple[bytes, dict[str, str]]:
        body, headers = signed(json.dumps(event(event_id)), secret)
        headers["Stripe-Signature"] += ", v0=00"
        return body, headers

    mine = call(fast, *unusual("evt_unusual_fast"))
    assert route.calls == 1
    theirs = call(route, *unusual("evt_unusual_route"))
    assert mine.comparable() == theirs.comparable()
    assert json.loads(mine.body) == {"received": True, "status": "recorded"}


def test_the_access_line_metrics_and_audit_entries_are_the_routes(
    app: Flask, billing: Billing
) -> None:
    fast, route = both_ways(app)
    secret = billing.webhook_secret
    counter = metrics.HTTP_REQUESTS.labels("POST", PATH, "200")
    lines = {}
    for name, wsgi_app in (("fast", fast), ("route", route)):
        call(wsgi_app, *signed(json.dumps(event(f"evt_line_{name}")), secret))
        counted = counter._value.get()
        with captured_logs("app.request") as records:
            reply = call(
                wsgi_app,
                *signed(json.dumps(event(f"evt_line_{name}")), secret, **{"X-Request-ID": name}),
                remote=f"10.0.0.{len(name)}",
            )
        assert counter._value.get() == counted + 1, name
        assert reply.status == "200 OK"
        (record,) = [r for r in records if r.getMessage() == "request"]
        fields = {k: v for k, v in vars(record).items() if k in ACCESS_FIELDS}
        assert isinstance(fields.pop("duration_ms"), float)
        lines[name] = fields
    assert route.calls == 2
    assert lines["fast"] == {
        "method": "POST",
        "route": PATH,
        "path": PATH,
        "status": 200,
        "user_id": None,
        "event_id": "evt_line_fast",
        "event_type": "invoice.created",
        "outcome": "duplicate",
    }
    assert lines["route"] == {**lines["fast"], "event_id": "evt_line_route"}
    with app.app_context():
        entries = {
            entry.stripe_object: entry
            for entry in db.session.execute(
                select(AuditEntry).where(AuditEntry.action == "webhook.duplicate")
            ).scalars()
        }
    fast_entry, route_entry = entries["evt_line_fast"], entries["evt_line_route"]
    assert (fast_entry.ip, fast_entry.request_id, fast_entry.outcome) == ("10.0.0.4", "fast", "ok")
    assert (route_entry.ip, route_entry.request_id) == ("10.0.0.5", "route")
    assert fast_entry.detail == route_entry.detail == "invoice.created"


ACCESS_FIELDS = {
    "method",
    "route",
    "path",
    "status",
    "duration_ms",
    "user_id",
    "event_id",
    "event_type",
    "outcome",
}


def test_a_database_outage_is_the_routes_503_after_one_attempt(
    app: Flask, billing: Billing, tmp_path: Any
) -> None:
    secret = "whsec_fast_down"
    with (
        database_down(app, tmp_path) as outage,
        serve_instance(app, STRIPE_WEBHOOK_SECRET=secret, DATABASE_URL=outage.url) as instance,
    ):
        fast, route = both_ways(instance.app)
        for n in range(2):  # the second one while the outage is known
            mine = call(fast, *signed(json.dumps(event(f"evt_down_{n}")), secret))
            assert route.calls == 2 * n + 1, "answered by the route"
            theirs = call(route, *signed(json.dumps(event(f"evt_down_{n}")), secret))
            assert mine.comparable() == theirs.comparable()
            assert mine.status.startswith("503")
            assert json.loads(mine.body)["error"]["code"] == "database_unavailable"
            assert dict(mine.headers)["Retry-After"]


def test_a_redelivery_written_in_another_deliverys_batch_is_audited_as_its_own_request(
    app: Flask, billing: Billing
) -> None:
    """The inbox writes the events waiting behind a write in one batch, led by the first of
    them: a redelivery's audit entry named the leader's request (its id and IP) instead of its
    own. A held write lock (an uncommitted row of the same id on PostgreSQL, SQLite's write
    lock) keeps the first delivery's write waiting while the others line up."""
    secret = billing.webhook_secret
    client = app.test_client()
    known = json.dumps(event("evt_known"))
    assert client.post(PATH, data=known, headers=signed(known, secret)[1]).status_code == 200
    inbox = app.extensions["webhook_inbox"]
    replies: dict[str, int] = {}

    def deliver(name: str, payload: str, ip: str) -> None:
        headers = {**signed(payload, secret)[1], "X-Request-ID": name}
        reply = app.test_client().post(
            PATH, data=payload, headers=headers, environ_base={"REMOTE_ADDR": ip}
        )
        replies[name] = reply.status_code

    with app.app_context():
        holder = db.engine.connect()
        holding = holder.begin()
        if is_postgres():
            holder.execute(
                text(
                    "INSERT INTO webhook_events (id, type, data, processed, attempts, created_at)"
                    " VALUES ('evt_first', 'invoice.created', '{}', false, 0, now())"
                )
            )
        threads = []
        try:
            for name, payload, ip, waiting in (
                ("first", json.dumps(event("evt_first")), "10.0.1.1", 0),
                ("leader", json.dumps(event("evt_second")), "10.0.1.2", 1),
                ("redelivery", known, "10.0.1.3", 2),
            ):
                thread = threading.Thread(target=deliver, args=(name, payload, ip))
                thread.start()
                threads.append(thread)
                if waiting:
                    wait_until(lambda n=waiting: len(inbox._waiting) == n, timeout=10)
                else:
                    wait_until(lambda: inbox._writing, timeout=10)
        finally:
            holding.rollback()
            holder.close()
            for thread in threads:
                thread.join(20)
    assert replies == {"first": 200, "leader": 200, "redelivery": 200}
    with app.app_context():
        (entry,) = db.session.execute(
            select(AuditEntry).where(
                AuditEntry.action == "webhook.duplicate", AuditEntry.stripe_object == "evt_known"
            )
        ).scalars()
    assert (entry.request_id, entry.ip) == ("redelivery", "10.0.1.3")
