"""Helpers for the sandbox suite: the webhook receiver and small shortcuts."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests
import stripe

API_KEY = "sk_test_sandbox_suite"


class Receiver:
    """A tiny webhook endpoint: records deliveries, can fail the first N."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self.fail_next = 0
        self.secret = ""
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.deliveries.append((dict(self.headers.items()), body))
                    failing = receiver.fail_next > 0
                    if failing:
                        receiver.fail_next -= 1
                self.send_response(500 if failing else 200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"received": true}')

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def clear(self) -> None:
        with self.lock:
            self.deliveries.clear()
            self.fail_next = 0
            self.secret = ""

    def events(self) -> list[stripe.Event]:
        """Every delivery, verified exactly as an integration would verify it."""
        with self.lock:
            raw = list(self.deliveries)
        out = []
        for headers, body in raw:
            signature = headers.get("Stripe-Signature", "")
            out.append(stripe.Webhook.construct_event(body.decode(), signature, self.secret))
        return out

    def types(self) -> list[str]:
        return [e.type for e in self.events()]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def create_session(client: stripe.StripeClient, price_id: str, **extra: Any) -> Any:
    params: dict[str, Any] = {
        "mode": "subscription",
        "line_items": [{"price": price_id, "quantity": 1}],
        "success_url": "https://app.example/success?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://app.example/cancel",
    }
    if "customer" not in extra:
        params["customer_email"] = "buyer@example.com"
    params.update(extra)
    return client.v1.checkout.sessions.create(params=params)


def pay(url: str, card: str, **form: str) -> requests.Response:
    return requests.post(url, data={"card_number": card, **form}, allow_redirects=False, timeout=10)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def event_types(client: stripe.StripeClient) -> list[str]:
    """All event types, oldest first."""
    return [
        e.type
        for e in reversed(list(client.v1.events.list(params={"limit": 100}).auto_paging_iter()))
    ]


def as_dict(obj: Any) -> dict[str, Any]:
    return json.loads(str(obj))
