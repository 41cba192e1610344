"""The :class:`Sandbox`: state, switches, the WSGI app and its server thread."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from . import billing, events
from .api import handle_api
from .context import Config, Ctx
from .control import handle_control
from .hosted import handle_hosted
from .store import Store
from .timeutil import wall_now
from .webhooks import Dispatcher

StartResponse = Callable[..., Any]

log = logging.getLogger("stripe_sandbox")


class _QuietHandler(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        pass


@dataclass
class Faults:
    """Network faults on the answers to API requests whose path starts with ``path`` (or is
    exactly it, when ``path`` ends with ``$``: a list, not its items), for
    fault tests: ``answer_delay`` seconds between doing the work and answering (a slow or
    late answer), plus up to ``answer_jitter`` more seconds drawn uniformly per request (real
    Stripe's spread: 0.3 + 0.2 answers in 0.3-0.5 s), ``hold_answers`` does the work and
    holds the answers while it is on (a late answer whose moment the test picks),
    ``blackhole`` holds requests unanswered and undone while it is on (a network that eats
    packets), ``drop_answers`` does the next N requests' work and then closes the connection
    without an answer (an answer lost on its way back)."""

    path: str = "/v1/"
    answer_delay: float = 0.0
    answer_jitter: float = 0.0
    blackhole: bool = False
    hold_answers: bool = False
    drop_answers: int = 0

    def covers(self, path: str) -> bool:
        if self.path.endswith("$"):
            return path == self.path[:-1]
        return path.startswith(self.path)

    @classmethod
    def names(cls) -> dict[str, str]:
        return {f"fault_{f.name}": f.name for f in fields(cls)}


def _drop_connection(environ: dict[str, Any]) -> None:
    connection = environ.get("werkzeug.socket")
    if isinstance(connection, socket.socket):
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)


class Sandbox:
    """A stateful local Stripe. See ``stripe_sandbox/README.md``."""

    def __init__(self, state_path: str | None = None) -> None:
        self.config = Config()
        self.faults = Faults()
        self._faults_lock = threading.Lock()
        self.store = Store(state_path)
        self.dispatcher = Dispatcher(self.config, on_success=self._delivered)
        self._log: list[dict[str, Any]] = []
        self._log_lock = threading.Lock()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.url: str | None = None
        # The address browsers use for hosted pages when it differs from the one API clients
        # use (in Docker Compose the API calls http://sandbox:12111, browsers 127.0.0.1:12111).
        self.public_url: str | None = None
        # switch values that reset() returns to (the CLI may change them)
        self.defaults: dict[str, Any] = {}

    # ----------------------------------------------------------- WSGI
    def wsgi_app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        faults = self.faults
        if not faults.covers(request.path):
            return self.handle(request)(environ, start_response)
        if faults.blackhole:
            while self.faults.blackhole:  # never done, never answered: the packets were lost
                time.sleep(0.02)
            _drop_connection(environ)
            return Response(status=504)(environ, start_response)
        response = self.handle(request)
        if faults.answer_delay or faults.answer_jitter:
            # Not a secret: a test's spread of answer times.
            time.sleep(faults.answer_delay + random.uniform(0, faults.answer_jitter))  # nosec B311
        while self.faults.hold_answers and faults.hold_answers:
            time.sleep(0.02)
        with self._faults_lock:
            drop = self.faults.drop_answers > 0
            if drop:
                self.faults.drop_answers -= 1
        if drop:
            _drop_connection(environ)  # the work is done; the answer is lost
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        path = request.path
        if path == "/v1" or path.startswith("/v1/"):
            return handle_api(self, request)
        if path.startswith("/_sandbox"):
            if not _is_loopback(request.remote_addr):  # no auth on these: local callers only
                return Response(
                    json.dumps({"error": {"message": "control endpoints are loopback-only"}}),
                    status=403,
                    content_type="application/json",
                )
            return handle_control(self, request)
        if path.startswith(("/checkout/", "/portal/", "/invoice/")):
            return handle_hosted(self, request)
        if path == "/":
            return Response(
                json.dumps({"object": "stripe_sandbox", "api": "/v1", "control": "/_sandbox"}),
                content_type="application/json",
            )
        return Response(
            json.dumps(
                {"error": {"type": "invalid_request_error", "message": f"Unrecognized URL {path}"}}
            ),
            status=404,
            content_type="application/json",
        )

    # ------------------------------------------------------- serving
    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on a daemon thread; returns the base URL (also ``self.url``)."""
        if self._server is not None:
            assert self.url is not None
            return self.url
        self._server = make_server(
            host, port, self.wsgi_app, threaded=True, request_handler=_QuietHandler
        )
        self._server.daemon_threads = True  # type: ignore[attr-defined]
        real_port = self._server.socket.getsockname()[1]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        self.url = f"http://{shown}:{real_port}"
        # stop() waits for serve_forever's next poll: 0.05 s rather than 0.5 s per stop (tests
        # start and stop sandboxes by the dozen).
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="stripe-sandbox-server",
            daemon=True,
        )
        self._thread.start()
        return self.url

    def serve_forever(self, host: str = "127.0.0.1", port: int = 12111) -> None:
        server = make_server(
            host, port, self.wsgi_app, threaded=True, request_handler=_QuietHandler
        )
        self._server = server
        self.url = f"http://{host}:{server.socket.getsockname()[1]}"
        server.serve_forever()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # ------------------------------------------------------- control
    def reset(self) -> None:
        with self.store.lock:
            self.store.clear()
            self.dispatcher.reset()
            self.config.reset()
            self.faults = Faults()
            self.configure(**self.defaults)
            self.clear_requests()
            self.store.save()

    def configure(self, **kwargs: Any) -> None:
        """Set switches: the ``Config`` ones, and ``fault_path``, ``fault_answer_delay``,
        ``fault_answer_jitter``,
        ``fault_blackhole``, ``fault_hold_answers``, ``fault_drop_answers`` (see
        :class:`Faults`)."""
        names = Faults.names()
        faults = {names[key]: kwargs.pop(key) for key in list(kwargs) if key in names}
        if faults:
            current = asdict(self.faults)
            for name, value in faults.items():
                if isinstance(current[name], bool) and isinstance(value, str):
                    value = value.strip().lower() in ("1", "true", "yes", "on")
                current[name] = type(current[name])(value)
            if min(current["answer_delay"], current["answer_jitter"], current["drop_answers"]) < 0:
                raise ValueError(
                    "fault_answer_delay, fault_answer_jitter and fault_drop_answers must be >= 0"
                )
            self.faults = Faults(**current)
        self.config.update(**kwargs)

    def wait_for_webhooks(self, timeout: float = 10.0) -> bool:
        return self.dispatcher.wait_idle(timeout)

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self._log_lock:
            return [dict(r) for r in self._log]

    def clear_requests(self) -> None:
        with self._log_lock:
            self._log.clear()

    def log_request(self, entry: dict[str, Any]) -> None:
        with self._log_lock:
            self._log.append(entry)

    @property
    def deliveries(self) -> list[dict[str, Any]]:
        return self.dispatcher.deliveries()

    # ------------------------------------------------------ internals
    def base_url_for(self, request: Request) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        return request.host_url.rstrip("/") if request.host else (self.url or "")

    def run_due(self, base_url: str) -> None:
        """Process what fell due in wall time (renewals, expiries) before a request."""
        with self.store.lock:
            ctx = Ctx(self.store, self.config, base_url)
            self.store.begin()
            try:
                billing.tick_wall(ctx, wall_now())
                self.store.commit()
            except Exception:  # never let background work break every request
                log.exception("stripe_sandbox: processing due work failed; rolled back")
                self.store.rollback()
                ctx.events.clear()
            finally:
                self.publish(ctx)

    def publish(self, ctx: Ctx) -> None:
        """Hand an operation's events to the webhook dispatcher."""
        if not ctx.events:
            return
        with self.store.lock:
            endpoints = self.store.all("webhook_endpoint")
            batch = [
                (ev, [e for e in endpoints if events.endpoint_matches(e, ev["type"])])
                for ev in ctx.events
            ]
        ctx.events = []
        self.dispatcher.enqueue([(ev, eps) for ev, eps in batch if eps])

    def _delivered(self, event_id: str) -> None:
        with self.store.lock:
            event = self.store.get("event", event_id)
            if event is not None and event["pending_webhooks"] > 0:
                event["pending_webhooks"] -= 1


def _is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
