"""More instances of the app, each with its own engine and port, as separate gunicorn workers
or hosts would run: for concurrency (two instances, one database) and for faults (an instance
whose database or Stripe sits behind a TCP proxy the test cuts)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
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


def proxied_database_url(url: str, port: int) -> str:
    """The same database reached through 127.0.0.1:`port` (sslmode off so a proxy can read
    the SQL it forwards)."""
    parsed = make_url(url).set(host="127.0.0.1", port=port)
    parsed = parsed.update_query_dict({"sslmode": "disable"})
    return parsed.render_as_string(hide_password=False)


@contextmanager
def serve_instance(base: Flask, **overrides: Any) -> Iterator[Instance]:
    config: dict[str, Any] = {name: base.config[name] for name in COPIED_SETTINGS}
    config.update(
        APP_ENV="testing",
        TESTING=True,
        STRIPE_MAX_NETWORK_RETRIES=0,
        LOG_LEVEL="CRITICAL",
    )
    config.update(overrides)
    application = create_app(config)
    server = make_server("127.0.0.1", 0, application, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Instance(application, f"http://127.0.0.1:{server.server_port}", server)
    finally:
        server.shutdown()
        with application.app_context():
            db.session.remove()
            db.engine.dispose()
