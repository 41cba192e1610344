"""Issue 18: right under real Stripe latency, a black-holed Stripe, a hung Redis and a frozen
database. Each test serves the app on a real port with a fixed number of request threads (as a
gunicorn gthread worker has) and breaks a real dependency: the sandbox's delay and black-hole
modes, a TCP listener that accepts and never answers, the TCP proxy holding traffic."""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from app_instance import serve_instance
from conftest import Billing, auth_headers
from flask import Flask

from app.billing.errors import ProviderUnavailable
from app.stripe.guards import Bulkhead

pytestmark = pytest.mark.slow

# A deploy with WEB_THREADS=8 (as .env.example has): the bulkhead is sized from it.
THREADS = 8


@contextmanager
def stripe_faults(billing: Billing, **faults: Any) -> Iterator[None]:
    billing.sandbox.configure(fault_path="/v1/", **faults)
    try:
        yield
    finally:
        billing.sandbox.configure(
            fault_answer_delay=0.0, fault_answer_jitter=0.0, fault_blackhole=False
        )


def checkout(url: str, user: str, timeout: float = 60) -> tuple[int, float, str]:
    started = time.monotonic()
    try:
        reply = requests.post(
            f"{url}/api/create-checkout-session",
            json={"plan": "monthly"},
            headers=auth_headers(user),
            timeout=timeout,
        )
    except requests.RequestException as exc:
        return 0, time.monotonic() - started, type(exc).__name__
    code = reply.json().get("error", {}).get("code", "") if reply.status_code != 200 else ""
    return reply.status_code, time.monotonic() - started, code


def all_at_once(count: int, work: Any) -> list[Any]:
    """`count` calls of work(n) released together."""
    gate = threading.Barrier(count)

    def run(n: int) -> Any:
        gate.wait()
        return work(n)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


# -- 1. the Stripe-call bulkhead ------------------------------------------------------------------


def test_the_bulkhead_hands_slots_out_first_come_first_served() -> None:
    bulkhead = Bulkhead(1, wait=5.0)
    release = threading.Event()
    order: list[int] = []
    holder = threading.Thread(target=bulkhead.run, args=(release.wait,))
    holder.start()
    time.sleep(0.05)
    waiters = []
    for n in range(4):
        waiter = threading.Thread(target=bulkhead.run, args=(lambda n=n: order.append(n),))
        waiter.start()
        waiters.append(waiter)
        time.sleep(0.05)  # queued in this order
    release.set()
    for thread in [holder, *waiters]:
        thread.join(5)
    assert order == [0, 1, 2, 3]


def test_a_bulkhead_whose_slots_are_all_stuck_refuses_at_once() -> None:
    bulkhead = Bulkhead(2, wait=0.3)
    release = threading.Event()
    holders = [threading.Thread(target=bulkhead.run, args=(release.wait,)) for _ in range(2)]
    for holder in holders:
        holder.start()
    try:
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable):  # slots young: waits its turn, then refused
            bulkhead.run(lambda: None)
        assert 0.25 < time.monotonic() - started < 1.0
        time.sleep(0.1)  # both calls are now older than a normal one: Stripe looks hung
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable):
            bulkhead.run(lambda: None)
        assert time.monotonic() - started < 0.05
    finally:
        release.set()
        for holder in holders:
            holder.join(5)
    assert bulkhead.run(lambda: "free again") == "free again"


def test_32_buyers_at_once_against_a_normal_speed_stripe_are_all_served(
    app: Flask, billing: Billing
) -> None:
    """Finding 1: with 4 slots and a 0.1 s wait, 8 of 16 buyers got 503 while Stripe answered
    in 0.3 s. Stripe answers in 0.3-0.5 s here; every one of 32 simultaneous buyers gets a
    checkout session."""
    with (
        serve_instance(app, threads=THREADS, WEB_THREADS=THREADS) as instance,
        stripe_faults(billing, fault_answer_delay=0.3, fault_answer_jitter=0.2),
    ):
        assert instance.app.config["STRIPE_MAX_CONCURRENT_CALLS"] == THREADS - 1
        results = all_at_once(32, lambda n: checkout(instance.url, f"slow-stripe-buyer-{n}"))
    outcomes = Counter((status, code) for status, _, code in results)
    print("checkouts:", dict(outcomes), f"max {max(s for _, s, _ in results):.2f} s")
    assert outcomes == {(200, ""): 32}, outcomes


def test_a_black_holed_stripe_refuses_checkouts_within_15_s_and_reads_keep_answering(
    app: Flask, billing: Billing
) -> None:
    """Finding 1's other half: production's timeouts (5 s read, one retry) against a Stripe
    that answers nothing. 32 buyers at once: every checkout is a 503 within 15 s, and /api/me
    keeps answering meanwhile, since one thread never waits on Stripe and a full bulkhead of
    stuck calls refuses newcomers at once."""
    settings = {"WEB_THREADS": THREADS, "STRIPE_MAX_NETWORK_RETRIES": 1}
    with serve_instance(app, threads=THREADS, **settings) as instance:
        reader = auth_headers("blackhole-reader")
        assert requests.get(f"{instance.url}/api/me", headers=reader, timeout=10).ok
        reads: list[tuple[int, float]] = []
        done = threading.Event()

        def read_until_done() -> None:
            session = requests.Session()
            while not done.is_set():
                started = time.monotonic()
                try:
                    status = session.get(f"{instance.url}/api/me", headers=reader, timeout=30)
                    reads.append((status.status_code, time.monotonic() - started))
                except requests.RequestException:
                    reads.append((0, time.monotonic() - started))
                time.sleep(0.1)

        with stripe_faults(billing, fault_blackhole=True):
            probe = threading.Thread(target=read_until_done)
            probe.start()
            try:
                results = all_at_once(
                    32, lambda n: checkout(instance.url, f"blackhole-buyer-{n}", timeout=30)
                )
            finally:
                done.set()
                probe.join(35)
    outcomes = Counter((status, code) for status, _, code in results)
    slowest = max(seconds for _, seconds, _ in results)
    read_times = [seconds for _, seconds in reads]
    print(
        "checkouts:",
        dict(outcomes),
        f"slowest {slowest:.1f} s; reads n={len(reads)} p50 {statistics.median(read_times):.3f} s"
        f" max {max(read_times):.3f} s",
    )
    assert {status for status, _, _ in results} == {503}, outcomes
    assert slowest < 15, results
    assert {status for status, _ in reads} == {200}, reads
    assert len(reads) >= 20, reads  # reads went on answering through the outage
    assert statistics.median(read_times) < 0.5 and max(read_times) < 3, reads
