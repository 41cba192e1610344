"""What the health and readiness probes check: the database answers, its schema is at this code's
migration head, and (detail only: the limits fail open) whether Redis answers. The routes in
``app/api/meta.py`` only shape these answers."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from flask import Flask, current_app
from sqlalchemy import Engine, create_engine, text

from app.billing.webhooks.backlog import Backlog, backlog
from app.config import probe_engine_options
from app.db import end_read, rollback_quietly, watch_connections
from app.extensions import db, rate_limits

log = logging.getLogger(__name__)


def database_answers() -> bool:
    """One trivial statement; False when the database is unreachable."""
    try:
        db.session.execute(text("SELECT 1"))
        end_read()
    except Exception:
        rollback_quietly()
        return False
    return True


@dataclass(frozen=True)
class Readiness:
    database: str  # "ok" | "unreachable" | "timeout"
    pending_heads: list[str] = field(default_factory=list)
    redis: str | None = None  # None: no Redis configured; else ok | refused | timeout | error
    webhooks: Backlog | None = None  # detail only: a lagging applier must not take us out

    @property
    def ready(self) -> bool:
        return self.database == "ok" and not self.pending_heads


class ReadinessProbe:
    """Runs the database check in a thread of its own and answers by READYZ_TIMEOUT_SECONDS
    whatever the database does, so a load balancer can take the instance out instead of
    waiting with it. One check at a time: a probe that comes while one is still stuck waits
    on that one instead of starting another.

    On PostgreSQL the probe's connections report to the request connections' watchdog: with
    no request traffic the probe is the only one to meet a frozen database, and its stalled
    connect marks it frozen (DB_STALL_SECONDS + a ping, 1 s) so later probes, and requests,
    are answered at once until the database answers a ping again."""

    def __init__(self, app: Flask) -> None:
        # The app engine's URL, not the configured one: Flask-SQLAlchemy puts a relative SQLite
        # path in the instance folder (make run's default), where the probe must look too.
        with app.app_context():
            url = db.engine.url
        self._engine: Engine = create_engine(url, **probe_engine_options(app.config))
        watchdog = app.extensions.get("db_watchdog")
        if watchdog is not None:
            watch_connections(self._engine, watchdog)
        self._directory: str = app.extensions["migrate"].directory
        self._timeout = float(app.config["READYZ_TIMEOUT_SECONDS"])
        self._lock = threading.Lock()
        self._running: _Check | None = None

    def database(self) -> tuple[str, list[str], Backlog | None]:
        watchdog = current_app.extensions.get("db_watchdog")
        if watchdog is not None and watchdog.frozen:
            # The request connections' watchdog already knows: answer now, don't wait again.
            return "timeout", [], None
        with self._lock:
            check = self._running
            if check is None or check.finished.is_set():
                check = self._running = _Check(self._directory, self._engine)
        if not check.finished.wait(self._timeout):
            log.warning("readiness: database did not answer within %.1f s", self._timeout)
            return "timeout", [], None
        if check.error is not None:
            if watchdog is not None and watchdog.frozen:
                return "timeout", [], None  # this probe's stall showed the freeze; logged once
            log.warning("readiness: database unreachable (%s)", type(check.error).__name__)
            return "unreachable", [], None
        return "ok", check.pending, check.backlog


class _Check:
    def __init__(self, directory: str, engine: Engine) -> None:
        self.finished = threading.Event()
        self.pending: list[str] = []
        self.backlog: Backlog | None = None
        self.error: BaseException | None = None
        # A daemon thread: a check stuck past its timeouts never holds up the process's exit.
        threading.Thread(
            target=self._run, args=(directory, engine), name="readyz", daemon=True
        ).start()

    def _run(self, directory: str, engine: Engine) -> None:
        try:
            self.pending = pending_migrations(directory, engine)
        except Exception as exc:
            self.error = exc
            self.finished.set()
            return
        try:
            if not self.pending:  # the table is as this code expects
                with engine.connect() as connection:
                    self.backlog = backlog(connection)
        except Exception:  # the answer stands without the detail
            log.warning("readiness: could not read the webhook backlog", exc_info=True)
        finally:
            self.finished.set()


_probe_lock = threading.Lock()


def _probe(app: Flask) -> ReadinessProbe:
    probe: ReadinessProbe | None = app.extensions.get("readiness_probe")
    if probe is None:
        with _probe_lock:
            probe = app.extensions.get("readiness_probe")
            if probe is None:
                probe = app.extensions["readiness_probe"] = ReadinessProbe(app)
    return probe


def readiness() -> Readiness:
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    database, pending, webhooks = _probe(app).database()
    redis = rate_limits.storage_state() if app.config.get("REDIS_URL") else None
    return Readiness(database=database, pending_heads=pending, redis=redis, webhooks=webhooks)


def pending_migrations(migrations_directory: str, engine: Engine | None = None) -> list[str]:
    """The Alembic heads this code expects that the database is not at (empty: up to date),
    read through `engine` (default: the app's). Raises when the database is unreachable."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    expected = set(ScriptDirectory(migrations_directory).get_heads())
    with (engine or db.engine).connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    return sorted(expected - current)
