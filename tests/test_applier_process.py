"""Issue 19: where the webhook applier runs. WEBHOOK_APPLIER=process (production's default):
gunicorn's master keeps one `flask billing apply` process per host, starts it again when it dies
and stops it with the server; `thread` (development's default) and `off` stay.

The supervisor is tested on a stand-in child (a sleeping Python), then the real thing: gunicorn
with gunicorn.conf.py, the applier process applying what the workers recorded, SIGKILLed and
started again, and gone when the server stops."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from processes import base_env, gunicorn
from sqlalchemy import func, select
from support import Billing, sign_payload

from app.billing.webhooks.applier_process import ApplierProcess
from app.config import applier_problems
from app.extensions import db
from app.models import WebhookEvent

SECRET = "whsec_applier_process_test"


def wait_for(condition: Callable[[], Any], timeout: float = 30, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or condition}")


def stat_fields(stat: Path) -> list[str]:
    """A /proc stat file's fields from the third (state) on: the command before it may hold
    spaces and parentheses, so the split starts after its last ')'."""
    return stat.read_text().rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) is not alive either.
    return stat_fields(Path(f"/proc/{pid}/stat"))[0] != "Z"


@pytest.mark.parametrize(
    ("settings", "production", "mode", "poll"),
    [
        ({}, True, "process", 0.05),  # production: one applier process per host
        ({}, False, "thread", 0.5),  # development, tests: a thread, `flask run` needs no more
        ({"WEBHOOK_APPLIER": "off"}, True, "off", 0.05),  # operators' `flask billing apply`
        ({"WEBHOOK_APPLIER": "thread"}, True, "thread", 0.5),
        ({"WEBHOOK_APPLIER": "process", "WEBHOOK_APPLY_POLL_SECONDS": 0.2}, False, "process", 0.2),
    ],
)
def test_the_applier_runs_where_the_environment_says(
    settings: dict[str, Any], production: bool, mode: str, poll: float
) -> None:
    config = {"WEBHOOK_APPLIER": "", "WEBHOOK_APPLY_POLL_SECONDS": 0.0, **settings}
    assert applier_problems(config, production=production) == []
    assert (config["WEBHOOK_APPLIER"], config["WEBHOOK_APPLY_POLL_SECONDS"]) == (mode, poll)


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"WEBHOOK_APPLIER": "threads"}, "WEBHOOK_APPLIER must be one of: process, thread, off"),
        ({"WEBHOOK_APPLY_POLL_SECONDS": -1.0}, "WEBHOOK_APPLY_POLL_SECONDS must not be negative"),
        ({"WEBHOOK_APPLIER_NICE": 40}, "WEBHOOK_APPLIER_NICE must be between -20 and 19"),
        ({"WEBHOOK_APPLY_THREADS": 0}, "WEBHOOK_APPLY_THREADS must be between 1 and 16"),
    ],
)
def test_a_bad_applier_setting_is_refused(settings: dict[str, Any], problem: str) -> None:
    config = {"WEBHOOK_APPLIER": "", "WEBHOOK_APPLY_POLL_SECONDS": 0.0, **settings}
    assert applier_problems(config, production=True) == [problem]


def test_the_supervisor_starts_the_process_again_when_it_dies_and_stops_it() -> None:
    exited: list[int] = []
    child = ApplierProcess(
        [sys.executable, "-c", "import time; time.sleep(120)"],
        on_exit=exited.append,
        first_pause=0.1,
    )
    child.start()
    try:
        first = wait_for(lambda: child.pid, 10, "the first child")
        os.kill(first, signal.SIGKILL)
        second = wait_for(lambda: child.pid not in (None, first) and child.pid, 10, "a new one")
        assert exited == [first], "the dead child's metrics files are let go"
        assert child.starts == 2
    finally:
        child.stop(timeout=5)
    assert not alive(second), "stop() stops the child"
    assert child.pid is None and exited == [first, second]


def applier_pids(master: int) -> list[int]:
    """The master's children running `flask ... billing apply`."""
    found = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True)
    pids = []
    for pid in (int(p) for p in found.stdout.split()):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"billing" in argv and b"apply" in argv and alive(pid):
            pids.append(pid)
    return pids


def thread_nices(pid: int) -> set[int]:
    """The niceness of each of a process's threads (Linux keeps one per thread)."""
    # Field 19 of stat is the nice value; stat_fields starts at field 3.
    return {int(stat_fields(task / "stat")[16]) for task in Path(f"/proc/{pid}/task").iterdir()}


def event(n: int, start: int) -> dict[str, Any]:
    """A signed-able event the app records and, with no handler to run, applies as ignored."""
    return {
        "id": f"evt_applier_process_{n}",
        "object": "event",
        "type": "customer.created",
        "created": start + n,
        "data": {"object": {"id": f"cus_applier_process_{n}", "object": "customer"}},
    }


def deliver(url: str, body: dict[str, Any]) -> None:
    payload = json.dumps(body)
    headers = {"Stripe-Signature": sign_payload(payload, SECRET)}
    reply = requests.post(url, data=payload, headers=headers, timeout=10)
    assert reply.status_code == 200, reply.text


def pending_of(app: Flask, prefix: str) -> int:
    with app.app_context():
        count = db.session.execute(
            select(func.count())
            .select_from(WebhookEvent)
            .where(WebhookEvent.id.like(f"{prefix}%"), WebhookEvent.processed.is_(False))
        ).scalar_one()
        db.session.rollback()
    return int(count)


def test_gunicorn_keeps_one_applier_process_that_applies_and_survives_a_kill_9(
    app: Flask, billing: Billing, tmp_path: Path
) -> None:
    app.extensions["webhook_applier"].stop()  # only the server's applier process applies
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
        STRIPE_WEBHOOK_SECRET=SECRET,
        AUTH_JWT_SECRET=app.config["AUTH_JWT_SECRET"],
        RATE_LIMIT_ENABLED="false",
        WEBHOOK_APPLIER="process",
    )
    start = int(time.time())
    with gunicorn(tmp_path, env) as server:
        url = f"{server.url}/api/webhooks/stripe"
        first = wait_for(lambda: applier_pids(server.process.pid), 30, "the applier process")
        assert len(first) == 1, "one applier process per host, not one per worker"
        # Under a burst the request threads get the CPU first (WEBHOOK_APPLIER_NICE, 19).
        expected = min(19, os.getpriority(os.PRIO_PROCESS, server.process.pid) + 19)
        started = f"applying webhook events (pid {first[0]}"
        wait_for(lambda: any(started in line for line in server.lines()), 30, started)
        assert thread_nices(first[0]) == {expected}
        for n in range(20):
            deliver(url, event(n, start))
        wait_for(lambda: pending_of(app, "evt_applier_process_") == 0, 30, "the first events")

        os.kill(first[0], signal.SIGKILL)
        second = wait_for(
            lambda: [p for p in applier_pids(server.process.pid) if p != first[0]],
            30,
            "a new applier process:\n" + "\n".join(server.lines()),
        )
        assert len(second) == 1
        for n in range(20, 40):
            deliver(url, event(n, start))
        wait_for(lambda: pending_of(app, "evt_applier_process_") == 0, 30, "the later events")
        metrics = requests.get(f"{server.url}/metrics", timeout=10).text
        assert 'billing_webhook_events_total{outcome="ignored",type="customer.created"}' in metrics
    assert not alive(second[0]), "the applier process stops with the server"
    lines = server.lines()
    assert any("webhook applier (pid" in line and "exited" in line for line in lines)
