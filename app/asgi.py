"""The app under gunicorn's asyncio worker (app/web_worker.py `AsgiWorker`, production's
default): a webhook delivery's common 200 is made on the event loop, every other request by
the Flask app in a thread pool.

Why: on gthread each delivery paid for gunicorn's threaded HTTP handling, a WSGI environ and
a thread hand-off before the fast path's ~0.1 ms of work, and the group commit woke one thread
per delivery (docs/performance.md, issue 19's eighth and ninth passes). Here a delivery is
parsed by the asyncio worker, checked by the webhook fast path's own `check` (the same code as
on gthread), and waits for its event's commit as a future: one thread hand-off per batch, not
per delivery. Anything the fast path does not answer (another route, an unusual or bad
delivery, a failed write) goes to the same WSGI chain (ProxyFix, the fast path, Flask) as
before, in the pool, with the body already read.

The pool has WEB_THREADS threads, as gthread had per worker; a request's body is read whole
before Flask sees it, up to its cap (WEBHOOK_MAX_BYTES for the webhook, MAX_CONTENT_LENGTH
otherwise): a longer one is not read at all, and Flask answers 413 from its Content-Length. The
app's replies are small JSON documents and pages, sent in one piece.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from flask import Flask

from app import security
from app.api.webhook_fast_path import FastPathFailure, WebhookFastPath, read_body
from app.billing.webhooks import service as webhook_service
from app.billing.webhooks.service import Receipt, Recorded
from app.observability.request_id import bind_request_id, unbind_request_id
from app.security import WEBHOOK_ENDPOINT

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]

# Only if the WSGI chain itself raised (Flask answers its own errors): the app's error shape.
_INTERNAL_ERROR: Answer = (
    500,
    [(b"content-type", b"application/json")],
    b'{"error":{"code":"internal_error","message":"Internal server error."}}\n',
)


# Passes of the event loop before the writer takes a batch: deliveries whose bytes are here
# already are parsed and checked in them (a delivery takes two or three passes from its bytes
# to `record`) and join this batch rather than the next. Not a timer: with nothing else in
# flight the write starts a few microseconds later. Under bench-peer's load the batches had
# been 2-6 events, each paying a hand-off, an app context and a statement: with 8 passes
# 1.20x the deliveries, workers' CPU 0.37 vs 0.46 ms and PostgreSQL's 0.15 vs 0.21 ms per
# event, p99 14.5 vs 18.2 ms (same-run A/B; docs/performance.md, tenth pass).
GATHER_PASSES = 8


class AsyncInbox:
    """app/billing/webhooks/inbox.py's group commit on the event loop: a delivery adds its event
    and waits on a future; the writer takes what is waiting after a few passes of the loop
    (GATHER_PASSES) and writes it in the writer thread, by the inbox's own write
    (`record_batch`); the deliveries that arrive meanwhile wait for the next batch. Each future
    is resolved only after the commit that holds its event."""

    def __init__(self, app: Flask, max_batch: int) -> None:
        self.app = app
        self.max_batch = max_batch
        self._waiting: list[tuple[Recorded, asyncio.Future[bool]]] = []
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="webhook-writer")
        self._task: asyncio.Task[None] | None = None

    async def record(self, event: Recorded) -> bool:
        """True when `event` was new, False for a redelivery, once a commit holds it. Raises
        what the write raised (nothing is acknowledged then)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()
        self._waiting.append((event, done))
        if self._task is None:
            self._task = loop.create_task(self._write_waiting())
        return await done

    async def _write_waiting(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                for _ in range(GATHER_PASSES):
                    await asyncio.sleep(0)
                batch = self._waiting[: self.max_batch]
                del self._waiting[: self.max_batch]
                events = [event for event, _done in batch]
                try:
                    inserted = await loop.run_in_executor(self._writer, self._write, events)
                except Exception as exc:  # every delivery of the batch answers the failure
                    for _event, done in batch:
                        if not done.done():  # its delivery may have gone (client away)
                            done.set_exception(exc)
                    continue
                for event, done in batch:
                    if not done.done():
                        done.set_result(event.id in inserted)
                    inserted.discard(event.id)  # a second copy in the batch is a duplicate
        finally:
            self._task = None

    def _write(self, events: Sequence[Recorded]) -> set[str]:
        with self.app.app_context():
            return webhook_service.record_batch(events)


class AsgiServer:
    """The ASGI app gunicorn's asyncio worker serves (one per worker process)."""

    def __init__(self, app: Flask, threads: int) -> None:
        self.flask = app
        self.wsgi = app.wsgi_app  # the whole chain: ProxyFix, the fast path, Flask
        self.pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="flask")
        config = app.config
        # The body caps app/security.py's guard applies (the app refuses what is over them).
        self.body_cap = int(config.get("MAX_CONTENT_LENGTH") or 64 * 1024)
        self.webhook_cap = int(config.get("WEBHOOK_MAX_BYTES") or self.body_cap)
        self.webhook_path = next(
            (rule.rule for rule in app.url_map.iter_rules() if rule.endpoint == WEBHOOK_ENDPOINT),
            None,
        )
        self.fast_path: WebhookFastPath | None = app.extensions.get("webhook_fast_path")
        self.inbox: AsyncInbox | None = None
        self.behind_proxies: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        if self.fast_path is not None:
            self.inbox = AsyncInbox(app, int(config["WEBHOOK_INGEST_MAX_BATCH"]))
            proxies = security.trusted_proxies(app)
            if proxies > 0:  # the fast path's check reads the address as ProxyFix makes it
                fixed = security.behind_proxies(_environ_itself, proxies)
                self.behind_proxies = lambda environ: cast(Any, fixed)(environ, None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await lifespan(receive, send)
        elif kind == "websocket":  # none served: refused at the handshake
            await receive()
            await send({"type": "websocket.close", "code": 1008})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        environ = wsgi_environ(scope)
        fast_path = self.fast_path
        takes = fast_path is not None and fast_path.takes(environ)
        webhook = environ["PATH_INFO"] == self.webhook_path
        body = await _read_whole(receive, environ, self.webhook_cap if webhook else self.body_cap)
        if body is None:  # the client went away mid-body: no one to answer
            return
        environ["wsgi.input"] = io.BytesIO(body)
        reply = await self._deliver(environ, started) if takes else None
        if reply is None:
            loop = asyncio.get_running_loop()
            reply = await loop.run_in_executor(self.pool, self._call_wsgi, environ)
        status, headers, content = reply
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def _deliver(self, environ: dict[str, Any], started: float) -> Answer | None:
        """The fast path's 200 for a delivery it takes (as WebhookFastPath._deliver makes it,
        the write awaited here); None, with the environ ready for the route, otherwise."""
        fast_path = cast(WebhookFastPath, self.fast_path)
        inbox = cast(AsyncInbox, self.inbox)
        body = read_body(environ, self.webhook_cap)
        if body is None:  # not read: the route refuses it or reads it itself
            return None
        seen = self.behind_proxies(dict(environ)) if self.behind_proxies else environ
        delivery = fast_path.check(seen, body, started)
        if delivery is None:
            fast_path.to_route(environ, body)
            return None
        token = bind_request_id(delivery.request_id)
        try:
            try:
                new = await inbox.record(delivery.event)
            except Exception as exc:
                failed = FastPathFailure(delivery.event, exc)
                fast_path.to_route(environ, body, delivery, failed)
                return None
            reply = fast_path.answered(delivery, Receipt.of(delivery.event, new))
        finally:
            unbind_request_id(token)
        return int(reply.status[:3]), reply.asgi_headers_for(delivery.request_id), reply.body

    def _call_wsgi(self, environ: dict[str, Any]) -> Answer:
        """Run the WSGI chain for one request in a pool thread; its reply, whole."""
        started: list[Any] = []

        def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            if exc_info is not None and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [status, headers]
            return _no_write

        try:
            chunks = self.wsgi(environ, start_response)
            try:
                content = b"".join(chunks)
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
        except Exception:
            log.exception("the WSGI app raised")
            return _INTERNAL_ERROR
        status, headers = started
        return int(status[:3]), _asgi_headers(headers), content


def wsgi_environ(scope: Scope) -> dict[str, Any]:
    """The WSGI environ of an ASGI HTTP request (PEP 3333's strings: latin-1 for bytes); its
    body is set once read."""
    root = scope.get("root_path", "")
    path = scope["path"]
    if root and path.startswith(root):
        path = path[len(root) :]
    server = scope.get("server") or ("localhost", 80)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": root.encode().decode("latin-1"),
        "PATH_INFO": path.encode().decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] or 0),
        "SERVER_PROTOCOL": "HTTP/" + scope.get("http_version", "1.1"),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }
    client = scope.get("client")
    if client:
        environ["REMOTE_ADDR"] = str(client[0])
        environ["REMOTE_PORT"] = str(client[1])
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        if name not in ("CONTENT_LENGTH", "CONTENT_TYPE"):
            name = "HTTP_" + name
        value = raw_value.decode("latin-1")
        environ[name] = f"{environ[name]},{value}" if name in environ else value
    return environ


async def _read_whole(receive: Receive, environ: dict[str, Any], cap: int) -> bytes | None:
    """The request's body, read whole when within `cap`. A declared length over `cap` is not
    read (the app refuses it from the header); a body without one (chunked) is read to `cap` +
    1 bytes at most and then declared as a plain Content-Length, so the app refuses a longer
    one the same way. None when the client went away first."""
    declared = environ.get("CONTENT_LENGTH")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()) or int(declared) > cap:
            return b""
        limit = int(declared)
    else:
        limit = cap + 1
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    if declared is None:  # now a body of known length, like any other
        body = body[:limit]
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
    return body


def _asgi_headers(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]


def _environ_itself(environ: dict[str, Any], start_response: Any) -> Any:
    return environ


def _no_write(data: bytes) -> None:
    raise RuntimeError("write() is not supported: return the body")


async def lifespan(receive: Receive, send: Send) -> None:
    """The lifespan protocol, answered: nothing to start or stop."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
