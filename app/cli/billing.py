"""`flask billing events|apply|replay|sync|check|audit|setup-products`: see and repair what
webhooks did, read the audit log, and set up / verify the Stripe account.

Exit status: 0 when everything asked for was done, 1 when anything failed (so cron and CI
notice); what changed goes to stdout, progress and errors to stderr.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from app.billing.errors import BillingError
from app.billing.subscriptions.duplicates import cancel_newer, find_duplicates
from app.billing.subscriptions.sync import (
    SyncReport,
    describe,
    sync_all,
    sync_from_events,
    sync_user,
)
from app.billing.webhooks.applier import Applier, Settings, apply_now, drain
from app.billing.webhooks.handlers import HANDLED_EVENT_TYPES
from app.db import end_read, rollback_quietly, unit_of_work
from app.extensions import db
from app.models import User, WebhookEvent, utcnow
from app.stripe.gateway import StripeDict, StripeGateway, current_gateway
from app.stripe.setup import check_stripe_setup, setup_products, setup_webhook_endpoint

billing_cli = AppGroup(
    "billing", help="Webhook events, replay, alerting and reconciliation with Stripe."
)


def _fail(message: str) -> None:
    click.echo(message, err=True)
    raise click.exceptions.Exit(1)


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(
            "use an ISO date or time, e.g. 2026-11-01T00:00", param_hint="--since"
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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
    cancels the newer ones (prorated credit) and reports what it did. With --stripe, also exit
    1 when the Stripe setup is not what this code expects.
    """
    stripe_ok = _report_stripe_setup() if with_stripe else True
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
    _fail(
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
    for subscription_id in report.canceled:
        click.echo(f"canceled {subscription_id} (newer duplicate; prorated credit issued)")
    for error in report.errors:
        click.echo(f"error canceling {error}", err=True)
    return not report.errors


def _report_stripe_setup() -> bool:
    problems = check_stripe_setup(current_gateway(), current_app.config, HANDLED_EVENT_TYPES)
    for problem in problems:
        click.echo(f"stripe: {problem}", err=True)
    if not problems:
        click.echo("ok: Stripe key, prices and webhook endpoint as configured")
    return not problems


@billing_cli.command("check-stripe")
@click.option("--warn-only", is_flag=True, help="Print the problems but exit 0 (start-up).")
def check_stripe_command(warn_only: bool) -> None:
    """Verify the key, the prices and the webhook endpoint (URL, events, api_version)."""
    if not _report_stripe_setup() and not warn_only:
        raise click.exceptions.Exit(1)


@billing_cli.command("setup-products")
def setup_products_command() -> None:
    """Create or update the product and its $19/month and $180/year prices (by lookup key)
    in the Stripe account the key points to; print the env lines to use them."""
    try:
        result = setup_products(current_gateway())
    except BillingError as exc:
        _fail(f"Stripe refused: {exc.message} ({exc.code})")
        return
    for action in result.actions:
        click.echo(action, err=True)
    click.echo(f"# product {result.product_id}; or use STRIPE_PRICE_LOOKUP_KEY_MONTHLY/_YEARLY")
    for line in result.env_lines():
        click.echo(line)


@billing_cli.command("setup-webhook")
@click.option("--replace", is_flag=True, help="Delete an existing endpoint for the URL first.")
def setup_webhook_command(replace: bool) -> None:
    """Create the webhook endpoint PUBLIC_URL/api/webhooks/stripe with the handled events and
    the pinned api_version; print STRIPE_WEBHOOK_SECRET=..."""
    try:
        endpoint = setup_webhook_endpoint(
            current_gateway(), current_app.config, HANDLED_EVENT_TYPES, replace=replace
        )
    except BillingError as exc:
        _fail(f"Stripe refused: {exc.message} ({exc.code})")
        return
    if endpoint is None:
        _fail("an endpoint for this URL exists; its secret is shown only on create (--replace)")
        return
    click.echo(f"created webhook endpoint {endpoint['id']} for {endpoint['url']}", err=True)
    click.echo(f"STRIPE_WEBHOOK_SECRET={endpoint['secret']}")


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
    since_time = _parse_since(since)
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
    """Apply recorded webhook events (for WEBHOOK_APPLIER=off: the applier as its own process;
    any number of them may run, on any hosts)."""
    settings = Settings.from_config(current_app.config)
    if once:
        click.echo(f"applied {drain(current_gateway(), settings)} event(s)")
        return
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    applier = Applier(app, app.config["WEBHOOK_APPLY_POLL_SECONDS"])
    click.echo("applying webhook events (Ctrl-C stops)", err=True)
    applier.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        applier.stop()


def _stored_ids(event_ids: tuple[str, ...]) -> set[str]:
    if not event_ids:
        return set()
    query = select(WebhookEvent.id).where(WebhookEvent.id.in_(event_ids))
    return set(db.session.execute(query).scalars())


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
            "start `make run` first: the CLI then uses the Stripe sandbox it started."
        )
    return current_gateway()


@billing_cli.command("sync")
@click.option("--user", "user_id", default=None, help="Only this user's subscriptions.")
@click.option(
    "--events",
    "from_events",
    is_flag=True,
    help="Cheap incremental pass: apply Stripe's events since the stored cursor.",
)
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
        _fail(f"listing events failed: {describe(exc)}")
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


@billing_cli.command("audit")
@click.option("--user", "user_id", default=None, help="Only this user's entries.")
@click.option("--since", default=None, help="Only entries at or after this ISO time (UTC).")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1))
def audit_command(user_id: str | None, since: str | None, limit: int) -> None:
    """The audit log, newest first: when, action, outcome, user, Stripe object, IP, request."""
    from app.audit import entries
    from app.safe_text import for_log

    rows = entries(user_id=user_id, since=_parse_since(since), limit=limit)
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
