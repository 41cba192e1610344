"""Engine tuning and small SQL helpers that differ between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import Engine, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.extensions import db


def configure_engine(app: Flask) -> None:
    """SQLite: WAL, a busy timeout, and BEGIN IMMEDIATE so concurrent writers queue up
    instead of failing with "database is locked" when a reader upgrades to a writer."""
    with app.app_context():
        engine = db.engine
    if engine.dialect.name == "sqlite":
        _make_sqlite_transactions_immediate(engine)


def _make_sqlite_transactions_immediate(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy's BEGIN below be the only one
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.execute("PRAGMA foreign_keys = ON")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def insert_or_ignore(model: type[Any], values: dict[str, Any]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True when this call inserted the row.

    Decided by RETURNING, not rowcount (psycopg 3 reports -1 for this statement). On PostgreSQL
    a concurrent insert of the same key waits for the other transaction, so exactly one caller
    sees True."""
    dialect = db.session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    primary_key = list(model.__table__.primary_key.columns)
    statement = insert(model).values(**values).on_conflict_do_nothing().returning(*primary_key)
    return db.session.execute(statement).first() is not None
