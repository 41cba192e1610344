"""The applier's end of a batch in SQL: its events marked processed and their audit entries.

On PostgreSQL both are one statement whose text never changes (the UPDATE in a WITH, the
INSERT unnesting one array per column), so psycopg prepares it once per connection and a batch
binds a few arrays: one round trip. Before, an `IN (...)` UPDATE and a multi-row INSERT were
compiled by SQLAlchemy anew for every batch (a VALUES list per size): about half the applier
process's CPU under the peer benchmark's load (docs/performance.md, "applier").
SQLite runs the two statements of `store` in the session's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from app import audit
from app.billing.webhooks import store
from app.db import dialect_name
from app.extensions import db

# A data-modifying WITH always runs to completion, read or not (PostgreSQL's documentation).
_FINISH_POSTGRESQL = (
    "WITH marked AS (UPDATE webhook_events SET processed = true, processed_at = %(now)s,"
    " attempts = attempts + 1, error = NULL, next_attempt_at = NULL, parked_at = NULL"
    " WHERE id = ANY(%(ids)b::varchar[]))"
    " INSERT INTO audit_log (at, action, outcome, user_id, ip, request_id, stripe_object, detail)"
    " SELECT %(at)s, e.action, 'ok', %(user_id)s, %(ip)s, %(request_id)s, e.id, e.type"
    " FROM unnest(%(ids)b::varchar[], %(actions)b::varchar[], %(types)b::varchar[])"
    " WITH ORDINALITY AS e(id, action, type, n) ORDER BY e.n"
)


def finish_batch(done: Sequence[tuple[str, str, str]], now: datetime) -> None:
    """Mark these events processed at `now` and audit each: (event id, type, outcome) with
    outcome `applied` or `ignored` (the entry's action is `webhook.<outcome>`)."""
    if not done:
        return
    if dialect_name() != "postgresql":
        store.mark_processed([event_id for event_id, _type, _outcome in done], now)
        store.write_audit_entries(
            [
                audit.entry_values(f"webhook.{outcome}", "ok", stripe_object=i, detail=kind)
                for i, kind, outcome in done
            ]
        )
        return
    # Who and where are the applier's, the same for every entry (none, outside a request).
    common = audit.entry_values("webhook.applied", "ok")
    db.session.connection().exec_driver_sql(
        _FINISH_POSTGRESQL,
        {
            "now": now,
            "at": common["at"],
            "user_id": common["user_id"],
            "ip": common["ip"],
            "request_id": common["request_id"],
            "ids": [event_id for event_id, _type, _outcome in done],
            "actions": [f"webhook.{outcome}" for _id, _type, outcome in done],
            "types": [kind for _id, kind, _outcome in done],
        },
    )
