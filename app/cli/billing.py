"""`flask billing events|apply|replay|check|audit`: see and repair what webhooks did, alert on
what is stuck, read the audit log. The group also holds `sync` (`app/cli/sync.py`) and the
Stripe account set-up commands (`app/cli/stripe_setup.py`).

Exit status: 0 when everything asked for was done, 1 when anything failed (so cron and CI
notice); what changed goes to stdout, progress and errors to stderr.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import timedelta

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from app.billing.subscriptions.duplicates import cancel_newer, find_duplicates
from app.billing.webhooks.applier import Applier, Settings, apply_now, drain
from app.cli.common import fail, parse_since
from app.cli.stripe_setup import (
    check_stripe_command,
    report_stripe_setup,
    setup_products_command,
    setup_webhook_command,
)
from app.cli.sync import sync_command
from app.db import end_read
from app.extensions import db
from app.gc_tuning import freeze_loaded_objects
from app.models import WebhookEvent, utcnow
from app.stripe.gateway import current_gateway

billing_cli = AppGroup(
    "billing", help="Webhook events, replay, alerting and reconciliation with Stripe."
)
billing_cli.add_command(sync_command)
billing_cli.add_command(check_stripe_command)
billing_cli.add_command(setup_products_command)
billing_cli.add_command(setup_webhook_command)


def _status(row: WebhookEvent) -> str:
    if row.processed:
        return "processed"
    if row.is_parked:
        return "FAILED"
    return "retrying" if row.error else "pending"


@billing_cli.command("events")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--failed", is_flag=True, help="Only events that are not processed (yet).")
@click.option("--type", "event_type", default=None, help="Only events of this type.")
def events_command(limit: int, failed: bool, event_type: str | None) -> None:
    """List recent webhook events, newest first, with their status."""
    query = select(WebhookEvent).order_by(WebhookEvent.created_at.desc()).limit(limit)
    if failed:
        query = query.where(WebhookEvent.processed.is_(False))
    if event_type:
        query = query.where(WebhookEvent.type == event_type)
    rows = db.session.execute(query).scalars().all()
    for row in rows:
        line = (
            f"{row.created_at:%Y-%m-%d %H:%M:%S}  {row.id}  {row.type:<40} {_status(row):<9} "
            f"attempts={row.attempts}"
        )
        if row.error:
            line += f"  error={row.error.splitlines()[0]}"
        click.echo(line)
    if not rows:
        click.echo("no events")


@billing_cli.command("check")
@click.option(
    "--max-age",
    default=15,
    show_default=True,
    type=click.IntRange(min=0),
    help="Minutes an event may wait unprocessed before it counts.",
)
@click.option(
    "--stripe",
    "with_stripe",
    is_flag=True,
    help="Also verify the Stripe key, the prices and the webhook endpoint.",
)
def check_command(max_age: int, with_stripe: bool) -> None:
    """Exit 1 when stored events have waited unprocessed longer than --max-age, or a user has
    more than one live subscription (for alerts).

    Stripe retries a failed delivery for days, so an event that stays unprocessed means the
    cause has not gone away by itself: look at `billing events --failed`, fix, `billing replay`.
    Duplicates follow DUPLICATE_SUBSCRIPTION_POLICY: "flag" reports them, "cancel_newer"
    refunds the newer ones' latest invoice, cancels them (as the app does at once) and
    reports what it did. With --stripe, also exit
    1 when the Stripe setup is not what this code expects.
    """
    stripe_ok = report_stripe_setup() if with_stripe else True
    duplicates_ok = _check_duplicates()
    cutoff = utcnow() - timedelta(minutes=max_age)
    stuck = (
        db.session.execute(
            select(WebhookEvent)
            .where(WebhookEvent.processed.is_(False), WebhookEvent.created_at <= cutoff)
            .order_by(WebhookEvent.created_at)
        )
        .scalars()
        .all()
    )
    if not stuck:
        click.echo(f"ok: no event unprocessed for more than {max_age} min")
        if not (duplicates_ok and stripe_ok):
            raise click.exceptions.Exit(1)
        return
    oldest = stuck[0]
    fail(
        f"{len(stuck)} event(s) unprocessed for more than {max_age} min; oldest {oldest.id} "
        f"({oldest.type}) received {oldest.created_at:%Y-%m-%d %H:%M:%S}, "
        f"attempts={oldest.attempts}"
    )


def _check_duplicates() -> bool:
    """Report users with more than one live subscription; True when none is left."""
    duplicates = find_duplicates()
    if not duplicates:
        click.echo("ok: no user has more than one live subscription")
        return True
    for duplicate in duplicates:
        click.echo(
            f"DUPLICATE user {duplicate.user_id} has {1 + len(duplicate.newer)} live "
            f"subscriptions: keeps {duplicate.keep}, newer {', '.join(duplicate.newer)}"
        )
    if current_app.config["DUPLICATE_SUBSCRIPTION_POLICY"] != "cancel_newer":
        click.echo("policy flag: cancel the extra subscriptions by hand (or set the policy)")
        return False
    report = cancel_newer(current_gateway(), duplicates)
    for note in report.notes:
        click.echo(note)
    for error in report.errors:
        click.echo(f"error resolving {error}", err=True)
    return not report.errors


@billing_cli.command("replay")
@click.argument("event_ids", nargs=-1)
@click.option("--since", default=None, help="Only events received at or after this time.")
@click.option("--type", "event_type", default=None, help="Only events of this type.")
@click.option(
    "--force", is_flag=True, help="Apply processed events again too (they are idempotent)."
)
def replay_command(
    event_ids: tuple[str, ...], since: str | None, event_type: str | None, force: bool
) -> None:
    """Re-apply stored events that failed (all of them, or the given EVENT_IDs)."""
    if force and not (event_ids or since or event_type):
        raise click.UsageError("--force needs EVENT_IDs, --since or --type.")
    since_time = parse_since(since)
    query = select(WebhookEvent)
    if not force:
        query = query.where(WebhookEvent.processed.is_(False))
    if event_ids:
        query = query.where(WebhookEvent.id.in_(event_ids))
    if since_time is not None:
        query = query.where(WebhookEvent.created_at >= since_time)
    if event_type:
        query = query.where(WebhookEvent.type == event_type)
    # Oldest first: the ordering rule copes with any order, but this one re-reads least.
    rows = db.session.execute(query.order_by(WebhookEvent.stripe_created)).scalars().all()
    stored = _stored_ids(event_ids)
    end_read()
    missing = [event_id for event_id in event_ids if event_id not in stored]
    for event_id in missing:
        click.echo(f"{event_id}: no such event stored", err=True)
    pending = {row.id for row in rows}
    for event_id in event_ids:
        if event_id in stored and event_id not in pending:
            click.echo(f"{event_id}: already processed, not replayed (--force replays it)")
    chosen = {row.id: row.type for row in rows}
    apply_now(list(chosen), current_gateway(), Settings.from_config(current_app.config))
    after = {
        row.id: row
        for row in db.session.execute(
            select(WebhookEvent).where(WebhookEvent.id.in_(list(chosen)))
        ).scalars()
    }
    end_read()
    failures = 0
    for event_id, type_name in chosen.items():
        row = after[event_id]
        if row.processed:
            click.echo(f"{event_id} {type_name}: applied")
            continue
        failures += 1
        click.echo(
            f"{event_id} {type_name}: failed ({(row.error or '').splitlines()[0]})", err=True
        )
    if rows:
        click.echo(f"replayed {len(rows) - failures} of {len(rows)} event(s)")
    elif not event_ids:
        click.echo("nothing to replay: no unprocessed event matches")
    if failures or missing:
        raise click.exceptions.Exit(1)


@billing_cli.command("apply")
@click.option(
    "--once", is_flag=True, help="Apply what is due now and exit (default: keep applying)."
)
def apply_command(once: bool) -> None:
    """Apply recorded webhook events: the applier as its own process (what gunicorn's master
    runs with WEBHOOK_APPLIER=process; by hand with WEBHOOK_APPLIER=off). Any number of them
    may run, on any hosts, each with WEBHOOK_APPLY_THREADS loops. SIGTERM or Ctrl-C: the
    batches in hand are finished, then it exits."""
    settings = Settings.from_config(current_app.config)
    if once:
        click.echo(f"applied {drain(current_gateway(), settings)} event(s)")
        return
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    applier = Applier(app, app.config["WEBHOOK_APPLY_POLL_SECONDS"])
    nice = int(app.config.get("WEBHOOK_APPLIER_NICE") or 0)
    if nice > 0:  # under bursts the web workers' requests get the CPU first
        os.nice(nice)
    stop = lambda *_: applier.stop()  # noqa: E731
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    parent = os.environ.get("WEBHOOK_APPLIER_PARENT")
    if parent:  # started by gunicorn's master: don't outlive it (a SIGKILLed master stops nothing)
        watch = threading.Thread(target=_stop_when_orphaned, args=(int(parent), applier))
        watch.daemon = True
        watch.start()
    click.echo(f"applying webhook events (pid {os.getpid()}; Ctrl-C stops)", err=True)
    freeze_loaded_objects()
    applier.serve(threads=int(app.config["WEBHOOK_APPLY_THREADS"]))


def _stop_when_orphaned(parent: int, applier: Applier) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    applier.stop()


def _stored_ids(event_ids: tuple[str, ...]) -> set[str]:
    if not event_ids:
        return set()
    query = select(WebhookEvent.id).where(WebhookEvent.id.in_(event_ids))
    return set(db.session.execute(query).scalars())


@billing_cli.command("audit")
@click.option("--user", "user_id", default=None, help="Only this user's entries.")
@click.option("--since", default=None, help="Only entries at or after this ISO time (UTC).")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1))
def audit_command(user_id: str | None, since: str | None, limit: int) -> None:
    """The audit log, newest first: when, action, outcome, user, Stripe object, IP, request."""
    from app.audit import entries
    from app.safe_text import for_log

    rows = entries(user_id=user_id, since=parse_since(since), limit=limit)
    for row in rows:
        line = (
            f"{row.at:%Y-%m-%d %H:%M:%S}  {row.action:<32} {row.outcome:<24} "
            f"user={row.user_id or '-'}  object={row.stripe_object or '-'}  "
            f"ip={row.ip or '-'}  request={row.request_id or '-'}"
            + (f"  {row.detail}" if row.detail else "")
        )
        click.echo(for_log(line, limit=2000))  # one entry, one line, whatever it holds
    if not rows:
        click.echo("no entries")
