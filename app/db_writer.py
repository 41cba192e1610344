"""The webhook inbox's writer: one PostgreSQL connection per process kept in autocommit, so a
group commit's INSERT costs its round trip and the driver's work, nothing else
(docs/performance.md, "the request path")."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from app.db import dialect_name, unit_of_work
from app.extensions import db


class StatementWriter:
    """One writer's own PostgreSQL connection (the webhook inbox's: one leader at a time per
    process), kept open in autocommit: a statement is durable when it returns and costs its
    round trip and the driver's work, nothing else. Through a session each batch paid for a
    pool checkout, switching the connection to autocommit and back, SQLAlchemy's execution and
    result machinery, a commit and a reset: about 5x the driver's own CPU for a one-row write
    (docs/performance.md, fourth pass).

    Errors are SQLAlchemy's, as a session's would be (the error handlers answer 503 for an
    unavailable database; `retry_on_disconnect` retries a cut connection): the connection is
    dropped after any error and the next write opens a new one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connection: Connection | None = None

    @contextmanager
    def durable(self) -> Iterator[None]:
        """A block whose writes are durable when it ends: on PostgreSQL each `execute` is on
        its return (no session transaction is opened: an empty one costs as much as the
        write); SQLite writes through the session, in one unit of work."""
        if dialect_name() == "postgresql":
            yield
        else:
            with unit_of_work():
                yield

    def execute(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run one statement written for the driver (PostgreSQL only); its rows."""
        with self._lock:
            if self._connection is None:
                self._connection = db.engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT"
                )
            connection = self._connection
            # A live connection's driver connection (a dropped one was replaced above).
            driver = cast(Any, connection.connection.driver_connection)
            dialect = connection.dialect
            try:
                with driver.cursor() as cursor:
                    cursor.execute(sql, params)
                    return cursor.fetchall() if cursor.description else []
            except dialect.loaded_dbapi.Error as exc:
                cut = dialect.is_disconnect(exc, driver, None)
                self._drop()
                raise DBAPIError.instance(
                    sql,
                    None,
                    exc,
                    dialect.loaded_dbapi.Error,
                    hide_parameters=True,
                    connection_invalidated=cut,
                    dialect=dialect,
                ) from exc
            except BaseException:
                self._drop()
                raise

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        # Never back to the pool: the state it was left in is unknown.
        connection, self._connection = self._connection, None
        if connection is not None:
            with suppress(Exception):
                connection.invalidate()
            with suppress(Exception):
                connection.close()
