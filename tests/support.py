"""Helpers shared by the app's tests: act on the sandbox's hosted pages, sign webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests
from conftest import Billing, apply_recorded_events, auth_headers
from flask.testing import FlaskClient

CARD_OK = "4242 4242 4242 4242"
CARD_DECLINED = "4000 0000 0000 0002"
CARD_3DS = "4000 0025 0000 3155"
CARD_FAILS_LATER = "4000 0000 0000 0341"


def pay_hosted_checkout(session_url: str, card: str = CARD_OK, **fields: str) -> requests.Response:
    """Submit the sandbox's hosted checkout form, as a browser would."""
    return requests.post(
        session_url, data={"card_number": card, **fields}, allow_redirects=False, timeout=10
    )


def portal_action(portal_url: str, action: str, **fields: str) -> requests.Response:
    return requests.post(
        portal_url, data={"action": action, **fields}, allow_redirects=False, timeout=10
    )


def sign_payload(payload: str, secret: str, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def post_webhook(
    client: FlaskClient, event: dict[str, Any], secret: str, *, timestamp: int | None = None
) -> Any:
    """Deliver a signed event, as Stripe does, then let the app apply what it recorded."""
    payload = json.dumps(event)
    reply = client.post(
        "/api/webhooks/stripe",
        data=payload,
        headers={
            "Stripe-Signature": sign_payload(payload, secret, timestamp),
            "Content-Type": "application/json",
        },
    )
    apply_recorded_events(client.application)
    return reply


def subscribe(
    client: FlaskClient,
    billing: Billing,
    user_id: str,
    *,
    plan: str = "monthly",
    card: str = CARD_OK,
) -> dict[str, Any]:
    """The whole purchase: checkout, pay on the hosted page, webhooks delivered."""
    headers = auth_headers(user_id)
    created = client.post("/api/create-checkout-session", json={"plan": plan}, headers=headers)
    assert created.status_code == 200, created.get_json()
    session = created.get_json()["session"]
    paid = pay_hosted_checkout(session["url"], card)
    assert paid.status_code == 303, paid.text[:500]
    billing.wait_for_webhooks()
    return session


@contextmanager
def serving_json(document: dict[str, Any], path: str = "/") -> Iterator[str]:
    """Serve one JSON document (an identity provider's JWKS, say) on a loopback port; yield its
    URL (`path` only shapes the URL: every GET gets the document)."""
    body = json.dumps(document).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}{path}"
    finally:
        server.shutdown()


def wait_until(predicate: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)
