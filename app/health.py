"""What the health and readiness probes check: the database answers, its schema is at this code's
migration head. The routes in ``app/api/meta.py`` only shape these answers."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import text

from app.db import end_read, pending_migrations, rollback_quietly
from app.extensions import db

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
    database: str  # "ok" | "unreachable"
    pending_heads: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return self.database == "ok" and not self.pending_heads


def readiness() -> Readiness:
    try:
        pending = pending_migrations(current_app.extensions["migrate"].directory)
    except Exception as exc:
        rollback_quietly()
        log.warning("readiness: database unreachable (%s)", type(exc).__name__)
        return Readiness(database="unreachable")
    return Readiness(database="ok", pending_heads=pending)
