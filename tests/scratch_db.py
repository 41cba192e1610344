"""A database of its own for a test that needs an empty or half-migrated schema: a fresh
PostgreSQL database next to the suite's (named after it, dropped afterwards), or a fresh
SQLite file."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from support import is_postgres

from app.config import normalize_database_url


@contextmanager
def scratch_database(base_url: str, tmp_path: Path) -> Iterator[str]:
    if not is_postgres():
        yield f"sqlite:///{tmp_path}/scratch-{uuid.uuid4().hex[:8]}.db"
        return
    base = make_url(base_url)
    name = f"{base.database}_scratch_{uuid.uuid4().hex[:8]}"
    admin = create_engine(normalize_database_url(base_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def worker_database_url(base_url: str, worker: str) -> str:
    """A PostgreSQL database of one pytest-xdist worker's own, `<base>_<worker>` (the suite
    drops and recreates every table, so workers can't share one), created empty; the URL."""
    base = make_url(base_url)
    name = f"{base.database}_{worker}"
    _recreate(base_url, name, create=True)
    return base.set(database=name).render_as_string(hide_password=False)


def drop_worker_database(worker_url: str) -> None:
    base = make_url(worker_url)
    _recreate(worker_url, str(base.database), create=False)


def _recreate(any_url: str, name: str, *, create: bool) -> None:
    # Connected to the maintenance database: a database can't drop itself.
    admin_url = make_url(normalize_database_url(any_url)).set(database="postgres")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            if create:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
