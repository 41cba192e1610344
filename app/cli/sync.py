"""`flask billing sync [--user ID | --events]`: reconcile the database with Stripe (the full
pass, one user's, or the cheap incremental pass over Stripe's events) and print what changed."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator

import click
from flask import current_app
from flask.cli import with_appcontext

from app.billing.subscriptions.sync import (
    SyncReport,
    describe,
    sync_all,
    sync_from_events,
    sync_user,
)
from app.cli.common import fail
from app.db import rollback_quietly, unit_of_work
from app.extensions import db
from app.models import User
from app.stripe.gateway import StripeDict, StripeGateway, current_gateway


def _progress(stream: Iterable[StripeDict]) -> Iterator[StripeDict]:
    """A progress bar on stderr while subscriptions stream in (their total isn't known)."""
    with click.progressbar(
        stream,
        label="subscriptions",
        show_pos=True,
        file=sys.stderr,
    ) as bar:
        yield from bar


def _gateway_for_sync() -> StripeGateway:
    if not current_app.config.get("STRIPE_SECRET_KEY"):
        raise click.ClickException(
            "STRIPE_SECRET_KEY is not set: sync reads your Stripe account. In development, "
            "start `make run` first: the CLI then uses its embedded sandbox."
        )
    return current_gateway()


@click.command("sync")
@click.option("--user", "user_id", default=None, help="Only this user's subscriptions.")
@click.option(
    "--events",
    "from_events",
    is_flag=True,
    help="Cheap incremental pass: apply Stripe's events since the stored cursor.",
)
@with_appcontext
def sync_command(user_id: str | None, from_events: bool) -> None:
    """Reconcile the database with Stripe and print what changed."""
    if user_id is not None and from_events:
        raise click.UsageError("--user and --events can't be combined.")
    gateway = _gateway_for_sync()
    if from_events:
        _sync_events(gateway)
        return
    if user_id is not None:
        user = db.session.get(User, user_id)
        if user is None:
            raise click.ClickException(f"no user {user_id!r}")
        try:
            with unit_of_work():
                report = sync_user(gateway, user)
        except Exception as exc:
            report = SyncReport(errors=[f"user {user_id}: {describe(exc)}"])
    else:
        pending_seconds = current_app.config["SYNC_PENDING_SECONDS"]
        report = sync_all(gateway, track=_progress, pending_seconds=pending_seconds)
    _print_report(report)
    if report.errors:
        raise click.exceptions.Exit(1)


def _sync_events(gateway: StripeGateway) -> None:
    try:
        result = sync_from_events(gateway, now=int(time.time()))
    except Exception as exc:
        rollback_quietly()
        fail(f"listing events failed: {describe(exc)}")
        return
    click.echo(
        f"applied {result.applied} event(s), {result.duplicates} already known, "
        f"cursor={result.cursor}"
    )
    for failure in result.failures:
        click.echo(f"failed: {failure}", err=True)
    if result.cursor_too_old:
        click.echo(
            "the cursor is older than Stripe's 30-day event retention: events may have been "
            "missed; run `flask billing sync` (the full pass)",
            err=True,
        )
    if result.failures or result.cursor_too_old:
        raise click.exceptions.Exit(1)


def _print_report(report: SyncReport) -> None:
    for change in report.changes:
        click.echo(f"changed {change}")
    for change in report.pending:
        click.echo(f"pending {change}")
    for error in report.errors:
        click.echo(f"error {error}", err=True)
    click.echo(
        f"checked {report.seen} subscription(s): {len(report.changes)} change(s), "
        f"{len(report.pending)} pending, {len(report.errors)} error(s), "
        f"{report.rereads} re-read(s)"
    )
