"""More instances of the app, each with its own engine and port, as separate gunicorn workers
or hosts would run: for concurrency (two instances, one database) and for faults (an instance
whose database or Stripe sits behind a TCP proxy the test cuts)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from flask import Flask
from sqlalchemy.engine import make_url
from werkzeug.serving import BaseWSGIServer, make_server

from app import create_app
from app.extensions import db

COPIED_SETTINGS = (
    "DATABASE_URL",
    "STRIPE_SECRET_KEY",
    "STRIPE_API_BASE",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_PRICE_ID_MONTHLY",
    "STRIPE_PRICE_ID_YEARLY",
    "FRONTEND_URLS",
    "AUTH_JWT_SECRET",
)


@dataclass
class Instance:
    app: Flask
    url: str
    server: BaseWSGIServer

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/api/webhooks/stripe"


class PooledWSGIServer(BaseWSGIServer):
    """A fixed number of request threads, as a gunicorn gthread worker has (werkzeug's threaded
    server starts a thread per request, so it can't run out): requests beyond them wait."""

    def __init__(self, host: str, port: int, app: Flask, threads: int) -> None:
        super().__init__(host, port, app)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="request")

    def process_request(self, request: Any, client_address: Any) -> None:
        self._pool.submit(self._serve, request, client_address)

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)


def proxied_database_url(url: str, port: int) -> str:
    """The same database reached through 127.0.0.1:`port` (sslmode off so a proxy can read
    the SQL it forwards)."""
    parsed = make_url(url).set(host="127.0.0.1", port=port)
    parsed = parsed.update_query_dict({"sslmode": "disable"})
    return parsed.render_as_string(hide_password=False)


@contextmanager
def serve_instance(base: Flask, threads: int | None = None, **overrides: Any) -> Iterator[Instance]:
    """An instance of the app with `overrides` on `base`'s settings; `threads` bounds its
    request threads (default: one thread per request)."""
    config: dict[str, Any] = {name: base.config[name] for name in COPIED_SETTINGS}
    config.update(
        APP_ENV="testing",
        TESTING=True,
        STRIPE_MAX_NETWORK_RETRIES=0,
        LOG_LEVEL="CRITICAL",
        RATE_LIMIT_ENABLED=False,
    )
    config.update(overrides)
    application = create_app(config)
    server: BaseWSGIServer = (
        PooledWSGIServer("127.0.0.1", 0, application, threads)
        if threads
        else make_server("127.0.0.1", 0, application, threaded=True)
    )
    # shutdown() waits for serve_forever's next poll: 0.05 s, not the default 0.5 s per instance.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield Instance(application, f"http://127.0.0.1:{server.server_port}", server)
    finally:
        server.shutdown()
        server.server_close()
        application.extensions["webhook_applier"].stop()
        with application.app_context():
            db.session.remove()
            db.engine.dispose()
