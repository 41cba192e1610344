"""A WSGI fast path in front of Flask for the common reply of POST /api/webhooks/stripe: a
plainly signed, well-formed event recorded (or a redelivery), answered 200.

The Flask route costs about 0.5 ms of CPU per delivery, most of it Flask's request machinery and
hooks around a write of about 0.1 ms (docs/performance.md, "fastpath"). Here a delivery is read,
checked (`accepted`), handed to the same inbox (`record`; both from the webhooks' service) in an
app context, and answered with the route's own reply, headers included: each reply is built
once, through the app's JSON provider and security hook, and only the request id changes. The
request id, the metrics and the access line come from the functions the Flask hooks use.

Everything else goes to the unchanged Flask route, with the body put back when it was read:
another path or method, no Content-Length, a body over WEBHOOK_MAX_BYTES, no or an unusual
signature, a bad one, unreadable or malformed JSON. A write that fails here is answered by the
route too (`FAST_PATH_FAILURE`), as its own failure would be, without a second attempt: error
replies exist in one place only.

Flask's request signals are not sent for the replies made here; the fast path is off when
something depends on them for this route (Sentry's tracing names transactions from them).
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, cast

from flask import Flask, Response, request

from app import audit
from app.billing.webhooks import service as webhook_service
from app.observability import QUIET_ROUTES, metrics
from app.observability.logging import log_event
from app.observability.request_id import (
    REQUEST_ID_HEADER,
    bind_request_id,
    incoming_request_id,
    unbind_request_id,
)
from app.security import WEBHOOK_ENDPOINT, secure_response

if TYPE_CHECKING:
    from app.billing.webhooks.service import Receipt, Recorded

log = logging.getLogger(__name__)

# The environ key under which a failed write reaches the Flask route.
FAST_PATH_FAILURE = "billing.webhook_fast_path.failure"
# Set on a delivery handed to the route (the fast path looked at it already).
ROUTED = "billing.webhook_fast_path.routed"

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
Headers = list[tuple[str, str]]


@dataclass(frozen=True)
class FastPathFailure:
    """The write of a delivery the fast path accepted raised: the route answers it."""

    event: Recorded
    error: Exception

    def raise_again(self) -> NoReturn:
        audit.note(stripe_object=self.event.id, detail=self.event.type)  # as `record` had
        raise self.error


@dataclass(frozen=True)
class Delivery:
    """A delivery the fast path accepted: its event, request id and start."""

    event: Recorded
    request_id: str
    started: float  # time.perf_counter() when it arrived


@dataclass(frozen=True)
class Reply:
    """The route's 200 for one status, made once; only the request id differs per delivery."""

    status: str
    headers: Headers  # the request id's value is filled in per delivery
    request_id_at: int
    body: bytes
    asgi_headers: list[tuple[bytes, bytes]]  # the same, as ASGI sends them

    def wsgi_headers_for(self, request_id: str) -> Headers:
        headers = self.headers.copy()
        headers[self.request_id_at] = (REQUEST_ID_HEADER, request_id)
        return headers

    def asgi_headers_for(self, request_id: str) -> list[tuple[bytes, bytes]]:
        headers = self.asgi_headers.copy()
        headers[self.request_id_at] = (_REQUEST_ID_NAME, request_id.encode("latin-1"))
        return headers


_REQUEST_ID_NAME = REQUEST_ID_HEADER.lower().encode("latin-1")


class _Environ:
    """Headers of a WSGI environ, read as werkzeug's request.headers reads them."""

    __slots__ = ("environ",)

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ

    def get(self, key: str) -> str | None:
        value = self.environ.get("HTTP_" + key.upper().replace("-", "_"))
        return value if isinstance(value, str) else None


