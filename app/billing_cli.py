"""`flask billing events|replay|sync`: see and repair what webhooks did."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from flask.cli import AppGroup
from sqlalchemy import select

from app.billing.sync import SyncReport, sync_all, sync_from_events, sync_user
from app.billing.webhooks import replay_event
from app.extensions import db
from app.models import User, WebhookEvent
from app.stripe_gateway import current_gateway

billing_cli = AppGroup("billing", help="Webhook events, replay and reconciliation with Stripe.")


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter("use an ISO date or time, e.g. 2026-11-01T00:00") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@billing_cli.command("events")
@click.option("--limit", default=50, show_default=True)
@click.option("--failed", is_flag=True, help="Only events that are not processed.")
def events_command(limit: int, failed: bool) -> None:
    """List recent webhook events with their status."""
    query = select(WebhookEvent).order_by(WebhookEvent.created_at.desc()).limit(limit)
    if failed:
        query = query.where(WebhookEvent.processed.is_(False))
    rows = db.session.execute(query).scalars().all()
    for row in rows:
        status = "processed" if row.processed else "FAILED" if row.error else "pending"
        click.echo(
            f"{row.created_at:%Y-%m-%d %H:%M:%S}  {row.id}  {row.type:<40} {status:<9} "
            f"attempts={row.attempts}"
            + (f"  error={row.error.splitlines()[0]}" if row.error else "")
        )
    if not rows:
        click.echo("no events")


@billing_cli.command("replay")
@click.argument("event_ids", nargs=-1)
@click.option("--since", default=None, help="Only events received at or after this time.")
@click.option("--type", "event_type", default=None, help="Only events of this type.")
def replay_command(event_ids: tuple[str, ...], since: str | None, event_type: str | None) -> None:
    """Re-apply stored events that failed (or the given EVENT_IDs)."""
    query = select(WebhookEvent).where(WebhookEvent.processed.is_(False))
    if event_ids:
        query = query.where(WebhookEvent.id.in_(event_ids))
    since_time = _parse_since(since)
    if since_time is not None:
        query = query.where(WebhookEvent.created_at >= since_time)
    if event_type:
        query = query.where(WebhookEvent.type == event_type)
    rows = db.session.execute(query.order_by(WebhookEvent.stripe_created)).scalars().all()
    db.session.commit()
    gateway = current_gateway()
    failures = 0
    for row in rows:
        try:
            outcome = replay_event(row, gateway)
            click.echo(f"{row.id} {row.type}: {outcome.status}")
        except Exception as exc:
            failures += 1
            click.echo(f"{row.id} {row.type}: failed ({type(exc).__name__})", err=True)
    click.echo(f"replayed {len(rows) - failures} of {len(rows)} event(s)")
    if failures:
        raise SystemExit(1)


@billing_cli.command("sync")
@click.option("--user", "user_id", default=None, help="Only this user's subscriptions.")
@click.option(
    "--events",
    "from_events",
    is_flag=True,
    help="Cheap incremental pass: apply Stripe events since the stored cursor.",
)
def sync_command(user_id: str | None, from_events: bool) -> None:
    """Reconcile the database with Stripe and print what changed."""
    gateway = current_gateway()
    try:
        if from_events:
            result = sync_from_events(gateway)
            click.echo(f"applied {result.applied} event(s), {result.duplicates} already known")
            for failure in result.failures:
                click.echo(f"failed: {failure}", err=True)
            db.session.commit()
            if result.failures:
                raise SystemExit(1)
            return
        if user_id is not None:
            user = db.session.get(User, user_id)
            if user is None:
                raise click.ClickException(f"no user {user_id}")
            report = sync_user(gateway, user)
        else:
            with click.progressbar(length=0, label="subscriptions") as bar:
                report = sync_all(gateway, progress=lambda: bar.update(1))
        db.session.commit()
    except click.ClickException:
        raise
    except Exception as exc:
        db.session.rollback()
        raise click.ClickException(f"sync failed: {type(exc).__name__}: {exc}") from exc
    _print_report(report)


def _print_report(report: SyncReport) -> None:
    for change in report.changes:
        click.echo(f"changed {change}")
    click.echo(f"checked {report.seen} subscription(s), {len(report.changes)} changed")
