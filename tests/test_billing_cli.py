"""`flask billing sync|events|replay`: repairs, reports, exit codes."""

from __future__ import annotations

import json
from typing import Any

import requests
from app_instance import serve_instance
from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update
from stripe_history import History, drop_endpoints, stored_state, stripe_state
from support import (
    Billing,
    apply_recorded_events,
    auth_headers,
    sign_payload,
    subscribe,
    suite_applier_paused,
)

from app.extensions import db
from app.models import Subscription, SyncState, User, WebhookEvent


def run(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["billing", *args])


def all_subscription_ids(billing: Billing) -> list[str]:
    listed = billing.gateway.list_subscriptions()
    return [subscription["id"] for subscription in listed]


def owners(billing: Billing) -> dict[str, str]:
    return {
        subscription["id"]: subscription["metadata"]["userId"]
        for subscription in billing.gateway.list_subscriptions()
    }


def assert_matches_stripe(app: Flask, billing: Billing) -> None:
    for subscription_id, user_id in owners(billing).items():
        assert stored_state(app, subscription_id) == stripe_state(
            billing, subscription_id, user_id
        ), subscription_id


def damage(app: Flask, *, gone: str, stale: str) -> None:
    """What missed events look like: a row gone, a row stale, every summary wrong."""
    with app.app_context():
        db.session.execute(db.delete(Subscription).where(Subscription.id == gone))
        db.session.execute(
            update(Subscription)
            .where(Subscription.id == stale)
            .values(status="past_due", cancel_at_period_end=True)
        )
        db.session.execute(
            update(User).values(subscription_status="free", subscription_tier="free")
        )
        db.session.commit()


