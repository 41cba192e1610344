"""Transaction boundaries, engine tuning, and the SQL that differs between SQLite and PostgreSQL.

Transactions have one owner: `unit_of_work()` commits a block's writes together or rolls all of
them back; `outside_transaction()` ends the open transaction before a slow call (Stripe), and
the gateway refuses to call Stripe while one is open (`transaction_open`). Nothing else in the
app commits or rolls back."""

from __future__ import annotations

import fcntl
import functools
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar, cast

from flask import Flask, current_app, has_app_context
from sqlalchemy import CursorResult, Dialect, Engine, Executable, event, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.types import ARRAY

from app.extensions import db

if TYPE_CHECKING:
    from app.db_watchdog import Watchdog

log = logging.getLogger(__name__)

T = TypeVar("T")


@contextmanager
def unit_of_work() -> Iterator[None]:
    """One transaction: committed when the block ends, rolled back if it raises."""
    try:
        yield
        db.session.commit()
    except BaseException:
        rollback_quietly()
        raise


@contextmanager
def single_statement_writes() -> Iterator[Connection | None]:
    """A unit of work whose statements are each complete on their own (PostgreSQL: autocommit,
    each statement committed by the server before it returns), so a write of one statement costs
    one round trip instead of BEGIN, the statement and COMMIT (a settled user's consume,
    docs/performance.md). Yields the connection to run them on (`execute_prebuilt`'s
    `connection`): on PostgreSQL, with no transaction open and nothing pending in the session,
    a pooled connection of its own in autocommit (`autocommit_connection`; the session is not
    involved at all: no checkout, commit or close of its own). Elsewhere (SQLite, or a
    transaction already open) None: an ordinary unit of work in the session."""
    if dialect_name() == "postgresql" and _session_idle():
        with autocommit_connection() as connection:
            yield connection
        return
    with unit_of_work():
        yield None


def _session_idle() -> bool:
    """No transaction open and nothing pending; a request that never used its session has
    none yet, and none is made here (its teardown then has nothing to close)."""
    registry = db.session.registry
    if not registry.has():
        return True
    session = registry()
    return not (session.in_transaction() or session.new or session.dirty or session.deleted)


@contextmanager
def autocommit_connection() -> Iterator[Connection]:
    """A pooled connection of its own in autocommit, for single statements (PostgreSQL: one
    round trip each, no BEGIN nor COMMIT/ROLLBACK). The driver connection's autocommit
    is switched on and back off directly: SQLAlchemy's `isolation_level` execution option
    does the same through its connection-characteristics machinery (set on checkout, reset
    on return), which cost a read more CPU than the statement itself. A connection that
    can't be switched back is dropped, never returned to the pool in autocommit."""
    with db.engine.connect() as connection:
        driver = connection.connection.driver_connection
        driver.autocommit = True  # type: ignore[union-attr]
        try:
            yield connection
        finally:
            if not connection.invalidated:
                try:
                    driver.autocommit = False  # type: ignore[union-attr]
                except Exception:
                    connection.invalidate()


def commit_if_written() -> None:
    """Commit if the ORM holds writes. A transaction that only read is left to the end of the
    request (ending it now would expire the rows the reply is about to show)."""
    if db.session.new or db.session.dirty or db.session.deleted:
        db.session.commit()


def outside_transaction() -> None:
    """Commit what the open transaction wrote and hold none (nor SQLite's write lock, nor a
    PostgreSQL row lock) across what comes next: a Stripe call, or a view that must not undo
    what was kept (a user created at sign-in)."""
    db.session.commit()


def end_read() -> None:
    """End a transaction that only read (nothing to commit)."""
    rollback_quietly()


def rollback_quietly() -> None:
    # With the database gone the rollback fails too; the server discards the transaction
    # anyway, and the original error is the one worth reporting.
    try:
        db.session.rollback()
    except Exception:
        log.debug("rollback failed", exc_info=True)


def transaction_open() -> bool:
    """True inside a request or command whose session holds an open transaction."""
    return has_app_context() and db.session().in_transaction()


def retry_on_disconnect(work: Callable[[], T]) -> T:
    """Run `work` (a whole unit of work) again once if the database connection turned out to
    be dead (a server restart, an idle connection closed): instead of pinging before every
    checkout, the first statement finds out, the pool drops connections as old as that one,
    and the retry runs on a fresh one. Safe because the failed attempt was rolled back."""
    try:
        return work()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        rollback_quietly()
        outage = current_app.extensions.get("db_outage") if has_app_context() else None
        # A connection the watchdog abandoned is part of an outage already logged.
        level = logging.DEBUG if outage is not None and outage.ongoing else logging.WARNING
        log.log(level, "database connection was dead; retrying on a new one")
        return work()


