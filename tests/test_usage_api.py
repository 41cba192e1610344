"""GET /api/me/entitlements, POST /api/usage/generations and GET /api/usage through the app:
limits, all-or-nothing, idempotency keys, validation, the ledger, period resets, and the plan
following the subscription (upgrade, downgrade, past_due grace, a late cancellation)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from support import Billing, auth_headers, post_webhook, subscribe

from app.billing.time import datetime_from_ms as to_datetime
from app.billing.time import monthly_period_containing
from app.billing.time import ms_from_datetime as to_ms
from app.billing.usage.entitlements import DAY_MS
from app.extensions import db
from app.models import Subscription, UsageLedgerEntry, User

USER = "usage-user"


def entitlements(client: FlaskClient, user: str = USER) -> dict[str, Any]:
    reply = client.get("/api/me/entitlements", headers=auth_headers(user))
    assert reply.status_code == 200, reply.get_json()
    return reply.get_json()


def consume(client: FlaskClient, count: Any, key: Any, user: str = USER) -> Any:
    body: dict[str, Any] = {"count": count, "idempotencyKey": key}
    return client.post("/api/usage/generations", json=body, headers=auth_headers(user))


def stored(app: Flask, user: str = USER) -> tuple[int, int]:
    """(generations_used, ledger rows) as the database has them."""
    with app.app_context():
        row = db.session.get(User, user)
        rows = db.session.scalar(
            select(func.count())
            .select_from(UsageLedgerEntry)
            .where(UsageLedgerEntry.user_id == user)
        )
        return (row.generations_used if row else 0), rows or 0


def run_sql(app: Flask, statement: Any) -> None:
    with app.app_context():
        db.session.execute(statement)
        db.session.commit()


def test_a_new_user_gets_the_free_plan_for_a_month_from_sign_up(
    app: Flask, client: FlaskClient
) -> None:
    first = entitlements(client)
    assert first["tier"] == "free" and first["status"] == "free"
    assert first["features"] == ["generate", "standard_quality"]
    assert (first["generationsUsed"], first["generationsLimit"]) == (0, 10)
    assert first["generationsRemaining"] == 10 and first["accessEndsAt"] is None
    with app.app_context():
        signed_up = to_ms(db.session.get(User, USER).created_at)
    assert (first["periodStart"], first["periodResetsAt"]) == monthly_period_containing(
        signed_up, signed_up
    )
    assert 28 * DAY_MS <= first["periodResetsAt"] - first["periodStart"] <= 31 * DAY_MS


def test_consumption_stops_exactly_at_the_limit_with_an_upgrade_hint(
    app: Flask, client: FlaskClient
) -> None:
    three = consume(client, 3, "k1")
    assert three.status_code == 200
    body = three.get_json()
    assert body["granted"] == 3 and body["replayed"] is False
    assert (body["generationsUsed"], body["generationsLimit"], body["generationsRemaining"]) == (
        3,
        10,
        7,
    )
    assert body["periodResetsAt"] == entitlements(client)["periodResetsAt"]

    # All or nothing: 8 does not fit in the 7 left, so none of it is taken.
    too_many = consume(client, 8, "k2")
    assert too_many.status_code == 402
    error = too_many.get_json()["error"]
    assert error["code"] == "quota_exceeded" and "7 remain" in error["message"]
    assert error["upgrade"] == "/api/create-checkout-session"
    assert (error["generationsUsed"], error["generationsRemaining"]) == (3, 7)
    assert stored(app)[0] == 3

    assert consume(client, 7, "k3").get_json()["generationsRemaining"] == 0
    spent = consume(client, 1, "k4")
    assert spent.status_code == 402
    assert spent.get_json()["error"]["message"] == (
        "You have used all 10 generations of this period."
    )
    assert entitlements(client)["generationsRemaining"] == 0
    assert stored(app) == (10, 4)  # two granted, two refused, each on the ledger


def test_a_replayed_key_returns_the_first_result_and_counts_once(
    app: Flask, client: FlaskClient
) -> None:
    first = consume(client, 2, "retry-me")
    assert first.status_code == 200 and "Idempotent-Replayed" not in first.headers
    consume(client, 5, "other")
    again = consume(client, 2, "retry-me")
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    # The first result as it was then (used 2), not the counter now (7).
    assert again.get_json() == {**first.get_json(), "replayed": True}
    assert stored(app) == (7, 2)

    # A refusal is a result too: replayed, not re-tried against a quota that changed since.
    refused = consume(client, 9, "big")
    assert refused.status_code == 402
    assert consume(client, 9, "big").get_json()["error"]["replayed"] is True

    reused = consume(client, 3, "retry-me")
    assert reused.status_code == 409
    assert reused.get_json()["error"]["code"] == "idempotency_key_reused"
    assert stored(app) == (7, 3)


def test_keys_belong_to_one_user(app: Flask, client: FlaskClient) -> None:
    assert consume(client, 4, "shared-key", user="alice").status_code == 200
    bob = consume(client, 1, "shared-key", user="bob")
    assert bob.status_code == 200 and bob.get_json()["generationsUsed"] == 1
    assert stored(app, "alice") == (4, 1) and stored(app, "bob") == (1, 1)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"count": 0, "idempotencyKey": "k"}, 422),
        ({"count": -3, "idempotencyKey": "k"}, 422),
        ({"count": 101, "idempotencyKey": "k"}, 422),
        ({"count": "5", "idempotencyKey": "k"}, 422),
        ({"count": 1.5, "idempotencyKey": "k"}, 422),
        ({"count": True, "idempotencyKey": "k"}, 422),
        ({"count": None, "idempotencyKey": "k"}, 422),
        ({"count": 1}, 422),
        ({"count": 1, "idempotencyKey": ""}, 422),
        ({"count": 1, "idempotencyKey": "   "}, 422),
        ({"count": 1, "idempotencyKey": "k" * 256}, 422),
        ({"count": 1, "idempotencyKey": 42}, 422),
        ({"count": 1, "idempotencyKey": "k", "user": "someone-else"}, 422),
        ("[1, 2]", 400),
        ("{not json", 400),
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(
    app: Flask, client: FlaskClient, body: Any, status: int
) -> None:
    entitlements(client)
    raw = body if isinstance(body, str) else json.dumps(body)
    reply = client.post(
        "/api/usage/generations",
        data=raw,
        headers={**auth_headers(USER), "Content-Type": "application/json"},
    )
    assert reply.status_code == status, reply.get_data(as_text=True)
    error = reply.get_json()["error"]
    assert error["code"] in ("validation_error", "invalid_json") and error["message"]
    assert stored(app) == (0, 0)


def test_a_missing_count_means_one(client: FlaskClient) -> None:
    reply = client.post(
        "/api/usage/generations", json={"idempotencyKey": "one"}, headers=auth_headers(USER)
    )
    assert reply.get_json()["granted"] == 1


def test_every_usage_route_needs_a_token(client: FlaskClient) -> None:
    for method, path in (
        ("get", "/api/me/entitlements"),
        ("post", "/api/usage/generations"),
        ("get", "/api/usage"),
    ):
        reply = getattr(client, method)(path, json={"count": 1, "idempotencyKey": "k"})
        assert reply.status_code == 401
        assert reply.get_json()["error"]["code"] == "missing_token"


def test_the_usage_page_lists_this_periods_ledger(client: FlaskClient) -> None:
    consume(client, 4, "a")
    consume(client, 9, "b")
    consume(client, 1, "c")
    reply = client.get("/api/usage?limit=2", headers=auth_headers(USER))
    assert reply.status_code == 200
    usage = reply.get_json()
    assert usage["tier"] == "free"
    assert {k: usage["period"][k] for k in ("used", "limit", "remaining")} == {
        "used": 5,
        "limit": 10,
        "remaining": 5,
    }
    assert usage["period"]["resetsAt"] == entitlements(client)["periodResetsAt"]
    assert [(e["idempotencyKey"], e["result"], e["generationsUsed"]) for e in usage["entries"]] == [
        ("c", "granted", 5),
        ("b", "refused", 4),
    ]
    assert all(e["kind"] == "consume" and e["createdAt"] > 0 for e in usage["entries"])
    for bad in ("0", "101", "ten", "-1"):
        wrong = client.get(f"/api/usage?limit={bad}", headers=auth_headers(USER))
        assert wrong.status_code == 422 and wrong.get_json()["error"]["code"] == "validation_error"


def test_free_usage_starts_again_when_the_month_from_sign_up_is_over(
    app: Flask, client: FlaskClient
) -> None:
    consume(client, 10, "all")
    assert consume(client, 1, "more").status_code == 402
    # Forty days pass: move the sign-up and the stored period back rather than the clock.
    shift = 40 * DAY_MS
    with app.app_context():
        user = db.session.get(User, USER)
        signed_up = to_ms(user.created_at) - shift
        user.created_at = to_datetime(signed_up)
        user.usage_period_start -= shift
        user.usage_period_end -= shift
        db.session.commit()

    now = int(time.time() * 1000)
    fresh = entitlements(client)
    assert fresh["generationsUsed"] == 0 and fresh["generationsRemaining"] == 10
    assert (fresh["periodStart"], fresh["periodResetsAt"]) == monthly_period_containing(
        signed_up, now
    )
    assert consume(client, 1, "next-month").status_code == 200
    entries = client.get("/api/usage", headers=auth_headers(USER)).get_json()["entries"]
    assert [(e["kind"], e["reason"], e["count"]) for e in entries] == [
        ("consume", None, 1),
        ("reset", "free_period", 10),
    ]
    # Reading again in the same period does not reset again.
    assert entitlements(client)["generationsUsed"] == 1


def test_upgrading_lifts_the_limit_at_once_and_downgrading_applies_the_free_limit(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    consume(client, 10, "free-quota")
    assert consume(client, 1, "blocked").status_code == 402
    subscribe(client, billing, USER)
    pro = entitlements(client)
    assert (pro["tier"], pro["status"]) == ("pro", "active")
    assert pro["generationsLimit"] is None and pro["generationsRemaining"] is None
    assert "hd_quality" in pro["features"]
    assert pro["generationsUsed"] == 10  # carried over: upgrading lifts the limit, it's no reset
    sub = client.get("/api/me", headers=auth_headers(USER)).get_json()["subscription"]
    assert (pro["periodStart"], pro["periodResetsAt"]) == (
        sub["currentPeriodStart"],
        sub["currentPeriodEnd"],
    )

    big = consume(client, 100, "pro-1")
    assert big.status_code == 200 and big.get_json()["generationsLimit"] is None
    assert big.get_json()["generationsRemaining"] is None
    consume(client, 40, "pro-2")

    cancelled = client.post(
        "/api/cancel-subscription", json={"immediately": True}, headers=auth_headers(USER)
    )
    assert cancelled.status_code == 200
    billing.wait_for_webhooks()
    free = entitlements(client)
    assert (free["tier"], free["status"], free["generationsLimit"]) == ("free", "canceled", 10)
    assert free["generationsUsed"] == 150 and free["generationsRemaining"] == 0
    refused = consume(client, 1, "after-downgrade")
    assert refused.status_code == 402
    assert refused.get_json()["error"]["upgrade"] == "/api/create-checkout-session"
    with app.app_context():
        row = db.session.get(User, USER)
        assert (row.subscription_tier, row.generations_limit) == ("free", 10)


def subscription_event(billing: Billing, sub_id: str, **changes: Any) -> dict[str, Any]:
    obj = billing.gateway.retrieve_subscription(sub_id)
    obj.update(changes)
    return {
        "id": f"evt_test_{sub_id}_{changes.get('status', 'x')}",
        "object": "event",
        "type": "customer.subscription.updated",
        "created": int(time.time()) + 60,
        "data": {"object": obj},
    }


@pytest.fixture
def three_day_grace(app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plans = {
        "plans": {
            "free": {"generationsPerPeriod": 5, "features": ["generate"]},
            "pro": {
                "prices": ["monthly", "yearly"],
                "generationsPerPeriod": 1000,
                "features": ["generate", "hd"],
            },
        },
        "grace": {"pastDueDays": 3},
    }
    path = tmp_path / "plans.json"
    path.write_text(json.dumps(plans))
    monkeypatch.setitem(app.config, "PLANS_FILE", str(path))


def test_past_due_keeps_pro_for_the_configured_grace_then_falls_to_free(
    app: Flask, client: FlaskClient, billing: Billing, three_day_grace: None
) -> None:
    subscribe(client, billing, USER)
    pro = entitlements(client)
    assert (pro["tier"], pro["generationsLimit"], pro["features"]) == (
        "pro",
        1000,
        ["generate", "hd"],
    )
    sub_id = client.get("/api/me", headers=auth_headers(USER)).get_json()["subscription"]["id"]

    reply = post_webhook(
        client, subscription_event(billing, sub_id, status="past_due"), billing.webhook_secret
    )
    assert reply.status_code == 200
    with app.app_context():
        since = db.session.get(Subscription, sub_id).past_due_since
    assert since is not None and abs(since - time.time() * 1000) < 60_000
    grace = entitlements(client)
    assert (grace["tier"], grace["status"]) == ("pro", "past_due")
    assert grace["accessEndsAt"] == since + 3 * DAY_MS
    consume(client, 7, "during-grace")

    # Three days later with no word from Stripe: the policy alone moves the user to free, and
    # the 7 already used count against the free limit of 5.
    run_sql(
        app,
        update(Subscription)
        .where(Subscription.id == sub_id)
        .values(past_due_since=since - 3 * DAY_MS),
    )
    lapsed = entitlements(client)
    assert (lapsed["tier"], lapsed["generationsLimit"]) == ("free", 5)
    assert (lapsed["generationsUsed"], lapsed["generationsRemaining"]) == (7, 0)
    assert consume(client, 1, "after-grace").status_code == 402

    # The retry succeeds: back to active, pro again at once, same period and count.
    event = subscription_event(billing, sub_id, status="active")
    event["id"] = "evt_test_recovered"
    event["created"] += 1
    assert post_webhook(client, event, billing.webhook_secret).status_code == 200
    with app.app_context():
        assert db.session.get(Subscription, sub_id).past_due_since is None
    again = entitlements(client)
    assert (again["tier"], again["generationsUsed"]) == ("pro", 7)


def test_a_pending_cancel_ends_at_the_period_end_even_if_the_webhook_is_late(
    app: Flask, client: FlaskClient, billing: Billing
) -> None:
    subscribe(client, billing, USER)
    client.post("/api/cancel-subscription", json={}, headers=auth_headers(USER))
    billing.wait_for_webhooks()
    pending = entitlements(client)
    assert pending["tier"] == "pro"
    assert pending["accessEndsAt"] == pending["periodResetsAt"]
    consume(client, 30, "last-month")

    # The period ends and customer.subscription.deleted has not arrived: move the period back.
    ended = int(time.time() * 1000) - 1000
    with app.app_context():
        row = db.session.get(User, USER)
        length = row.usage_period_end - row.usage_period_start
        sub_id = row.stripe_subscription_id
    run_sql(
        app,
        update(Subscription)
        .where(Subscription.id == sub_id)
        .values(current_period_start=ended - length, current_period_end=ended, cancel_at=ended),
    )
    run_sql(
        app,
        update(User)
        .where(User.id == USER)
        .values(usage_period_start=ended - length, usage_period_end=ended),
    )
    free = entitlements(client)
    assert (free["tier"], free["status"], free["accessEndsAt"]) == ("free", "active", None)
    # The paid period is over, so the free one starts from zero.
    assert (free["generationsUsed"], free["generationsRemaining"]) == (0, 10)
    assert free["periodResetsAt"] > time.time() * 1000
    entries = client.get("/api/usage", headers=auth_headers(USER)).get_json()["entries"]
    assert [(e["kind"], e["reason"], e["count"]) for e in entries] == [("reset", "plan_change", 30)]


def test_the_openapi_document_lists_the_usage_operations(client: FlaskClient) -> None:
    document = client.get("/api/openapi.json").get_json()
    consume_op = document["paths"]["/api/usage/generations"]["post"]
    assert set(consume_op["responses"]) >= {"200", "401", "402", "409", "422"}
    schema = document["components"]["schemas"]["ConsumeGenerationsRequest"]
    assert schema["properties"]["count"]["maximum"] == 100
    assert "/api/me/entitlements" in document["paths"] and "/api/usage" in document["paths"]
