"""Standalone use: the CLI serves, state persists to a JSON file, WSGI in-process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import requests
from sandbox_helpers import API_KEY
from werkzeug.test import Client

from stripe_sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def test_cli_serves(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stripe_sandbox",
            "--port",
            "0",
            "--state",
            str(state),
            "--retry-time-scale",
            "0.001",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line, line + proc.stderr.read()
        url = line.split("listening on ")[1].split()[0]
        created = requests.post(
            f"{url}/v1/customers", data={"email": "cli@example.com"}, headers=AUTH, timeout=10
        )
        assert created.status_code == 200 and created.json()["id"].startswith("cus_")
        config = requests.get(f"{url}/_sandbox/config", timeout=10).json()
        assert config["retry_time_scale"] == 0.001
        assert state.exists()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_state_persists_across_instances(tmp_path: Path) -> None:
    path = str(tmp_path / "sandbox.json")
    first = Client(Sandbox(state_path=path).wsgi_app)
    made = first.post("/v1/customers", data={"email": "keep@example.com"}, headers=AUTH)
    assert made.status_code == 200
    customer_id = made.get_json()["id"]

    second = Client(Sandbox(state_path=path).wsgi_app)
    fetched = second.get(f"/v1/customers/{customer_id}", headers=AUTH)
    assert fetched.status_code == 200 and fetched.get_json()["email"] == "keep@example.com"
    listed = second.get("/v1/customers", query_string={"email": "keep@example.com"}, headers=AUTH)
    assert [c["id"] for c in listed.get_json()["data"]] == [customer_id]


def test_wsgi_app_in_process_and_hosted_urls_follow_host() -> None:
    sandbox = Sandbox()
    client = Client(sandbox.wsgi_app)
    product = client.post("/v1/products", data={"name": "P"}, headers=AUTH).get_json()
    price = client.post(
        "/v1/prices",
        headers=AUTH,
        data={
            "product": product["id"],
            "currency": "usd",
            "unit_amount": "100",
            "recurring[interval]": "month",
        },
    ).get_json()
    session = client.post(
        "/v1/checkout/sessions",
        headers=AUTH,
        base_url="http://billing.test:4242",
        data={
            "mode": "subscription",
            "customer_email": "h@example.com",
            "line_items[0][price]": price["id"],
            "line_items[0][quantity]": "1",
        },
    ).get_json()
    assert session["url"] == f"http://billing.test:4242/checkout/{session['id']}"
    page = client.get(f"/checkout/{session['id']}")
    assert page.status_code == 200 and b'id="card_number"' in page.data
    assert sandbox.requests[-1]["path"] == "/v1/checkout/sessions"
