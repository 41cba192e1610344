"""The ASGI side of bench/asgi_ceiling.py: what gunicorn's asyncio worker (`-k asgi`) gives.

- `native`: POST /api/webhooks/stripe as an ASGI app: verify the Stripe signature, parse the
  JSON, answer (bench/bare_app.py's hmac-only route without Flask or WSGI);
- `mixed`: that route native, every other request to bench/bare_app.py's Flask app through
  a2wsgi's thread pool (what serving the whole app this way would cost its other routes).
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, cast

import stripe
from a2wsgi import WSGIMiddleware

from bench.bare_app import app as flask_app

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SECRET = os.environ["STRIPE_WEBHOOK_SECRET"]
WEBHOOK = "/api/webhooks/stripe"


async def native(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
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
        json.loads(text)
        status, reply = 200, b'{"received":true}'
    except (ValueError, stripe.SignatureVerificationError):
        status, reply = 400, b'{"error":"invalid"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(reply))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": reply})


# Flask's app and a2wsgi's middleware differ in how they type the WSGI and ASGI callables.
_flask: Any = WSGIMiddleware(cast(Any, flask_app), workers=int(os.environ.get("WEB_THREADS") or 8))


async def mixed(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan" or scope.get("path") == WEBHOOK:
        await native(scope, receive, send)
    else:
        await _flask(scope, receive, send)