class WebhookFastPath:
    def __init__(self, app: Flask, wsgi_app: WsgiApp) -> None:
        self.app = app
        self.flask = wsgi_app  # every other request, and every other reply
        rule = next(r for r in app.url_map.iter_rules() if r.endpoint == WEBHOOK_ENDPOINT)
        self.path = rule.rule
        self.route = rule.rule  # the metrics' and the access line's `route`
        self._replies: dict[str, Reply] = {}

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not self.takes(environ):
            return self.flask(environ, start_response)
        return self._deliver(environ, start_response)

    def takes(self, environ: dict[str, Any]) -> bool:
        """A delivery for the fast path (not one it handed to the route already)."""
        return (
            environ.get("PATH_INFO") == self.path
            and environ.get("REQUEST_METHOD") == "POST"
            and ROUTED not in environ
        )

    def _deliver(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        body = read_body(environ, int(self.app.config["WEBHOOK_MAX_BYTES"]))
        if body is None:  # not read: the route refuses it or reads it itself
            return self.flask(environ, start_response)
        delivery = self.check(environ, body, started)
        if delivery is None:
            return self.flask(self.to_route(environ, body), start_response)
        token = bind_request_id(delivery.request_id)
        try:
            with self.app.app_context():
                receipt = webhook_service.record(delivery.event)
        except Exception as exc:
            failed = FastPathFailure(delivery.event, exc)
        else:
            reply = self.answered(delivery, receipt)
            start_response(reply.status, reply.wsgi_headers_for(delivery.request_id))
            return [reply.body]
        finally:
            unbind_request_id(token)
        return self.flask(self.to_route(environ, body, delivery, failed), start_response)

    def check(self, environ: dict[str, Any], body: bytes, started: float) -> Delivery | None:
        """The delivery's event when it is one for the fast path (plainly signed, well formed),
        else None. Reads only the environ's headers and address, writes nothing."""
        signature = environ.get("HTTP_STRIPE_SIGNATURE")
        if not signature:
            return None
        request_id = incoming_request_id(_Environ(environ))
        try:
            event = webhook_service.accepted(
                body,
                signature,
                self.app.config,
                sender_ip=environ.get("REMOTE_ADDR"),
                request_id=request_id,
            )
        except Exception:  # a bug here must not cost a delivery: the route decides
            log.debug("webhook fast path: check failed", exc_info=True)
            return None
        return None if event is None else Delivery(event, request_id, started)

    def answered(self, delivery: Delivery, receipt: Receipt) -> Reply:
        """The route's 200 for a recorded delivery (its headers take the delivery's request
        id), its metrics and access line done: with that id bound, as the route's are."""
        reply = self._reply(receipt.status)
        duration = time.perf_counter() - delivery.started
        metrics.observe_request("POST", self.route, 200, duration)
        if self.route not in QUIET_ROUTES:
            log_event(
                "app.request",
                "request",
                method="POST",
                route=self.route,
                path=self.path,
                status=200,
                duration_ms=round(duration * 1000, 2),
                user_id=None,
                event_id=receipt.event_id,
                event_type=receipt.event_type,
                outcome=receipt.status,
            )
        return reply

    @staticmethod
    def to_route(
        environ: dict[str, Any],
        body: bytes,
        delivery: Delivery | None = None,
        failed: FastPathFailure | None = None,
    ) -> dict[str, Any]:
        """The environ for the Flask route, the body put back: it answers what the fast path
        did not (a failed write included, as its own failure)."""
        environ["wsgi.input"] = io.BytesIO(body)
        environ[ROUTED] = True
        if failed is not None:
            environ[FAST_PATH_FAILURE] = failed
        if delivery is not None:
            # The route's reply and log lines carry the id this attempt's lines had.
            environ["HTTP_X_REQUEST_ID"] = delivery.request_id
        return environ

    def _reply(self, status: str) -> Reply:
        """The route's 200 for `status`, made once by the app's own JSON provider and security
        hook, as Flask makes it (a test compares every reply with the route's)."""
        reply = self._replies.get(status)
        if reply is None:
            with self.app.test_request_context(self.path, method="POST"):
                made = self.app.json.response({"received": True, "status": status})
                response = secure_response(cast(Response, made))
                response.headers[REQUEST_ID_HEADER] = ""
                headers = response.get_wsgi_headers(request.environ).to_wsgi_list()
                reply = Reply(
                    response.status,
                    headers,
                    next(i for i, (name, _) in enumerate(headers) if name == REQUEST_ID_HEADER),
                    response.get_data(),
                    [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in headers],
                )
            self._replies[status] = reply
        return reply


def read_body(environ: dict[str, Any], cap: int) -> bytes | None:
    """The body when it has a plain Content-Length within `cap` (the route's 413 decides on the
    header too, before reading), else None with nothing read."""
    length = environ.get("CONTENT_LENGTH")
    if (
        not length
        or not (length.isascii() and length.isdigit())
        or environ.get("HTTP_TRANSFER_ENCODING")
    ):
        return None
    size = int(length)
    if size > cap:
        return None
    stream = environ["wsgi.input"]
    body: bytes = stream.read(size)
    while len(body) < size:  # a stream may return less than asked; b"" at its end
        more = stream.read(size - len(body))
        if not more:
            break
        body += more
    return body


def install(app: Flask) -> None:
    """Put the fast path in front of the app's WSGI app (inside ProxyFix, installed later, so
    it sees the client's address as the route does). Not when something the fast path would
    skip matters: Sentry's tracing (request signals), or a SERVER_NAME / TRUSTED_HOSTS check."""
    config = app.config
    if float(config.get("SENTRY_TRACES_SAMPLE_RATE") or 0) > 0 and config.get("SENTRY_DSN"):
        return
    if config.get("SERVER_NAME") or config.get("TRUSTED_HOSTS"):
        return
    fast_path = WebhookFastPath(app, app.wsgi_app)
    app.extensions["webhook_fast_path"] = fast_path  # the asyncio server's too (app/asgi.py)
    app.wsgi_app = fast_path  # type: ignore[method-assign]
