"""A client-side bound on waiting for PostgreSQL, for a database that stops moving.

PostgreSQL's statement timeout is enforced by the server; behind a middlebox that keeps the
connection open and passes nothing on (a frozen proxy, a stuck NAT) the server never sees the
statement, TCP stays healthy (the middlebox acknowledges), and a call would wait until the
database moves again: every request thread stuck, /readyz waiting for a free one.

Every network wait of the app's connections (a statement, a commit, a rollback: psycopg's
`Connection.wait`, overridden by app/db.py's WatchedConnection) is registered with a watchdog
thread. A wait that lasts `DB_STALL_SECONDS`
makes the watchdog ask the server whether it answers at all (a new TCP connection and an
SSLRequest, which the postmaster answers at once, `PING_TIMEOUT` to answer):
- it answers: the statement is slow, not stuck; it runs on (bounded by the server's statement
  and lock timeouts, and by `DB_CLIENT_DEADLINE_SECONDS` in the end);
- it does not: the watchdog shuts the stalled connections' sockets down (shutdown, never close:
  the thread waiting on the socket wakes with an error, psycopg marks the connection broken,
  SQLAlchemy invalidates it, the request answers 503 `database_unavailable`, and the open
  transaction is never committed), and the database is marked frozen: calls fail at once, new
  connections are not attempted, /readyz answers 503 without waiting, until a ping is
  answered again (checked every `PING_TIMEOUT`, by the watchdog's own thread: it runs from
  the first freeze even when no call was ever watched), so the instance heals by itself.

The readiness probe's connections (app/health.py) report here too, so a freeze is seen even
with no request traffic: the probe's own stalled connect marks the database frozen, and every
later probe (and request) is answered at once instead of waiting out a deadline again.

The outage is logged once (`OutageLog`): one ERROR line when the freeze is seen, one when a
watched call or a ping succeeds again; refused requests add DEBUG lines only (app/errors.py).

A frozen database therefore costs a request at most DB_STALL_SECONDS + PING_TIMEOUT (1 s by
default) and, once detected, nothing. SQLite is not involved (no network, nothing to freeze).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any, cast

import psycopg
from sqlalchemy import Engine

from app.outage_log import OutageLog

log = logging.getLogger(__name__)

PING_TIMEOUT = 0.5
# An SSLRequest (length 8, code 80877103): any PostgreSQL server answers it with one byte.
SSL_REQUEST = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")


class DatabaseFrozen(psycopg.OperationalError):
    """Raised instead of waiting while the database is known not to answer."""


class Watchdog:
    def __init__(
        self,
        address: tuple[str, int] | str,
        stall: float,
        deadline: float,
        outage: OutageLog,
    ) -> None:
        self.address = address  # (host, port), or a Unix socket's path
        self.stall = stall
        self.deadline = deadline
        self.outage = outage
        self._lock = threading.Lock()
        self._waits: dict[int, tuple[float, psycopg.Connection[Any]]] = {}
        self._frozen = False
        self._last_ping = self._last_answer = float("-inf")
        self._thread: threading.Thread | None = None
        os.register_at_fork(after_in_child=self._after_fork)

    # -- what the app asks ------------------------------------------------------------------

    def _after_fork(self) -> None:
        # A forked worker (gunicorn) has none of the parent's threads, and a lock the
        # watchdog thread held at the fork would stay held forever: start afresh.
        self._lock = threading.Lock()
        self._waits = {}
        self._thread = None

    @property
    def frozen(self) -> bool:
        return self._frozen

    def refuse_if_frozen(self) -> None:
        if self._frozen:
            raise DatabaseFrozen("the database is not answering (client-side deadline)")

    @contextmanager
    def watching(self, connection: psycopg.Connection[Any]) -> Iterator[None]:
        key = self.wait_started(connection)
        try:
            yield
        finally:
            self.wait_ended(key)
        self.outage.answered()  # reached only when the wait ended without an error

    # `watching` in two calls, for the driver's `wait` (app/db.py): every statement, commit
    # and autocommit switch goes through it, several times a request, and a generator-based
    # context manager costs more than the bookkeeping itself.
    def wait_started(self, connection: psycopg.Connection[Any]) -> int:
        if self._frozen:
            self.refuse_if_frozen()
        thread = self._thread
        if thread is None or not thread.is_alive():
            self._start()
        key = id(connection)
        with self._lock:
            self._waits[key] = (time.monotonic(), connection)
        return key

    def wait_ended(self, key: int) -> None:
        with self._lock:
            self._waits.pop(key, None)

    def connect(self, connect: Callable[[], psycopg.Connection[Any]]) -> psycopg.Connection[Any]:
        """Open a connection, giving up as a stalled call would: a connect reaches a frozen
        database's middlebox and then waits its whole connect timeout (libpq's, 2 s at the
        least). It runs in a thread of its own so the caller can stop waiting for it; one
        that succeeds after that is closed."""
        self.refuse_if_frozen()
        outcome: dict[str, Any] = {}
        done = threading.Event()
        handover = threading.Lock()  # the result goes either to the caller or to close()

        def run() -> None:
            try:
                result: dict[str, Any] = {"connection": connect()}
            except BaseException as exc:
                result = {"error": exc}
            with handover:
                abandoned = outcome.get("abandoned", False)
                outcome.update(result)
            done.set()
            if abandoned and "connection" in result:
                with suppress(Exception):
                    result["connection"].close()

        threading.Thread(target=run, name="db-connect", daemon=True).start()
        if not done.wait(self.stall):
            while not done.wait(PING_TIMEOUT / 5):
                now = time.monotonic()
                if self._frozen or (now - self._last_answer >= self.stall and not self._ping(now)):
                    self._freeze("a new connection")
                    with handover:
                        if "connection" not in outcome and "error" not in outcome:
                            outcome["abandoned"] = True
                            raise DatabaseFrozen("the database is not answering (connect)")
                    break  # it finished meanwhile: use what it got
        if "error" in outcome:
            raise outcome["error"]
        connection = cast(psycopg.Connection[Any], outcome["connection"])
        # Ping where the connection really went (a `host=` in the query, several hosts).
        with suppress(Exception):
            self.address = address_of(connection.info.host, connection.info.port)
        return connection

    # -- the watchdog thread ----------------------------------------------------------------

    def _start(self) -> None:
        # Started on first use, so a forked gunicorn worker runs its own.
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(
                        target=self._run, name="db-watchdog", daemon=True
                    )
                    self._thread.start()

    def _run(self) -> None:
        tick = min(0.05, self.stall / 4)
        while True:
            time.sleep(tick)
            try:
                self._check()
            except Exception:  # the watchdog must outlive anything it meets
                log.exception("database watchdog check failed")

    def _check(self) -> None:
        now = time.monotonic()
        with self._lock:
            waits = list(self._waits.values())
        doomed = [conn for started, conn in waits if now - started >= self.deadline]
        stalled = [conn for started, conn in waits if now - started >= self.stall]
        if self._frozen:
            if now - self._last_ping >= PING_TIMEOUT and self._ping(now):
                self._frozen = False
                log.info("database answers pings again")
                self.outage.answered(surely=True)
        elif stalled and now - self._last_answer >= self.stall and not self._ping(now):
            self._freeze(f"{len(stalled)} connection(s) stalled {self.stall:.1f} s or more")
        if self._frozen:
            # Every wait still registered began before the freeze was seen: none will end.
            doomed = [conn for _, conn in waits]
        for connection in {id(conn): conn for conn in doomed}.values():
            abandon(connection)

    def _freeze(self, stalled: str) -> None:
        if not self._frozen:
            self._frozen = True
            self.outage.refused(f"not answering a ping: abandoning {stalled}", count=False)
        # Only the watchdog's thread ever lets go of the freeze: a freeze seen while opening a
        # connection, before any call was watched, must not outlive the outage.
        self._start()

    def _ping(self, now: float) -> bool:
        self._last_ping = now
        if self.answers():
            self._last_answer = time.monotonic()
            return True
        return False

    def answers(self) -> bool:
        """Does the server answer a new connection's SSLRequest within PING_TIMEOUT?"""
        family = socket.AF_UNIX if isinstance(self.address, str) else socket.AF_INET
        if family == socket.AF_INET and ":" in self.address[0]:
            family = socket.AF_INET6
        try:
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.settimeout(PING_TIMEOUT)
                probe.connect(self.address)
                probe.sendall(SSL_REQUEST)
                return probe.recv(1) in (b"S", b"N", b"G")
        except OSError:
            return False


