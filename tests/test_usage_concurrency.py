"""Parallel consumption through the real HTTP stack (the app served on a port, many client
threads released together): the limit holds exactly and a key is counted once, on SQLite and
on PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import requests
from flask import Flask
from sqlalchemy import func, select
from support import Billing, auth_headers

from app.extensions import db
from app.models import UsageLedgerEntry, User


def fire_together(count: int, request: Callable[[int], requests.Response]) -> list[Any]:
    """Run `request(i)` for i in range(count), each on its own thread, all released at once."""
    start = threading.Barrier(count)
    replies: list[Any] = [None] * count

    def worker(index: int) -> None:
        start.wait()
        try:
            replies[index] = request(index)
        except Exception as exc:  # surfaced by the assertions, not lost in the thread
            replies[index] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return replies


def ledger_results(app: Flask, user_id: str) -> Counter[str]:
    with app.app_context():
        rows = db.session.execute(
            select(UsageLedgerEntry.result, func.count())
            .where(UsageLedgerEntry.user_id == user_id)
            .group_by(UsageLedgerEntry.result)
        ).all()
        return Counter({result: n for result, n in rows})


def used(app: Flask, user_id: str) -> int:
    with app.app_context():
        return db.session.get(User, user_id).generations_used


def test_200_parallel_requests_at_a_limit_of_10_grant_exactly_10(
    app: Flask, billing: Billing, live_url: str
) -> None:
    # A user never seen before: the burst also races to create the row and settle its period.
    user = "racer"
    headers = auth_headers(user)

    def consume_one(index: int) -> requests.Response:
        return requests.post(
            f"{live_url}/api/usage/generations",
            json={"count": 1, "idempotencyKey": f"race-{index}"},
            headers=headers,
            timeout=60,
        )

    began = time.perf_counter()
    replies = fire_together(200, consume_one)
    elapsed = time.perf_counter() - began
    failures = [r for r in replies if not isinstance(r, requests.Response)]
    assert not failures, failures[:3]
    assert Counter(r.status_code for r in replies) == {200: 10, 402: 190}, elapsed
    # Each success saw its own value of the counter: no two were granted on the same state.
    seen = sorted(r.json()["generationsUsed"] for r in replies if r.status_code == 200)
    assert seen == list(range(1, 11))
    assert all(
        r.json()["error"]["code"] == "quota_exceeded" for r in replies if r.status_code == 402
    )
    assert used(app, user) == 10
    assert ledger_results(app, user) == {"granted": 10, "refused": 190}


def test_one_key_sent_50_times_at_once_is_counted_once(
    app: Flask, billing: Billing, live_url: str
) -> None:
    # Never seen before either: settling the first period races with claiming the key.
    user = "double-clicker"
    headers = auth_headers(user)

    def same_key(_: int) -> requests.Response:
        return requests.post(
            f"{live_url}/api/usage/generations",
            json={"count": 3, "idempotencyKey": "the-same-click"},
            headers=headers,
            timeout=60,
        )

    replies = fire_together(50, same_key)
    assert all(isinstance(r, requests.Response) and r.status_code == 200 for r in replies), [
        getattr(r, "status_code", r) for r in replies
    ]
    bodies = [r.json() for r in replies]
    assert sum(1 for b in bodies if not b["replayed"]) == 1
    assert {(b["granted"], b["generationsUsed"]) for b in bodies} == {(3, 3)}
    assert used(app, user) == 3
    assert ledger_results(app, user) == {"granted": 1}


def test_a_settled_users_burst_and_double_clicks_take_the_one_statement_path_exactly(
    app: Flask, billing: Billing, live_url: str
) -> None:
    # A user whose plan and period are settled: on PostgreSQL each consume is one statement
    # in autocommit, and a key sent twice at once loses on the key's unique constraint.
    user = "settled-racer"
    headers = auth_headers(user)
    url = f"{live_url}/api/usage/generations"
    warm = requests.post(url, json={"count": 1, "idempotencyKey": "warm"}, headers=headers)
    assert warm.status_code == 200, warm.text

    def consume_one(index: int) -> requests.Response:
        # Ten keys, each sent five times at once, plus forty distinct ones: 50 keys for the
        # 9 generations left.
        key = f"click-{index % 10}" if index < 50 else f"single-{index}"
        return requests.post(url, json={"count": 1, "idempotencyKey": key}, headers=headers)

    replies = fire_together(90, consume_one)
    failures = [r for r in replies if not isinstance(r, requests.Response)]
    assert not failures, failures[:3]
    statuses = Counter(r.status_code for r in replies)
    assert set(statuses) <= {200, 402}, statuses
    firsts = [r.json() for r in replies if r.headers.get("Idempotent-Replayed") != "true"]
    granted = [b for b in firsts if "granted" in b]
    assert sorted(b["generationsUsed"] for b in granted) == list(range(2, 11))
    assert used(app, user) == 10
    assert ledger_results(app, user) == {"granted": 10, "refused": 50 - 9}
    # Every reply for a key is its first answer (replayed or not).
    by_key: dict[str, list[Any]] = {}
    for index, reply in enumerate(replies):
        key = f"click-{index % 10}" if index < 50 else f"single-{index}"
        body = reply.json()
        answer = body.get("error", body)
        by_key.setdefault(key, []).append({k: v for k, v in answer.items() if k != "replayed"})
    assert all(a == answers[0] for answers in by_key.values() for a in answers), by_key
