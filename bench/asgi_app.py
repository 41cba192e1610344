"""The ASGI side of bench/asgi_ceiling.py: what gunicorn's asyncio worker (`-k asgi`) gives.

- `native`: POST /api/webhooks/stripe as an ASGI app: verify the Stripe signature, parse the
  JSON, answer (bench/bare_app.py's hmac-only route without Flask or WSGI);
- `mixed`: that route native, every other request to bench/bare_app.py's Flask app through
  a2wsgi's thread pool (what serving the whole app this way would cost its other routes);
- `recording`: the check, then the event written durably before the 200, by a group commit on
  one asyncio PostgreSQL connection per process (the deliveries waiting while a batch is
  written go in the next one, at most 200), into the app's `webhook_events` (DATABASE_URL,
  migrated): a sketch of the app's inbox (app/billing/webhooks/inbox.py) on asyncio, without
  its checks of the event's fields, its audit entries, metrics and log line.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any, cast

import psycopg
import stripe
from a2wsgi import WSGIMiddleware

from app.asgi import lifespan
from bench.bare_app import app as flask_app

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SECRET = os.environ["STRIPE_WEBHOOK_SECRET"]
WEBHOOK = "/api/webhooks/stripe"


async def checked_event(scope: Scope, receive: Receive) -> tuple[dict[str, Any], str] | None:
    """The delivery's event and its text when the signature holds and the JSON reads."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    signature = dict(scope["headers"]).get(b"stripe-signature", b"").decode()
    try:
        text = body.decode()
        stripe.WebhookSignature.verify_header(text, signature, SECRET, 300)
        return json.loads(text), text
    except (ValueError, stripe.SignatureVerificationError):
        return None


async def answer(send: Send, status: int, reply: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(reply))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": reply})


async def native(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    if await checked_event(scope, receive) is None:
        return await answer(send, 400, b'{"error":"invalid"}')
    await answer(send, 200, b'{"received":true}')


_RECORD = (
    "INSERT INTO webhook_events (id, type, data, stripe_created, processed, attempts,"
    " created_at) SELECT e.id, e.type, CAST(e.data AS JSON), e.created, false, 0, e.received"
    " FROM unnest(%(ids)b::varchar[], %(types)b::varchar[], %(data)b::text[],"
    " %(created)b::bigint[], %(received)b::timestamptz[]) AS e(id, type, data, created, received)"
    " ON CONFLICT (id) DO NOTHING RETURNING id"
)
Waiting = tuple[str, str, str, int, datetime, "asyncio.Future[bool]"]


class AsyncInbox:
    def __init__(self) -> None:
        self.connection: psycopg.AsyncConnection[Any] | None = None
        self.waiting: list[Waiting] = []
        self.writing = False

    async def record(self, event: dict[str, Any], text: str) -> bool:
        """True when new, False for a redelivery, once a commit holds it."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        received = datetime.now(UTC)
        self.waiting.append((event["id"], event["type"], text, event["created"], received, done))
        if not self.writing:
            self.writing = True
            asyncio.get_running_loop().create_task(self._write())
        return await done

    async def _write(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting[:200], self.waiting[200:]
                try:
                    new = await self._insert(batch)
                except Exception as exc:  # nothing acknowledged: each delivery answers 503
                    self.connection = None
                    for *_row, done in batch:
                        done.set_exception(exc)
                else:
                    for event_id, *_row, done in batch:
                        done.set_result(event_id in new)
        finally:
            self.writing = False

    async def _insert(self, batch: list[Waiting]) -> set[str]:
        if self.connection is None:
            self.connection = await psycopg.AsyncConnection.connect(os.environ["DATABASE_URL"])
        columns = ("ids", "types", "data", "created", "received")
        params = {name: [row[n] for row in batch] for n, name in enumerate(columns)}
        async with self.connection.transaction():
            cursor = await self.connection.execute(_RECORD, params)
            return {row[0] for row in await cursor.fetchall()}


_inbox = AsyncInbox()


async def recording(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    checked = await checked_event(scope, receive)
    if checked is None:
        return await answer(send, 400, b'{"error":"invalid"}')
    try:
        new = await _inbox.record(*checked)
    except Exception:
        return await answer(send, 503, b'{"error":"unavailable"}')
    await answer(
        send, 200, b'{"received":true,"status":"%s"}' % (b"recorded" if new else b"duplicate")
    )


# Flask's app and a2wsgi's middleware differ in how they type the WSGI and ASGI callables.
_flask: Any = WSGIMiddleware(cast(Any, flask_app), workers=int(os.environ.get("WEB_THREADS") or 8))


async def mixed(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan" or scope.get("path") == WEBHOOK:
        await native(scope, receive, send)
    else:
        await _flask(scope, receive, send)