def test_sync_repairs_missed_events_and_a_second_run_changes_nothing(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    subscribe(client, billing, "sync-a")
    subscribe(client, billing, "sync-b", plan="yearly")
    sub_a, sub_b = (
        client.get("/api/me", headers=auth_headers(user)).get_json()["subscription"]["id"]
        for user in ("sync-a", "sync-b")
    )
    # From here on nothing is delivered: a whole purchase and a cancellation are missed.
    drop_endpoints(billing)
    prices = {"pro_monthly": billing.monthly, "pro_yearly": billing.yearly}
    History(billing, "sync-c", billing.gateway.client, prices).start()
    billing.gateway.set_cancel_at_period_end(sub_b, True)
    damage(app, gone=sub_a, stale=sub_b)

    first = run(app, "sync")
    assert first.exit_code == 0, first.output
    changed = [line for line in first.stdout.splitlines() if line.startswith("changed ")]
    assert {line.split()[1] for line in changed} >= {sub_a, sub_b, "user"}, first.stdout
    assert len(changed) == 6, first.stdout  # 3 subscriptions, 3 users
    assert "subscriptions" in first.stderr  # the progress bar's label (no terminal: no bar)
    assert_matches_stripe(app, billing)
    assert client.get("/api/me", headers=auth_headers("sync-c")).get_json()["user"]["tier"] == "pro"

    before = len(billing.stripe_calls())
    second = run(app, "sync")
    assert second.exit_code == 0, second.output
    assert "changed" not in second.stdout
    assert "3 subscription(s): 0 change(s), 0 pending, 0 error(s), 0 re-read(s)" in second.stdout
    # The recent events (to tell webhooks on their way from drift), then the subscriptions.
    assert [c["path"] for c in billing.stripe_calls()[before:]] == [
        "/v1/events",
        "/v1/subscriptions",
    ]


def test_sync_of_one_user(app: Flask, client: FlaskClient, billing: Billing) -> None:
    subscribe(client, billing, "one-a")
    subscribe(client, billing, "one-b")
    ids = {
        user: client.get("/api/me", headers=auth_headers(user)).get_json()["subscription"]["id"]
        for user in ("one-a", "one-b")
    }
    with app.app_context():
        db.session.execute(update(Subscription).values(cancel_at_period_end=True))
        db.session.commit()

    result = run(app, "sync", "--user", "one-a")
    assert result.exit_code == 0, result.output
    assert f"changed {ids['one-a']}" in result.stdout and ids["one-b"] not in result.stdout
    assert stored_state(app, ids["one-a"])["cancel_at_period_end"] is False
    assert stored_state(app, ids["one-b"])["cancel_at_period_end"] is True

    unknown = run(app, "sync", "--user", "nobody")
    assert unknown.exit_code == 1 and "no user 'nobody'" in unknown.output
    both = run(app, "sync", "--user", "one-a", "--events")
    assert both.exit_code == 2 and "can't be combined" in both.output


def test_sync_reports_errors_exits_non_zero_and_still_repairs_the_rest(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    subscribe(client, billing, "err-a")
    sub_id = client.get("/api/me", headers=auth_headers("err-a")).get_json()["subscription"]["id"]
    with app.app_context():
        db.session.add(Subscription(id="sub_not_in_stripe", status="active"))
        db.session.execute(
            update(Subscription).where(Subscription.id == sub_id).values(status="past_due")
        )
        db.session.commit()

    result = run(app, "sync")
    assert result.exit_code == 1
    assert "sub_not_in_stripe" in result.stderr and "resource_missing" in result.stderr
    assert stored_state(app, sub_id)["status"] == "active"

    # Stripe unreachable: the listing fails, nothing is touched, the exit status says so.
    with serve_instance(app, STRIPE_API_BASE="http://127.0.0.1:9") as offline:
        down = offline.app.test_cli_runner().invoke(args=["billing", "sync"])
    assert down.exit_code == 1
    assert "listing subscriptions failed: payment_provider_unavailable" in down.stderr

    key = app.config["STRIPE_SECRET_KEY"]
    app.config["STRIPE_SECRET_KEY"] = ""
    try:
        keyless = run(app, "sync")
    finally:
        app.config["STRIPE_SECRET_KEY"] = key
    assert keyless.exit_code == 1 and "STRIPE_SECRET_KEY is not set" in keyless.output


def test_incremental_sync_from_events_applies_missed_events_once(
    app: Flask, billing: Billing
) -> None:
    history = History.fresh(billing, "inc-user")
    history.start()
    history.advance(60)
    history.cancel_at_period_end()

    first = run(app, "sync", "--events")
    assert first.exit_code == 0, first.output
    assert "already known" in first.stdout
    assert stored_state(app, history.subscription_id) == stripe_state(
        billing, history.subscription_id, history.user_id
    )
    with app.app_context():
        cursor = db.session.get(SyncState, "events_cursor")
        assert cursor is not None and int(cursor.value) == history.events()[-1]["created"]
        db.session.commit()

    second = run(app, "sync", "--events")
    assert second.exit_code == 0
    assert second.stdout.startswith("applied 0 event(s)")

    # A cursor past Stripe's 30-day retention can't be trusted: say so and fail.
    with app.app_context():
        db.session.execute(update(SyncState).values(value="1000000000"))
        db.session.commit()
    stale = run(app, "sync", "--events")
    assert stale.exit_code == 1 and "30-day" in stale.stderr


def post(instance_url: str, event: dict[str, Any], secret: str) -> requests.Response:
    payload = json.dumps(event)
    headers = {
        "Stripe-Signature": sign_payload(payload, secret),
        "Content-Type": "application/json",
    }
    return requests.post(
        f"{instance_url}/api/webhooks/stripe", data=payload, headers=headers, timeout=30
    )


def test_events_lists_failures_and_replay_applies_them(app: Flask, billing: Billing) -> None:
    """An instance that can't reach Stripe fails to apply the event that needs a re-read (and,
    with one attempt allowed, parks it); the operator sees it in `billing events --failed` and
    replays it once Stripe is back."""
    history = History.fresh(billing, "replayed")
    history.start()
    history.advance(60)
    history.cancel_at_period_end()
    history.resume()  # same second as the cancel: needs a Stripe read
    events = history.events()
    resume = events[-1]
    secret = "whsec_cli_replay"
    # Only the offline instance applies (the suite app's thread, which reaches Stripe, polls the
    # same database), one event at a time: two appliers taking the cancel and the resume at
    # once may apply them in either order, and then the cancel is the one needing the re-read.
    with (
        suite_applier_paused(app),
        serve_instance(
            app,
            STRIPE_API_BASE="http://127.0.0.1:9",
            STRIPE_WEBHOOK_SECRET=secret,
            WEBHOOK_APPLY_MAX_ATTEMPTS=1,
        ) as offline,
    ):
        for event in events:  # recorded: the apply comes after the answer
            assert post(offline.url, event, secret).status_code == 200
            apply_recorded_events(offline.app)  # settled (applied or parked) before the next

    listed = run(app, "events", "--failed")
    assert listed.exit_code == 0
    [line] = listed.stdout.splitlines()
    assert resume["id"] in line and "FAILED" in line and "attempts=1" in line
    assert "ProviderUnavailable" in line
    assert run(app, "events", "--type", "customer.subscription.updated").stdout.count("\n") == 3

    stuck = run(app, "check", "--max-age", "0")
    assert (
        stuck.exit_code == 1
        and f"1 event(s) unprocessed for more than 0 min; oldest {resume['id']}" in stuck.stderr
    )
    assert run(app, "check").exit_code == 0  # not yet 15 minutes old

    done = events[0]["id"]
    replay = run(app, "replay", resume["id"], done)
    assert replay.exit_code == 0, replay.output
    assert f"{resume['id']} customer.subscription.updated: applied" in replay.stdout
    assert f"{done}: already processed" in replay.stdout
    assert "replayed 1 of 1 event(s)" in replay.stdout
    assert stored_state(app, history.subscription_id) == stripe_state(
        billing, history.subscription_id, history.user_id
    )
    assert run(app, "events", "--failed").stdout.strip() == "no events"
    assert run(app, "check", "--max-age", "0").exit_code == 0

    missing = run(app, "replay", "evt_nope")
    assert missing.exit_code == 1 and "evt_nope: no such event stored" in missing.stderr
    bad = run(app, "replay", "--since", "last tuesday")
    assert bad.exit_code == 2 and "ISO date" in bad.output
    assert run(app, "replay").stdout.strip() == "nothing to replay: no unprocessed event matches"
    with app.app_context():
        assert (
            db.session.execute(
                select(WebhookEvent).where(WebhookEvent.processed.is_(False))
            ).first()
            is None
        )
        db.session.commit()
