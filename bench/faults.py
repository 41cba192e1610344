"""`make bench-faults`: the production server (gunicorn with gunicorn.conf.py, APP_ENV=production,
PostgreSQL, Redis) under load while one dependency misbehaves at a time (issue 18):

    healthy          nothing wrong (the baseline)
    slow-stripe      the Stripe sandbox answers every call 0.3 s late
    blackhole-stripe Stripe takes requests and never answers
    hung-redis       Redis (behind a TCP proxy) keeps its connections and moves nothing
    frozen-database  PostgreSQL (behind a TCP proxy) keeps its connections and moves nothing

Each phase runs readers (GET /api/me in a loop), buyers (POST /api/create-checkout-session in a
loop) and a /readyz probe for a few seconds, then repairs the fault and waits for /readyz before
the next phase. It prints, per phase: /api/me p50/p99 (and errors), checkout outcomes by status
(and code), and /readyz times: alone (before the load starts) and under the load.

The Stripe sandbox runs in this process; gunicorn talks to it, to Redis and to PostgreSQL through
TCP proxies this process controls (tests/tcp_proxy.py). Settings (environment):

    BENCH_FAULTS_DATABASE_URL  a PostgreSQL database it may wipe (created if missing; default
                               postgresql://postgres@127.0.0.1:5432/bench_faults)
    BENCH_REDIS_URL            default redis://127.0.0.1:6379/15
    BENCH_FAULTS_PHASES        only these phases (comma-separated names above; default all)
    BENCH_QUICK=1              3 s phases (12 s black-holed; about 90 s in all) instead of 10 s

Figures are for comparing runs on one machine; not a timed test, and not run in CI.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import requests
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from processes import base_env, flask_cli, gunicorn  # noqa: E402  (tests/processes.py)
from tcp_proxy import TcpProxy  # noqa: E402  (tests/tcp_proxy.py)

from app.auth import issue_dev_token  # noqa: E402
from app.config import RATE_LIMIT_SETTINGS  # noqa: E402
from app.stripe.gateway import StripeGateway  # noqa: E402
from app.stripe.setup import setup_products  # noqa: E402
from stripe_sandbox import Sandbox  # noqa: E402

KEY = "sk_test_bench_faults"
WEBHOOK_SECRET = "whsec_bench_faults"
JWT_SECRET = "bench-faults-jwt-secret-0123456789-abcdefghijkl"
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
PHASE_SECONDS = 3.0 if QUICK else 10.0
# Long enough for held Stripe calls to reach their timeouts (5 s read, one retry) and the
# breaker to act, in quick mode too.
BLACKHOLE_SECONDS = 12.0 if QUICK else 20.0
READERS = 4
BUYERS = 8
READ_TIMEOUT = 5.0  # a client's patience for /api/me and /readyz
BUY_TIMEOUT = 20.0


def token(user: str) -> dict[str, str]:
    jwt = issue_dev_token({"AUTH_JWT_SECRET": JWT_SECRET}, user, email=f"{user}@example.com")
    return {"Authorization": f"Bearer {jwt}"}


@dataclass
class Phase:
    name: str
    reads: list[tuple[str, float]] = field(default_factory=list)  # (outcome, seconds)
    checkouts: list[tuple[str, float]] = field(default_factory=list)
    readyz_alone: list[tuple[str, float]] = field(default_factory=list)
    readyz_loaded: list[tuple[str, float]] = field(default_factory=list)


def timed(call: Callable[[], requests.Response]) -> tuple[str, float]:
    started = time.monotonic()
    try:
        reply = call()
    except requests.Timeout:
        return "client timeout", time.monotonic() - started
    except requests.RequestException as exc:
        return type(exc).__name__, time.monotonic() - started
    outcome = str(reply.status_code)
    if reply.status_code >= 400:
        with suppress(ValueError, KeyError, TypeError, AttributeError):
            outcome += f" {reply.json()['error']['code']}"
    return outcome, time.monotonic() - started


def ensure_database(url: str) -> None:
    parsed = make_url(url)
    admin = parsed.set(database="postgres").set(drivername="postgresql")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (parsed.database,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{parsed.database}"')


def wipe(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


def proxied(url: str, proxy: TcpProxy, *, database: bool) -> str:
    parsed = make_url(url).set(host="127.0.0.1", port=proxy.port)
    if database:
        parsed = parsed.update_query_dict({"sslmode": "disable"})
    return parsed.render_as_string(hide_password=False)


def percentile(seconds: list[float], share: float) -> float:
    ordered = sorted(seconds)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def describe(samples: list[tuple[str, float]]) -> str:
    if not samples:
        return "none"
    ok = [seconds for outcome, seconds in samples if outcome == "200"]
    failed = Counter(outcome for outcome, _ in samples if outcome != "200")
    text = f"n={len(samples):4d}"
    if ok:
        p50, p99 = statistics.median(ok) * 1000, percentile(ok, 0.99) * 1000
        text += f"  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms"
    if failed:
        text += "  " + ", ".join(f"{n}x {outcome}" for outcome, n in failed.most_common())
    return text


def outcomes(samples: list[tuple[str, float]]) -> str:
    if not samples:
        return "none"
    counts = Counter(outcome for outcome, _ in samples)
    slowest = max(seconds for _, seconds in samples)
    return ", ".join(f"{n}x {o}" for o, n in counts.most_common()) + f"  (slowest {slowest:.1f} s)"


def readyz_times(samples: list[tuple[str, float]]) -> str:
    if not samples:
        return "none"
    statuses = Counter(outcome for outcome, _ in samples)
    worst = max(seconds for _, seconds in samples)
    median = statistics.median(seconds for _, seconds in samples)
    return f"p50 {median:.2f} s  max {worst:.2f} s  ({', '.join(statuses)})"


def run_phase(
    phase: Phase, url: str, users: list[str], repair: Callable[[], None], seconds: float
) -> None:
    """The load for PHASE_SECONDS; then the fault is repaired and held requests finish (their
    times count in the phase)."""
    stop = threading.Event()
    session_reads = [requests.Session() for _ in range(READERS)]

    def probe_readyz(into: list[tuple[str, float]]) -> None:
        into.append(timed(lambda: requests.get(f"{url}/readyz", timeout=READ_TIMEOUT)))

    for _ in range(3):
        probe_readyz(phase.readyz_alone)

    def reader(n: int) -> None:
        headers = token(users[n % len(users)])
        while not stop.is_set():
            phase.reads.append(
                timed(
                    lambda: session_reads[n].get(
                        f"{url}/api/me", headers=headers, timeout=READ_TIMEOUT
                    )
                )
            )
            time.sleep(0.05)

    def buyer(n: int) -> None:
        headers = token(f"{phase.name}-buyer-{n}")
        while not stop.is_set():
            phase.checkouts.append(
                timed(
                    lambda: requests.post(
                        f"{url}/api/create-checkout-session",
                        json={"plan": "monthly"},
                        headers=headers,
                        timeout=BUY_TIMEOUT,
                    )
                )
            )
            time.sleep(0.2)

    def prober() -> None:
        while not stop.is_set():
            probe_readyz(phase.readyz_loaded)
            time.sleep(0.5)

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(READERS)]
    threads += [threading.Thread(target=buyer, args=(n,)) for n in range(BUYERS)]
    threads.append(threading.Thread(target=prober))
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    repair()
    for thread in threads:
        thread.join(BUY_TIMEOUT + 5)


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(requests.RequestException):
            if requests.get(f"{url}/readyz", timeout=3).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit("the server never became ready again")


def break_it(name: str, sandbox: Sandbox, redis: TcpProxy, database: TcpProxy) -> None:
    if name == "slow-stripe":
        sandbox.configure(fault_path="/v1/", fault_answer_delay=0.3)
    elif name == "blackhole-stripe":
        sandbox.configure(fault_path="/v1/", fault_blackhole=True)
    elif name == "hung-redis":
        redis.freeze()
    elif name == "frozen-database":
        database.freeze()


def repair_all(sandbox: Sandbox, redis: TcpProxy, database: TcpProxy) -> None:
    sandbox.configure(fault_answer_delay=0.0, fault_blackhole=False)
    redis.thaw()
    database.thaw()


def main() -> None:
    database_url = os.environ.get(
        "BENCH_FAULTS_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/bench_faults"
    )
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
    ensure_database(database_url)
    wipe(database_url)
    sandbox = Sandbox()
    sandbox_url = sandbox.start()
    gateway = StripeGateway(KEY, api_version="2026-10-28.endive", api_base=sandbox_url)
    prices = setup_products(gateway).price_ids
    db_target = make_url(database_url)
    database = TcpProxy(db_target.host or "127.0.0.1", db_target.port or 5432)
    redis_target = make_url(redis_url)
    redis = TcpProxy(redis_target.host or "127.0.0.1", redis_target.port or 6379)
    env = base_env(
        APP_ENV="production",
        DATABASE_URL=proxied(database_url, database, database=True),
        REDIS_URL=proxied(redis_url, redis, database=False),
        RATE_LIMIT_KEY_PREFIX=f"bench-faults-{time.time_ns()}",
        STRIPE_SECRET_KEY=KEY,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE=sandbox_url,
        STRIPE_PRICE_ID_MONTHLY=prices["pro_monthly"],
        STRIPE_PRICE_ID_YEARLY=prices["pro_yearly"],
        AUTH_JWT_SECRET=JWT_SECRET,
        METRICS_TOKEN="bench-faults-metrics-token-0123456789",
        PUBLIC_URL="http://127.0.0.1:3001",
        FRONTEND_URL="http://localhost:5173",
        LOG_LEVEL="ERROR",
        WEB_CONCURRENCY="2",
        WEBHOOK_APPLIER="off",
        # The limiter runs against Redis (its cost and its faults are part of the app's), but
        # the load is a few clients sending many requests: production's limits would refuse.
        **{name: "1000000/minute" for name in RATE_LIMIT_SETTINGS},
    )
    migrated = flask_cli("db", "upgrade", env=env, timeout=120)
    if migrated.returncode != 0:
        raise SystemExit(migrated.stderr)
    users = [f"reader-{n}" for n in range(READERS)]
    names = ["healthy", "slow-stripe", "blackhole-stripe", "hung-redis", "frozen-database"]
    if os.environ.get("BENCH_FAULTS_PHASES"):  # e.g. healthy,frozen-database
        names = [name for name in names if name in os.environ["BENCH_FAULTS_PHASES"].split(",")]
    phases: list[Phase] = []
    with tempfile.TemporaryDirectory() as tmp, gunicorn(Path(tmp), env) as server:
        threads = env.get("WEB_THREADS") or "4"
        print(
            f"gunicorn: 2 workers x {threads} threads, production settings (PostgreSQL, Redis),"
            f" {READERS} readers + {BUYERS} buyers + a /readyz probe every 0.5 s,"
            f" {PHASE_SECONDS:.0f} s per phase ({BLACKHOLE_SECONDS:.0f} s black-holed)"
        )
        for user in users:  # each reader exists before the load starts
            requests.get(f"{server.url}/api/me", headers=token(user), timeout=30)
        for name in names:
            phase = Phase(name)
            break_it(name, sandbox, redis, database)
            seconds = BLACKHOLE_SECONDS if name == "blackhole-stripe" else PHASE_SECONDS
            repair = lambda: repair_all(sandbox, redis, database)  # noqa: E731
            run_phase(phase, server.url, users, repair, seconds)
            phases.append(phase)
            wait_ready(server.url)
            time.sleep(5.5)  # the Stripe breaker's and the Redis guard's cool-downs
    sandbox.stop()
    database.stop()
    redis.stop()
    report(phases)


def report(phases: list[Phase]) -> None:
    for phase in phases:
        print(f"\n== {phase.name}")
        print(f"  GET /api/me        {describe(phase.reads)}")
        print(f"  checkouts          {outcomes(phase.checkouts)}")
        print(f"  /readyz alone      {readyz_times(phase.readyz_alone)}")
        print(f"  /readyz under load {readyz_times(phase.readyz_loaded)}")


if __name__ == "__main__":
    main()