# PostgreSQL's SQLSTATEs for "two transactions waited on each other" (deadlock_detected) and
# "your snapshot lost a race" (serialization_failure): the work was rolled back whole and can
# simply run again; neither says anything about the database being down.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def is_lock_conflict(exc: BaseException) -> bool:
    """True for a deadlock or serialization failure (retry the transaction)."""
    original = getattr(exc, "orig", None)
    return getattr(original, "sqlstate", None) in RETRYABLE_SQLSTATES


class LockConflict(Exception):
    """A transaction lost a lock race twice in a row: the caller should try again shortly
    (503 `retry`), never reported as the database being unavailable."""


def retry_on_deadlock(work: Callable[[], T]) -> T:
    """Run `work` (a whole unit of work) again once if PostgreSQL picked it as a deadlock's
    victim (or a serialization failure): the other transaction has finished by then. A second
    loss raises LockConflict."""
    try:
        return work()
    except DBAPIError as exc:
        if not is_lock_conflict(exc):
            raise
        rollback_quietly()
        log.warning("lock conflict (%s); retrying once", getattr(exc.orig, "sqlstate", "?"))
    try:
        return work()
    except DBAPIError as exc:
        if not is_lock_conflict(exc):
            raise
        rollback_quietly()
        raise LockConflict("lost a lock race twice") from exc


def configure_engine(app: Flask) -> None:
    """PostgreSQL: a client-side bound on waiting for a database that stopped moving.
    SQLite: WAL, a busy timeout, and BEGIN IMMEDIATE so concurrent writers queue up
    instead of failing with "database is locked" when a reader upgrades to a writer.
    Both: an outage of the database is logged once when it starts and once when it ends
    (`app.extensions["db_outage"]`, fed by app/errors.py's refusals)."""
    from app.outage_log import OutageLog

    outage = app.extensions["db_outage"] = OutageLog(
        log,
        "database unavailable ({cause}): requests are answered 503 database_unavailable until"
        " it answers again (each refusal at DEBUG)",
        "database answers again after {lasted:.1f} s; {refused} request(s) refused meanwhile",
    )
    with app.app_context():
        engine = db.engine
    if engine.dialect.name == "sqlite":
        _make_sqlite_transactions_immediate(engine)

        # No watchdog sees SQLite's calls end: a finished statement ends an outage.
        @event.listens_for(engine, "after_cursor_execute")
        def _answered(*_args: Any) -> None:
            outage.answered()

    elif engine.dialect.name == "postgresql":
        from app.db_watchdog import watchdog_for

        watchdog = app.extensions["db_watchdog"] = watchdog_for(engine, app.config, outage)
        watch_connections(engine, watchdog)


def watch_connections(engine: Engine, watchdog: Watchdog) -> None:
    """No call waits on a database that stopped moving: every network wait of the engine's
    connections reports to the watchdog (app/db_watchdog.py), and so does opening one."""
    import psycopg
    from psycopg.pq import TransactionStatus

    idle = TransactionStatus.IDLE

    class WatchedConnection(psycopg.Connection):
        def wait(self, gen: Any, *args: Any, **kwargs: Any) -> Any:
            # `with watchdog.watching(self)`, unrolled (the hottest call of a request).
            key = watchdog.wait_started(self)
            try:
                result = super().wait(gen, *args, **kwargs)
            finally:
                watchdog.wait_ended(key)
            watchdog.outage.answered()  # reached only when the wait ended without an error
            return result

        # Ending no transaction sends nothing (psycopg returns at once); while the database
        # is frozen that must not count as a refused call, or the pool would log the
        # "failed" reset of every connection handed back and throw healthy ones away.
        def commit(self) -> None:
            if not (watchdog.frozen and self.pgconn.transaction_status == idle):
                super().commit()

        def rollback(self) -> None:
            if not (watchdog.frozen and self.pgconn.transaction_status == idle):
                super().rollback()

    @event.listens_for(engine, "do_connect")
    def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        return watchdog.connect(lambda: WatchedConnection.connect(*cargs, **cparams))


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


def dialect_name() -> str:
    # The engine's, not the session's bind: resolving the bind costs more than the statement
    # it is asked for (there is one database, no per-model binds).
    return str(db.engine.dialect.name)


