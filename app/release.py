"""The release step: `flask release` migrates the database to head, once, even when several
instances run it at the same moment (a PostgreSQL advisory lock, a file lock on SQLite): the
first migrates, the others wait, then find the schema at head and do nothing."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import click
from flask import current_app
from flask_migrate import upgrade
from sqlalchemy import text

from app.extensions import db

log = logging.getLogger(__name__)

# pg_advisory_lock's key: any constant that nothing else in the database uses ("bill" + 1).
MIGRATION_LOCK_KEY = 0x62696C6C01


@contextmanager
def migration_lock() -> Iterator[None]:
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


def migrate_to_head() -> None:
    log.info("release: waiting for the migration lock")
    with migration_lock():
        log.info("release: migrating to head")
        upgrade(directory=current_app.extensions["migrate"].directory)
    log.info("release: database at head")


@click.command("release")
def release_command() -> None:
    """Migrate the database to head (safe when several instances run it at once)."""
    migrate_to_head()
    click.echo("release: database at head")
