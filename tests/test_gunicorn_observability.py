"""The production server (gunicorn.conf.py, two workers): JSON logs with request ids, metrics
added up across workers, and, in development, `make run`'s composition: bin/dev-stack starts
the Stripe sandbox once for all workers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from processes import ROOT, base_env, flask_cli, free_port, gunicorn
from support import CARD_OK, Billing, auth_headers, pay_hosted_checkout, sign_payload, wait_until

pytestmark = pytest.mark.slow


def _metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition text (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()) and len(found) == len(labels):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _post_webhook(url: str, event: dict, secret: str, request_id: str) -> requests.Response:
    payload = json.dumps(event)
    return requests.post(
        f"{url}/api/webhooks/stripe",
        data=payload,
        headers={
            "Stripe-Signature": sign_payload(payload, secret),
            "Content-Type": "application/json",
            "X-Request-ID": request_id,
        },
        timeout=10,
    )


def test_two_workers_json_logs_request_ids_and_metrics(
    app: Flask, billing: Billing, tmp_path: Path
) -> None:
    env = base_env(
        APP_ENV="testing",
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
        WEB_CONCURRENCY="2",
        WEB_THREADS="2",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        DATABASE_URL=app.config["DATABASE_URL"],
        STRIPE_SECRET_KEY=app.config["STRIPE_SECRET_KEY"],
        STRIPE_API_BASE=billing.sandbox.url,
        STRIPE_MAX_NETWORK_RETRIES="0",
        STRIPE_WEBHOOK_SECRET="whsec_gunicorn_test",
        STRIPE_PRICE_ID_MONTHLY=billing.monthly,
        STRIPE_PRICE_ID_YEARLY=billing.yearly,
        AUTH_JWT_SECRET=app.config["AUTH_JWT_SECRET"],
        FRONTEND_URL="http://localhost:5173",
    )
    with gunicorn(tmp_path, env) as server:
        checkout = requests.post(
            f"{server.url}/api/create-checkout-session",
            json={"plan": "monthly"},
            headers={**auth_headers("metrics-user"), "X-Request-ID": "rid-checkout-1"},
            timeout=10,
        )
        assert checkout.status_code == 200, checkout.text
        assert checkout.headers["X-Request-ID"] == "rid-checkout-1"

        event = {
            "id": "evt_gunicorn_1",
            "object": "event",
            "type": "invoice.payment_failed",
            "created": int(time.time()),
            "data": {"object": {"id": "in_gunicorn_1", "object": "invoice", "customer": None}},
        }
        hook = _post_webhook(server.url, event, "whsec_gunicorn_test", "rid-webhook-1")
        assert hook.status_code == 200 and hook.json()["status"] == "recorded", hook.text

        # Enough parallel requests that both workers serve some (checked in the logs below).
        served_by: set[int] = set()
        sent = 0
        with ThreadPoolExecutor(8) as pool:
            for _ in range(20):
                batch = list(
                    pool.map(
                        lambda _: requests.get(f"{server.url}/api/openapi.json", timeout=10),
                        range(16),
                    )
                )
                sent += len(batch)
                assert all(r.status_code == 200 for r in batch)
                served_by = {
                    line["pid"]
                    for line in server.json_lines()
                    if line.get("route") == "/api/openapi.json"
                }
                if len(served_by) >= 2:
                    break
        assert len(served_by) == 2, "one worker served every request"

        # The 200 said "recorded": the event is applied after it, by a worker's applier thread.
        # Wait for that (bounded) before every scrape below must count it.
        applied = {"type": "invoice.payment_failed", "outcome": "applied"}
        wait_until(
            lambda: (
                _metric(
                    requests.get(f"{server.url}/metrics", timeout=10).text,
                    "billing_webhook_events_total",
                    **applied,
                )
                >= 1
            ),
            timeout=15,
        )

        # Every scrape, whichever worker answers it, adds up all workers' counts.
        for _ in range(6):
            text = requests.get(f"{server.url}/metrics", timeout=10).text
            assert (
                _metric(
                    text,
                    "billing_http_requests_total",
                    method="POST",
                    route="/api/create-checkout-session",
                    status="200",
                )
                == 1
            )
            assert (
                _metric(
                    text,
                    "billing_http_requests_total",
                    method="GET",
                    route="/api/openapi.json",
                    status="200",
                )
                == sent
            )
            assert (
                _metric(
                    text,
                    "billing_webhook_events_total",
                    type="invoice.payment_failed",
                    outcome="applied",
                )
                == 1
            )
            assert (
                _metric(
                    text,
                    "billing_stripe_calls_total",
                    operation="create_checkout_session",
                    outcome="ok",
                )
                == 1
            )
            assert (
                _metric(
                    text,
                    "billing_stripe_call_duration_seconds_count",
                    operation="create_checkout_session",
                )
                == 1
            )
            assert (
                _metric(
                    text,
                    "billing_http_request_duration_seconds_count",
                    method="POST",
                    route="/api/create-checkout-session",
                )
                == 1
            )

        lines = server.json_lines()  # every line, gunicorn's own included, is JSON

    assert any(line["logger"] == "gunicorn.error" for line in lines)
    checkout_lines = [line for line in lines if line.get("request_id") == "rid-checkout-1"]
    request_line = next(line for line in checkout_lines if line["message"] == "request")
    assert request_line["method"] == "POST"
    assert request_line["route"] == "/api/create-checkout-session"
    assert request_line["status"] == 200
    assert request_line["user_id"] == "metrics-user"
    assert request_line["duration_ms"] > 0
    stripe_lines = [line for line in checkout_lines if line["message"] == "stripe call"]
    assert {"create_customer", "create_checkout_session"} <= {
        line["operation"] for line in stripe_lines
    }
    assert all(line["stripe_request_id"].startswith("req_") for line in stripe_lines)
    # All lines of that request came from one worker and carry its id; no other line does.
    assert len({line["pid"] for line in checkout_lines}) == 1

    webhook_lines = [line for line in lines if line.get("request_id") == "rid-webhook-1"]
    delivery = next(line for line in webhook_lines if line["message"] == "request")
    assert (delivery["event_id"], delivery["outcome"]) == ("evt_gunicorn_1", "recorded")
    batch_line = next(line for line in lines if line["message"] == "webhook batch")
    assert batch_line["first_event_id"] == "evt_gunicorn_1"
    assert batch_line["event_types"] == {"invoice.payment_failed": 1}
    assert (batch_line["events"], batch_line["applied"]) == (1, 1)
    assert batch_line["lag_ms_max"] >= 0


def test_make_run_composes_the_sandbox_for_every_worker(
    app: Flask, billing: Billing, tmp_path: Path
) -> None:
    """`make run`'s composition under two workers: bin/dev-stack starts the Stripe sandbox once,
    seeds it with the app's own setup commands and gives both workers its settings (the app
    itself starts no sandbox); a purchase works; the CLI in another terminal finds the sandbox
    through the published settings, which go away with the stack."""
    port = free_port()
    info_file = tmp_path / "stripe-sandbox.json"
    env = base_env(
        APP_ENV="development",
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
        WEB_CONCURRENCY="2",
        WEB_THREADS="2",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        DATABASE_URL=app.config["DATABASE_URL"],
        SANDBOX_PORT="0",
        GITHUB_SANDBOX_PORT="0",
        SANDBOX_INFO_FILE=str(info_file),
        PUBLIC_URL=f"http://127.0.0.1:{port}",
        AUTH_JWT_SECRET=app.config["AUTH_JWT_SECRET"],
        FRONTEND_URL="http://localhost:5173",
    )
    launcher = [sys.executable, str(ROOT / "bin" / "dev-stack"), "--"]
    with gunicorn(tmp_path, env, port=port, launcher=launcher) as server:
        announced = server.wait_for_line(r"dev-stack: Stripe sandbox at (http://\S+)")
        published = json.loads(info_file.read_text())
        assert published["STRIPE_API_BASE"] == announced.group(1)
        assert published["STRIPE_WEBHOOK_SECRET"].startswith("whsec_")
        created = requests.post(
            f"{server.url}/api/create-checkout-session",
            json={"plan": "monthly"},
            headers=auth_headers("dev-worker-user"),
            timeout=10,
        )
        assert created.status_code == 200, created.text
        session_url = created.json()["session"]["url"]
        assert session_url.startswith(announced.group(1))
        paid = pay_hosted_checkout(session_url, CARD_OK)
        assert paid.status_code == 303
        deadline = time.monotonic() + 20
        me: dict[str, Any] = {}
        while time.monotonic() < deadline and me.get("user", {}).get("tier") != "pro":
            me = requests.get(
                f"{server.url}/api/me", headers=auth_headers("dev-worker-user"), timeout=10
            ).json()
            time.sleep(0.2)
        assert me["user"]["tier"] == "pro"
        # The seeded monthly price, from `flask billing setup-products` in the sandbox.
        assert me["subscription"]["priceId"] == published["STRIPE_PRICE_ID_MONTHLY"]

        # `flask billing sync` in development uses the stack's sandbox (no key needed) and
        # knows the seeded prices (no "in no plan" warning).
        synced = flask_cli("billing", "sync", env={**env, "LOG_FORMAT": "text"})
        assert synced.returncode == 0, synced.stderr
        assert "checked 1 subscription(s): 0 change(s), 0 pending, 0 error(s)" in synced.stdout
        assert "in no plan" not in synced.stderr
        assert "STRIPE_SECRET_KEY is not set" not in synced.stderr
        time.sleep(1)  # a crash-looping worker would be rebooted by now
        lines = [json.loads(line) for line in server.lines() if line.startswith("{")]

    booted = [line for line in lines if "Booting worker" in line["message"]]
    assert len(booted) == 2, "a worker was restarted"
    assert not info_file.exists(), "the stack's settings outlived it"
    # With the stack gone, serving without a key refuses with one line naming `make run`.
    refused = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "run", "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 3
    assert "`make run`" in refused.stderr and "Traceback" not in refused.stderr