def execute_prebuilt(
    statement: Executable, params: dict[str, Any], connection: Connection | None = None
) -> CursorResult[*tuple[Any, ...]]:
    """Run one of the hot paths' statements (built once per process). On PostgreSQL its SQL is
    compiled once and sent as it is (`exec_driver_sql`): no cache key, no per-execution
    parameter processing, which is most of SQLAlchemy's share of a webhook's CPU. Errors still
    go through SQLAlchemy (a dead connection is invalidated, `retry_on_disconnect` sees it).
    SQLite, and a statement SQLAlchemy rewrites per execution (an expanding IN list), take the
    ordinary path."""
    if connection is None:  # the session's, flushed first as session.execute would: the
        session = db.session()  # statement may read pending rows (cheap if none)
        session.flush()
        connection = session.connection()
    dialect = connection.dialect
    driver_sql = _driver_sql(statement, dialect) if dialect.name == "postgresql" else None
    if driver_sql is None:
        return connection.execute(statement, params)
    sql, defaults, processors, required = driver_sql
    if not required <= params.keys():  # as SQLAlchemy would: never send a missing one as NULL
        raise ArgumentError(f"missing parameters {sorted(required - params.keys())}")
    values = {**defaults, **params}
    for name, process in processors.items():  # SQLAlchemy's own conversions (Boolean's check)
        values[name] = process(values[name])
    return connection.exec_driver_sql(sql, values)


DriverSql = tuple[str, dict[str, Any], dict[str, Callable[[Any], Any]], frozenset[str]]


@functools.lru_cache(maxsize=64)
def _driver_sql(statement: Executable, dialect: Dialect) -> DriverSql | None:
    """The statement's SQL for the driver, its constant parameters and the conversions its
    parameters need; None for a statement that is rewritten per execution (expanding lists)."""
    compiled = cast(SQLCompiler, cast(ClauseElement, statement).compile(dialect=dialect))
    if compiled.literal_execute_params or compiled.post_compile_params:
        return None
    # Each parameter's own type says how to convert a value for this dialect (the public
    # TypeEngine API; Boolean's check, for one), as SQLAlchemy does when it executes.
    processors = {
        compiled.bind_names[bind]: process
        for bind in compiled.binds.values()
        if (process := bind.type.bind_processor(dialect)) is not None
    }
    required = frozenset(
        compiled.bind_names[bind] for bind in compiled.binds.values() if bind.required
    )
    sql = compiled.string
    if dialect.name == "postgresql":
        # Arrays go in psycopg's binary format: dumping a list as text quotes and escapes each
        # element in Python, about 6x the CPU (a batch's unnest arrays: ~12% of the applier's).
        for bind in compiled.binds.values():
            if isinstance(bind.type, ARRAY):
                name = compiled.bind_names[bind]
                sql = sql.replace(f"%({name})s", f"%({name})b")
    return sql, dict(compiled.params), processors, required  # type: ignore[return-value]


def insert_for(dialect: str, table: Any) -> Any:
    """The dialect's INSERT with ON CONFLICT clauses (both databases speak them)."""
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(table)


def upsert(model: type[Any]) -> Any:
    return insert_for(dialect_name(), model)


def insert_or_ignore(model: type[Any], values: dict[str, Any]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True when this call inserted the row.

    Decided by RETURNING, not rowcount (psycopg 3 reports -1 for this statement). On PostgreSQL
    a concurrent insert of the same key waits for the other transaction, so exactly one caller
    sees True."""
    primary_key = list(model.__table__.primary_key.columns)
    statement = upsert(model).values(**values).on_conflict_do_nothing().returning(*primary_key)
    return db.session.execute(statement).first() is not None


def row_for_update(model: type[T], key: str, values: dict[str, Any] | None = None) -> T:
    """The row with primary key `key`, created (with `values`) if missing, locked until the
    transaction ends and read fresh (another transaction may have changed it)."""
    primary_key = model.__table__.primary_key.columns[0]  # type: ignore[attr-defined]
    insert_or_ignore(model, {primary_key.name: key, **(values or {})})
    return db.session.execute(
        select(model)
        .where(primary_key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()


# pg_advisory_lock's key: any constant that nothing else in the database uses ("bill" + 1).
MIGRATION_LOCK_KEY = 0x62696C6C01


@contextmanager
def migration_lock() -> Iterator[None]:
    """Held while migrating: a PostgreSQL advisory lock (a file lock on SQLite), so instances
    that release at the same moment migrate one after the other."""
    engine = db.engine
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()  # the lock is the session's; no transaction stays open
            try:
                yield
            finally:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
                connection.commit()
        return
    digest = hashlib.sha256(str(engine.url).encode()).hexdigest()[:16]
    path = os.path.join(tempfile.gettempdir(), f"billing-migrate-{digest}.lock")
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
