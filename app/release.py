"""The release step: `flask release` migrates the database to head, once, even when several
instances run it at the same moment (a PostgreSQL advisory lock, a file lock on SQLite): the
first migrates, the others wait, then find the schema at head and do nothing."""

from __future__ import annotations

import logging

import click
from flask import current_app
from flask_migrate import upgrade

from app.db import migration_lock

log = logging.getLogger(__name__)


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