def abandon(connection: psycopg.Connection[Any]) -> None:
    """Wake the thread waiting on this connection with an error: shut its socket down (a
    duplicate of the descriptor, so the connection's own is closed by its owner only)."""
    with suppress(Exception):
        fd = connection.pgconn.socket
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)


def address_of(host: str, port: int) -> tuple[str, int] | str:
    """Where to ping a server: host and port, or a Unix socket's path (host is a directory)."""
    return f"{host}/.s.PGSQL.{port}" if host.startswith("/") else (host, int(port))


def watchdog_for(engine: Engine, config: Mapping[str, Any], outage: OutageLog) -> Watchdog:
    """The watchdog of a PostgreSQL engine's connections (app/db.py makes them report to it)."""
    url = engine.url
    address = address_of(url.host or "/var/run/postgresql", url.port or 5432)
    # A call the server should have ended by its statement timeout (which counts lock waits)
    # and didn't: that connection is stuck, whatever the ping says. No statement timeout: none.
    deadline = float(config["DB_CLIENT_DEADLINE_SECONDS"]) or (
        config["DB_STATEMENT_TIMEOUT_MS"] / 1000 + 1
        if config["DB_STATEMENT_TIMEOUT_MS"]
        else float("inf")
    )
    return Watchdog(address, float(config["DB_STALL_SECONDS"]), deadline, outage)
