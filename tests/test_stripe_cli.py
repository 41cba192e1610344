"""The sandbox's Stripe-CLI commands against the app: ``listen --forward-to`` registers an
endpoint and forwards signed events; ``trigger`` makes them happen through the API; the app
verifies and applies them. Both run as separate processes, as a developer runs them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import requests
from flask import Flask
from sqlalchemy import select
from support import TEST_STRIPE_KEY, Billing

from app.billing.webhooks.handlers import HANDLED_EVENT_TYPES
from app.extensions import db
from app.models import User, WebhookEvent
from stripe_sandbox.cli.recipes import RECIPES

ROOT = Path(__file__).resolve().parents[1]


def sandbox_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "stripe_sandbox", *args]


def test_trigger_has_a_recipe_for_every_type_the_app_handles() -> None:
    assert set(HANDLED_EVENT_TYPES) <= set(RECIPES)


def test_listen_and_trigger_deliver_a_signed_event_that_the_app_applies(
    app: Flask, billing: Billing
) -> None:
    sandbox_url = billing.sandbox.url
    assert sandbox_url
    auth = {"Authorization": f"Bearer {TEST_STRIPE_KEY}"}
    # only what `listen` forwards may reach the app: remove the endpoint the fixture made
    for endpoint in requests.get(f"{sandbox_url}/v1/webhook_endpoints", headers=auth).json()[
        "data"
    ]:
        requests.delete(f"{sandbox_url}/v1/webhook_endpoints/{endpoint['id']}", headers=auth)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STRIPE_API_BASE": sandbox_url}
    listen = subprocess.Popen(
        sandbox_cli(
            "listen",
            "--forward-to",
            f"{billing.live_url.removeprefix('http://')}/api/webhooks/stripe",
            "--events",
            ",".join(HANDLED_EVENT_TYPES),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert listen.stdout is not None
        ready = listen.stdout.readline()
        secret = re.search(r"whsec_\w+", ready)
        assert secret, ready + listen.stderr.read() if listen.poll() is not None else ready
        app.config["STRIPE_WEBHOOK_SECRET"] = secret.group(0)
        triggered = subprocess.run(
            sandbox_cli(
                "trigger",
                "checkout.session.completed",
                "--add",
                "checkout_session:client_reference_id=cli-user",
            ),
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=60,
        )
        assert triggered.returncode == 0, triggered.stderr
        assert "Trigger succeeded!" in triggered.stdout
        billing.wait_for_webhooks()
    finally:
        listen.send_signal(signal.SIGTERM)
        out, err = listen.communicate(timeout=15)
    assert listen.returncode == 0, err
    assert "--> checkout.session.completed [evt_" in out
    assert re.search(r"<--  \[200\] POST http://127\.0\.0\.1:\d+/api/webhooks/stripe", out)
    assert "[400]" not in out  # every delivery was signed with the secret listen printed

    with app.app_context():
        user = db.session.get(User, "cli-user")
        assert user is not None and user.stripe_subscription_id
        assert user.subscription_tier == "pro" and user.subscription_status == "active"
        applied = db.session.scalars(
            select(WebhookEvent).where(WebhookEvent.type == "checkout.session.completed")
        ).all()
        assert [e.processed for e in applied] == [True]
    left = requests.get(f"{sandbox_url}/v1/webhook_endpoints", headers=auth).json()["data"]
    assert left == []  # listen removed its endpoint on the way out
