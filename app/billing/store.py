"""Small state shared by every worker, kept in `sync_state` (key -> text): the cached plans
table, when the catalog last changed, and sync's cursor in Stripe's event list."""

from __future__ import annotations

from sqlalchemy import select, update

from app.db import insert_or_ignore
from app.extensions import db
from app.models import SyncState


def read_states(*keys: str) -> dict[str, str]:
    """The stored values of `keys` (missing ones are left out)."""
    rows = db.session.execute(
        select(SyncState.key, SyncState.value).where(SyncState.key.in_(keys))
    ).all()
    return {key: value for key, value in rows}


def write_state(key: str, value: str) -> None:
    """Set `key` (created if missing), in the caller's transaction."""
    insert_or_ignore(SyncState, {"key": key, "value": value})
    db.session.execute(update(SyncState).where(SyncState.key == key).values(value=value))
