"""`make bench`: the app under gunicorn (production config) against a bare baseline, with wrk.

Everything runs on this machine and is driven over HTTP, so it measures whatever the app is:

1. fresh PostgreSQL databases (`<prefix>_app`, `<prefix>_bare`, `<prefix>_sync`) migrated
   with the app's migrations, users and subscriptions bulk-loaded with generate_series;
2. the Stripe sandbox as its own process (catalog, one real subscription whose events are
   the templates of the signed events we send);
3. the app (`wsgi:app`) and the bare baseline (`bench.bare_app:app`, bench/bare_app.py) under
   gunicorn with the same settings; wrk (bench/requests.lua) replays pre-signed request files
   from a separate process, bare and app alternating, at least two rounds, medians reported;
4. SQL statements and round trips per request counted on the wire by a PostgreSQL proxy
   (bench/pgcount.py) in a serial pass; Stripe calls from the sandbox's request log;
5. growth (1k -> 100k -> 1M users), `flask billing sync` for 100/1k/10k sandbox
   subscriptions, gunicorn worker classes, peak RSS per worker.

Writes bench/results/latest.md, latest.json and latest.png. Settings (environment):
BENCH_QUICK=1 (a smoke run in about two minutes), BENCH_SECONDS (per wrk run), BENCH_ROUNDS,
BENCH_BUDGET (seconds for the whole run: the sync step stops when it is spent), BENCH_STEPS
(a subset of "ab,sql,classes,growth,sync"),
BENCH_CONNECTIONS, BENCH_WORKERS, BENCH_THREADS, BENCH_USERS, BENCH_GROWTH (e.g.
"1000,100000,1000000"), BENCH_SYNC (e.g. "100,1000,10000"), BENCH_WORKER_CLASSES,
BENCH_PG_URL (an admin URL of the server, default postgresql://postgres@127.0.0.1:5432/postgres),
BENCH_REDIS_URL (the rate limiter's counters, as in production; default redis://127.0.0.1:6379/15,
used when a Redis answers there, else each worker's memory),
BENCH_DB_PREFIX (default "bench"), BENCH_OUT (results directory).
"""

from __future__ import annotations

import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import jwt
import psycopg
import redis
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.config import RATE_LIMIT_SETTINGS  # noqa: E402
from bench.helpers import (  # noqa: E402
    median,
    parse_wrk_result,
    percentile,
    request_line,
    sign_payload,
)
from bench.pgcount import CountingProxy  # noqa: E402


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def _env_list(name: str, default: str) -> list[int]:
    return [int(x) for x in (os.environ.get(name) or default).split(",") if x.strip()]


QUICK = os.environ.get("BENCH_QUICK") == "1"
SECONDS = _env_int("BENCH_SECONDS", 2 if QUICK else 5)
BUDGET = _env_int("BENCH_BUDGET", 120 if QUICK else 570)  # seconds; sync gets what is left
ROUNDS = _env_int("BENCH_ROUNDS", 2)
CONNECTIONS = _env_int("BENCH_CONNECTIONS", 16)
WRK_THREADS = 2
WORKERS = _env_int("BENCH_WORKERS", 4)
THREADS = _env_int("BENCH_THREADS", 4)
USERS = _env_int("BENCH_USERS", 1000)
GROWTH = _env_list("BENCH_GROWTH", "1000,5000" if QUICK else "1000,100000,1000000")
SYNC_SIZES = _env_list("BENCH_SYNC", "20,50" if QUICK else "100,1000,10000")
WORKER_CLASSES = (os.environ.get("BENCH_WORKER_CLASSES") or "sync,gthread,gevent").split(",")
# The app's worker in the A/B against bare Flask (gthread): production's, unless told.
APP_WORKER = os.environ.get("BENCH_APP_WORKER") or "app.web_worker.AsgiWorker"
STEPS = (os.environ.get("BENCH_STEPS") or "ab,sql,classes,growth,sync").split(",")
COUNT_REQUESTS = 10 if QUICK else 40
CHECKOUT_USERS = 5 if QUICK else 20
PG_ADMIN = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
PREFIX = os.environ.get("BENCH_DB_PREFIX", "bench")
OUT = Path(os.environ.get("BENCH_OUT") or ROOT / "bench" / "results")
PY = sys.executable

STRIPE_KEY = "sk_test_bench_" + secrets.token_hex(12)
WEBHOOK_SECRET = "whsec_" + secrets.token_hex(24)
JWT_SECRET = secrets.token_urlsafe(48)
DAY = 86_400


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def redis_or_memory() -> str:
    """BENCH_REDIS_URL if a Redis answers there (the rate limiter's counters), else ""."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except (redis.RedisError, ValueError):
        return ""
    return REDIS_URL


def db_url(name: str) -> str:
    base = PG_ADMIN.rsplit("/", 1)[0]
    return f"{base}/{name}"


# ------------------------------------------------------------------------------ processes
class Server:
    """A process that prints the URL it listens on (the sandbox, gunicorn)."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        pattern: str,
        timeout: float = 60,
        cwd: Path = ROOT,
    ) -> None:
        self.name = name
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed in stop())
            "w+", prefix=f"bench-{name}-", suffix=".log", delete=False
        )
        self.proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT, text=True
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            text = Path(self.log.name).read_text()
            found = re.search(pattern, text)
            if found:
                self.url = found.group(1)
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{name} did not start:\n{Path(self.log.name).read_text()[-3000:]}")

    def workers(self) -> list[int]:
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with suppress(OSError, IndexError, ValueError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.proc.pid:
                    pids.append(int(stat.parent.name))
        return pids

    def _memory(self, field: str) -> list[float]:
        sizes = []
        for pid in sorted(self.workers()):
            with suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith(field):
                        sizes.append(int(line.split()[1]) / 1024)
        return sizes

    def peak_rss_mb(self) -> list[float]:
        return sorted(self._memory("VmHWM:"))

    def rss_mb(self) -> list[float]:
        return self._memory("VmRSS:")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)


def gunicorn(
    name: str, target: str, env: dict[str, str], worker_class: str = "gthread", **kw: int
) -> Server:
    workers, threads = kw.get("workers", WORKERS), kw.get("threads", THREADS)
    argv = [PY, "-m", "gunicorn", "--bind", "127.0.0.1:0", "--workers", str(workers)]
    argv += ["--worker-class", worker_class, "--log-level", "info", "--timeout", "60"]
    if worker_class not in ("sync", "gevent"):  # gthread's threads; the app's worker's pool
        argv += ["--threads", str(threads)]
    if worker_class == "gevent":
        argv += ["--worker-connections", "100"]
    server = Server(name, [*argv, target], env, r"Listening at: (http://\S+) ")
    wait_ready(server, workers)
    return server


def wait_ready(server: Server, workers: int) -> None:
    """Every worker forked and done loading the app (its memory stopped growing), and the
    server answering, so no run starts while a worker is still importing."""
    deadline = time.time() + 120
    previous: list[float] = []
    while time.time() < deadline:
        time.sleep(0.5)
        current = server.rss_mb()
        settled = (
            len(current) >= workers
            and previous
            and all(abs(a - b) < 0.5 for a, b in zip(current, previous, strict=False))
        )
        previous = current
        if settled:
            with suppress(requests.RequestException):
                requests.get(server.url + "/", timeout=10)
                return
    raise RuntimeError(f"{server.name} workers did not boot")


# ------------------------------------------------------------------------------ database
def pending(database_url: str) -> tuple[int, int, int]:
    """The app's webhook inbox now: pending, parked, applied."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE NOT processed AND parked_at IS NULL),"
            " count(*) FILTER (WHERE parked_at IS NOT NULL), count(*) FILTER (WHERE processed)"
            " FROM webhook_events"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def drain_inbox(database_url: str, limit: float = 300) -> float:
    """Seconds until no recorded webhook event waits to be applied (parked ones do not wait)."""
    started = time.time()
    while time.time() - started < limit:
        if not pending(database_url)[0]:
            return time.time() - started
        time.sleep(0.5)
    raise RuntimeError(f"the app's applier did not catch up in {limit:.0f} s")


def admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql)


def recreate(name: str) -> str:
    if not re.fullmatch(r"[a-z0-9_]+", name) or name == "test":
        raise ValueError(f"bad database name {name}")
    admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin(f"CREATE DATABASE {name}")
    return db_url(name)


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [PY, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


def load_population(url: str, lo: int, hi: int, shape: dict[str, Any]) -> float:
    """Users bench-user-<lo..hi-1>, each with an active subscription sub_bench_<i> and a
    customer that has their email already (as one the app created has: else each user's first
    request sends it to Stripe, once, and the reads measured that call)."""
    started = time.perf_counter()
    params = {**shape, "lo": lo, "hi": hi - 1}
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO users (id, email, stripe_customer_id, stripe_customer_email,"
            " stripe_subscription_id, subscription_status, subscription_tier, stripe_price_id,"
            " plan_interval, current_period_start, current_period_end, cancel_at_period_end,"
            " generations_used, generations_limit, usage_period_start, usage_period_end,"
            " created_at, updated_at)"
            " SELECT 'bench-user-' || i, 'bench-user-' || i || '@example.com', 'cus_bench_' || i,"
            " 'bench-user-' || i || '@example.com', 'sub_bench_' || i, 'active', 'pro', %(price)s,"
            " 'month', %(start)s, %(end)s, false, 0, NULL, %(start)s, %(end)s, now(), now()"
            " FROM generate_series(%(lo)s::int, %(hi)s::int) i",
            params,
        )
        conn.execute(
            "INSERT INTO subscriptions (id, user_id, customer_id, status, price_id,"
            " plan_interval, current_period_start, current_period_end, cancel_at_period_end,"
            " stripe_created, last_event_created, updated_at)"
            " SELECT 'sub_bench_' || i, 'bench-user-' || i, 'cus_bench_' || i, 'active',"
            " %(price)s, 'month', %(start)s, %(end)s, false, %(created)s, %(created)s, now()"
            " FROM generate_series(%(lo)s::int, %(hi)s::int) i",
            params,
        )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE users")
        conn.execute("VACUUM ANALYZE subscriptions")
    return time.perf_counter() - started


def table_scans(url: str) -> dict[str, tuple[int, int]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT relname, coalesce(seq_scan, 0), coalesce(idx_scan, 0) FROM pg_stat_user_tables"
        ).fetchall()
    return {name: (seq, idx) for name, seq, idx in rows}


HOT_LOOKUPS = {
    "user by id": "SELECT * FROM users WHERE id = 'bench-user-{i}'",
    "user by customer": "SELECT * FROM users WHERE stripe_customer_id = 'cus_bench_{i}'",
    "subscription by id": "SELECT * FROM subscriptions WHERE id = 'sub_bench_{i}'",
    "subscriptions of user": "SELECT * FROM subscriptions WHERE user_id = 'bench-user-{i}'",
    "subscriptions of customer": "SELECT * FROM subscriptions WHERE customer_id = 'cus_bench_{i}'",
    "event by id": "SELECT * FROM webhook_events WHERE id = 'evt_missing'",
}


def explain(url: str, i: int) -> dict[str, str]:
    plans = {}
    with psycopg.connect(url) as conn:
        for name, sql in HOT_LOOKUPS.items():
            rows = conn.execute(f"EXPLAIN {sql.format(i=i)}").fetchall()
            plans[name] = rows[0][0]
    return plans


# ------------------------------------------------------------------------------ events
class Events:
    """Signed Stripe events built from templates the sandbox emitted."""

    def __init__(self, sub_event: dict[str, Any], invoice_event: dict[str, Any]) -> None:
        sub = sub_event["data"]["object"]
        item = sub["items"]["data"][0]
        self.period = (item["current_period_start"], item["current_period_end"])
        self.price = item["price"]["id"]
        self.created0 = int(time.time()) - 30 * DAY
        self.counter = 0
        self.sub_templates = {}
        for cancel in (False, True):
            evt = json.loads(json.dumps(sub_event))
            evt.update(id="__EVT__", created=1111111111, type="customer.subscription.updated")
            obj = evt["data"]["object"]
            obj["cancel_at_period_end"] = cancel
            obj["cancel_at"] = self.period[1] if cancel else None
            evt["data"]["previous_attributes"] = {"cancel_at_period_end": not cancel}
            self.sub_templates[cancel] = self._placeholders(json.dumps(evt), sub)
        evt = json.loads(json.dumps(invoice_event))
        evt.update(id="__EVT__", created=1111111111)
        invoice = evt["data"]["object"]
        invoice["billing_reason"] = "subscription_cycle"
        invoice["period_start"], invoice["period_end"] = 2222222222, 3333333333
        for line in invoice["lines"]["data"]:
            line["period"] = {"start": 2222222222, "end": 3333333333}
        text = json.dumps(evt).replace(invoice["id"], "__INV__")
        self.invoice_template = self._placeholders(text, sub)

    @staticmethod
    def _placeholders(text: str, sub: dict[str, Any]) -> str:
        text = text.replace(sub["id"], "__SUB__").replace(sub["customer"], "__CUS__")
        return text.replace(sub["metadata"]["userId"], "__USER__")

    def _fill(self, template: str, i: int, evt_id: str, created: int) -> str:
        return (
            template.replace("__EVT__", evt_id)
            .replace("1111111111", str(created))
            .replace("__SUB__", f"sub_bench_{i}")
            .replace("__CUS__", f"cus_bench_{i}")
            .replace("__USER__", f"bench-user-{i}")
        )

    def next_created(self) -> int:
        self.counter += 1
        return self.created0 + self.counter

    def subscription_updated(self, i: int, cancel: bool) -> str:
        created = self.next_created()
        return self._fill(self.sub_templates[cancel], i, f"evt_bench_{created}", created)

    def invoice_paid(self, i: int, cycle: int) -> str:
        created = self.next_created()
        start = self.period[0] + cycle * 30 * DAY
        text = self._fill(self.invoice_template, i, f"evt_bench_{created}", created)
        text = text.replace("__INV__", f"in_bench_{created}")
        return text.replace("2222222222", str(start)).replace("3333333333", str(start + 30 * DAY))


def spread(seq: int, users: int, offset: int = 0) -> int:
    """User index for the seq-th request: every user in turn (offset by a growth step's
    previous size so new users are hit too), in a scattered order."""
    return offset + (seq * 7919) % users


def webhook_file(path: Path, bodies: Iterator[str], count: int) -> None:
    now = int(time.time())
    with path.open("w") as out:
        for _ in range(count):
            body = next(bodies)
            out.write(
                request_line("/api/webhooks/stripe", sign_payload(body, WEBHOOK_SECRET, now), body)
            )


def distinct_bodies(events: Events, users: int, offset: int = 0) -> Iterator[str]:
    seq = 0
    while True:
        i = spread(seq, users, offset)
        yield events.subscription_updated(i, cancel=(events.counter // users) % 2 == 1)
        seq += 1


def duplicate_bodies(events: Events, users: int) -> Iterator[str]:
    """Half the deliveries repeat the event sent 32 deliveries earlier."""
    sent: list[str] = []
    fresh = distinct_bodies(events, users)
    while True:
        body = next(fresh)
        sent.append(body)
        yield body
        yield sent[max(0, len(sent) - 32)]


def invoice_bodies(events: Events, users: int) -> Iterator[str]:
    seq = 0
    while True:
        yield events.invoice_paid(spread(seq, users), cycle=1 + seq // users)
        seq += 1


def token(user: str) -> str:
    claims = {"sub": user, "email": f"{user}@example.com", "exp": int(time.time()) + 4 * 3600}
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


def read_file(path: Path, users: int, route: str, offset: int = 0, count: int = 0) -> None:
    with path.open("w") as out:
        for seq in range(count or users):
            user = f"bench-user-{spread(seq, users, offset)}"
            target = route.replace("<user>", user)
            out.write(request_line(target, f"Bearer {token(user)}"))


def usage_file(path: Path, users: int, count: int, tag: str) -> None:
    with path.open("w") as out:
        for seq in range(count):
            user = f"bench-user-{spread(seq, users)}"
            body = json.dumps({"count": 1, "idempotencyKey": f"bench-{tag}-{seq}"})
            out.write(request_line("/api/usage/generations", f"Bearer {token(user)}", body))


# ------------------------------------------------------------------------------ load
def wrk(url: str, path: Path, method: str, header: str, seconds: int = SECONDS) -> dict[str, Any]:
    argv = ["wrk", "-t", str(WRK_THREADS), "-c", str(CONNECTIONS), "-d", f"{seconds}s"]
    argv += ["--timeout", "10s", "-s", str(ROOT / "bench" / "requests.lua"), url]
    argv += ["--", str(path), method, header, str(WRK_THREADS)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return parse_wrk_result(done.stdout)


def stripe_calls(sandbox_url: str) -> int:
    return len(requests.get(f"{sandbox_url}/_sandbox/requests", timeout=30).json()["data"])


def clear_stripe_calls(sandbox_url: str) -> None:
    requests.delete(f"{sandbox_url}/_sandbox/requests", timeout=30)


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "rps": median(r["rps"] for r in runs),
        "p50_ms": median(r["p50_ms"] for r in runs),
        "p99_ms": median(r["p99_ms"] for r in runs),
        "non_2xx": sum(r["non_2xx"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "wrapped": sum(r["wrapped"] for r in runs),
        "runs": runs,
    }


# ------------------------------------------------------------------------------ the bench
class Bench:
    def __init__(self) -> None:
        self.results: dict[str, Any] = {"settings": self.settings(), "machine": machine()}
        self.work = Path(tempfile.mkdtemp(prefix="bench-files-"))
        self.capacity = 1000  # requests/s assumed when sizing request files; grows as measured
        self.cleanups: list[Callable[[], None]] = []

    @staticmethod
    def settings() -> dict[str, Any]:
        return {
            "quick": QUICK,
            "seconds": SECONDS,
            "rounds": ROUNDS,
            "connections": CONNECTIONS,
            "wrk_threads": WRK_THREADS,
            "workers": WORKERS,
            "threads": THREADS,
            "users": USERS,
            "growth": GROWTH,
            "sync": SYNC_SIZES,
        }

    def file_size(self, seconds: int = SECONDS) -> int:
        return int(self.capacity * seconds * 1.5) + 200

    def saw(self, result: dict[str, Any]) -> None:
        self.capacity = max(self.capacity, result["rps"])

    # -------------------------------------------------------------- set-up
    def setup(self) -> None:
        log("databases, sandbox, templates")
        self.redis_url = redis_or_memory()
        self.results["settings"]["rate_limit_storage"] = self.redis_url or "memory"
        self.sandbox = Server(
            "sandbox",
            [PY, "-m", "stripe_sandbox", "--port", "0"],
            {**os.environ},
            r"listening on (http://\S+)",
        )
        self.cleanups.append(self.sandbox.stop)
        sb = self.sandbox.url
        self.prices = self.seed_catalog()
        sub_event, invoice_event = self.template_events("bench-template")
        self.events = Events(sub_event, invoice_event)
        self.app_url_db = recreate(f"{PREFIX}_app")
        self.bare_url_db = recreate(f"{PREFIX}_bare")
        self.app_env = self.env(self.app_url_db)
        # gunicorn reads ./gunicorn.conf.py: no webhook applier process beside the bare app.
        self.bare_env = {
            **self.env(self.bare_url_db),
            "DATABASE_URL": self.bare_url_db,
            "WEBHOOK_APPLIER": "off",
        }
        migrate(self.app_env)
        migrate(self.bare_env)
        self.shape = {
            "price": self.events.price,
            "start": self.events.period[0] * 1000,
            "end": self.events.period[1] * 1000,
            "created": self.events.created0 - DAY,  # watermark, whole seconds like Stripe's
        }
        for url in (self.app_url_db, self.bare_url_db):
            load_population(url, 0, USERS, self.shape)
        log(f"sandbox at {sb}; {USERS} users and subscriptions in each database")

    def env(self, database_url: str) -> dict[str, str]:
        return {
            **os.environ,
            "APP_ENV": "production",
            "DATABASE_URL": database_url,
            "STRIPE_SECRET_KEY": STRIPE_KEY,
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "STRIPE_API_BASE": self.sandbox.url,
            "STRIPE_PRICE_ID_MONTHLY": self.prices["pro_monthly"],
            "STRIPE_PRICE_ID_YEARLY": self.prices["pro_yearly"],
            "AUTH_JWT_SECRET": JWT_SECRET,
            "METRICS_TOKEN": "bench-metrics-token-0123456789",
            "PUBLIC_URL": "http://127.0.0.1:3001",
            "FRONTEND_URL": "http://localhost:5173",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            # The limiter runs (its cost is part of the app's), but the load is one client
            # sending thousands of requests a minute: production's limits would refuse most.
            **{name: "1000000/minute" for name in RATE_LIMIT_SETTINGS},
            # Its counters where production keeps them (several workers share them): Redis,
            # when one answers; else each worker's memory.
            "REDIS_URL": self.redis_url,
        }

    def stripe(self, method: str, path: str, **data: Any) -> dict[str, Any]:
        reply = requests.request(
            method, f"{self.sandbox.url}/v1/{path}", data=data, auth=(STRIPE_KEY, ""), timeout=30
        )
        reply.raise_for_status()
        return dict(reply.json())

    def seed_catalog(self) -> dict[str, str]:
        product = self.stripe("POST", "products", name="AI Creator Studio Pro")
        prices = {}
        for key, amount, interval in (
            ("pro_monthly", 1900, "month"),
            ("pro_yearly", 18000, "year"),
        ):
            prices[key] = self.stripe(
                "POST",
                "prices",
                product=product["id"],
                currency="usd",
                unit_amount=amount,
                lookup_key=key,
                **{"recurring[interval]": interval},
            )["id"]
        return prices

    def real_subscription(self, user: str) -> dict[str, Any]:
        customer = self.stripe(
            "POST", "customers", payment_method="pm_card_visa", **{"metadata[userId]": user}
        )
        method = self.stripe("GET", f"customers/{customer['id']}/payment_methods")["data"][0]
        return self.stripe(
            "POST",
            "subscriptions",
            customer=customer["id"],
            default_payment_method=method["id"],
            **{"items[0][price]": self.prices["pro_monthly"], "metadata[userId]": user},
        )

    def template_events(self, user: str) -> tuple[dict[str, Any], dict[str, Any]]:
        sub = self.real_subscription(user)
        assert sub["status"] == "active", sub["status"]
        found: dict[str, dict[str, Any]] = {}
        for evt in self.stripe("GET", "events?limit=100")["data"]:
            if evt["data"]["object"].get("customer") == sub["customer"]:
                found.setdefault(evt["type"], evt)
        sub_event = (
            found.get("customer.subscription.updated") or found["customer.subscription.created"]
        )
        sub_event["data"]["object"] = self.stripe("GET", f"subscriptions/{sub['id']}")
        return sub_event, found["invoice.paid"]

    # -------------------------------------------------------------- servers
    def start_pair(self, worker_class: str | None = None) -> tuple[Server, Server]:
        """The app and the bare baseline, each under `worker_class` when given, else the app
        under production's worker (gunicorn.conf.py) and bare Flask under gthread."""
        app = gunicorn("app", "wsgi:app", self.app_env, worker_class or APP_WORKER)
        try:
            bare = gunicorn("bare", "bench.bare_app:app", self.bare_env, worker_class or "gthread")
        except Exception:
            app.stop()
            raise
        return app, bare

    # -------------------------------------------------------------- sections
    def webhooks_and_reads(self) -> None:
        app, bare = self.start_pair()
        try:
            self.webhook_section(app, bare)
            self.read_section(app, bare)
            self.checkout_section(app)
            self.results["rss_mb"] = {"app": app.peak_rss_mb(), "bare": bare.peak_rss_mb()}
        finally:
            app.stop()
            bare.stop()

    def ab(
        self, label: str, servers: dict[str, Server], make_file: Callable[[Path, int], None]
    ) -> dict[str, Any]:
        """Rounds of every server in turn (order reversed each round) on one request file
        per round; medians per server."""
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
        calls: list[float] = []
        for rnd in range(ROUNDS):
            path = self.work / f"{re.sub(r'[^a-z0-9]+', '-', label)}-{rnd}.tsv"
            make_file(path, self.file_size())
            order = list(servers) if rnd % 2 == 0 else list(reversed(servers))
            for name in order:
                method, header = self.method_header(label)
                clear_stripe_calls(self.sandbox.url)
                result = wrk(servers[name].url, path, method, header)
                if name == "app":
                    calls.append(stripe_calls(self.sandbox.url) / max(1, result["requests"]))
                self.saw(result)
                runs[name].append(result)
                log(
                    f"{label} round {rnd + 1} {name}: {result['rps']:.0f}/s p50 "
                    f"{result['p50_ms']:.1f} ms p99 {result['p99_ms']:.1f} ms"
                    + (f" non-2xx {result['non_2xx']}" if result["non_2xx"] else "")
                )
            path.unlink()
        summary = {name: summarize(r) for name, r in runs.items()}
        if "app" in summary:
            summary["app"]["stripe_calls_per_request"] = max(calls) if calls else 0.0
        return summary

    @staticmethod
    def method_header(label: str) -> tuple[str, str]:
        if label.startswith("webhook"):
            return "POST", "Stripe-Signature"
        if label.startswith("usage"):
            return "POST", "Authorization"
        return "GET", "Authorization"

    def webhook_section(self, app: Server, bare: Server) -> None:
        log("webhook ingest")
        ev = self.events
        scenarios = {
            "webhook distinct": lambda p, n: webhook_file(p, distinct_bodies(ev, USERS), n),
            "webhook with duplicates": lambda p, n: webhook_file(p, duplicate_bodies(ev, USERS), n),
            "webhook invoice.paid": lambda p, n: webhook_file(p, invoice_bodies(ev, USERS), n),
        }
        self.results["webhooks"] = {
            label: self.ab(label, {"bare": bare, "app": app}, make)
            for label, make in scenarios.items()
        }
        # Ours applies after acknowledging: wait until its applier has caught up, so the checks
        # below see every event applied and the reads after do not share the machine with the
        # backlog (90 s of it after these runs, which the reads and the consume were measured
        # against before).
        self.results["apply_drain_s"] = drain_inbox(self.app_url_db)
        log(f"app's applier caught up {self.results['apply_drain_s']:.1f} s after the last run")
        # The events must have had their effect (a skipped event costs less and proves nothing).
        applied = {}
        for name, url in (("app", self.app_url_db), ("bare", self.bare_url_db)):
            with psycopg.connect(url) as conn:
                changed = conn.execute(
                    "SELECT count(*) FROM subscriptions WHERE last_event_created > %s",
                    (ev.created0,),
                ).fetchone()
                renewed = conn.execute(
                    "SELECT (SELECT count(*) FROM subscriptions WHERE current_period_start > %s)"
                    " + (SELECT count(*) FROM users WHERE usage_period_start > %s)",
                    (self.shape["start"], self.shape["start"]),
                ).fetchone()
            applied[name] = {
                "subscriptions_changed": changed[0] if changed else 0,
                "renewed_rows": renewed[0] if renewed else 0,
            }
        self.results["applied"] = applied
        log(f"rows the events changed: {applied}")
        if not all(a["subscriptions_changed"] for a in applied.values()):
            raise RuntimeError(f"the events changed no subscription: {applied}")

    def read_section(self, app: Server, bare: Server) -> None:
        log("reads")
        results: dict[str, Any] = {}
        targets = {
            "read GET /api/subscription/<me>": "/api/subscription/<user>",
            "read GET /api/me": "/api/me",
        }
        bare_runs: list[dict[str, Any]] = []
        for label, route in targets.items():
            result = self.ab(
                label,
                {"bare": bare, "app": app},
                lambda p, n, r=route: read_file(p, USERS, r),  # type: ignore[misc]
            )
            bare_runs += result["bare"]["runs"]
            results[label] = result
        tag = secrets.token_hex(4)
        usage = self.ab(
            "usage POST /api/usage/generations",
            {"app": app},
            lambda p, n: usage_file(p, USERS, n, f"{tag}-{p.stem}"),
        )
        usage["bare"] = summarize(bare_runs)  # ratio to the bare read, as the issue asks
        results["usage POST /api/usage/generations"] = usage
        self.results["reads"] = results

    def checkout_section(self, app: Server) -> None:
        log("checkout")
        http = requests.Session()
        out: dict[str, Any] = {}
        users = [f"bench-checkout-{secrets.token_hex(3)}-{n}" for n in range(CHECKOUT_USERS)]
        for label in ("new user", "returning user"):
            latencies, calls = [], 0
            for user in users:
                clear_stripe_calls(self.sandbox.url)
                started = time.perf_counter()
                reply = http.post(
                    f"{app.url}/api/create-checkout-session",
                    json={"plan": "monthly"},
                    headers={"Authorization": f"Bearer {token(user)}"},
                    timeout=30,
                )
                latencies.append((time.perf_counter() - started) * 1000)
                assert reply.status_code == 200, reply.text[:300]
                calls += stripe_calls(self.sandbox.url)
            out[label] = {
                "requests": len(users),
                "p50_ms": percentile(latencies, 50),
                "p99_ms": percentile(latencies, 99),
                "stripe_calls_per_request": calls / len(users),
            }
            log(f"checkout {label}: {out[label]}")
        self.results["checkout"] = out

    def count_statements(self) -> None:
        """Serial pass through a counting proxy: SQL statements and round trips per request."""
        log("SQL statements per request (wire count)")
        host, port = PG_ADMIN.split("@", 1)[1].split("/", 1)[0].split(":")
        proxy = CountingProxy(host, int(port))
        results: dict[str, Any] = {}
        try:
            for name, url, target in (
                ("app", self.app_url_db, "wsgi:app"),
                ("bare", self.bare_url_db, "bench.bare_app:app"),
            ):
                via = url.replace(f"{host}:{port}", f"127.0.0.1:{proxy.port}") + "?sslmode=disable"
                env = {**(self.app_env if name == "app" else self.bare_env), "DATABASE_URL": via}
                server = gunicorn(f"{name}-count", target, env, "gthread", workers=1, threads=1)
                try:
                    results[name] = self.count_one(server, proxy, name)
                finally:
                    server.stop()
        finally:
            proxy.close()
        self.results["sql"] = results

    def count_one(self, server: Server, proxy: CountingProxy, name: str) -> dict[str, Any]:
        http = requests.Session()
        ev = self.events
        dist, dup, inv = (
            distinct_bodies(ev, USERS),
            duplicate_bodies(ev, USERS),
            invoice_bodies(ev, USERS),
        )
        tag = secrets.token_hex(4)
        plans: dict[str, Callable[[int], tuple[str, str, dict[str, str], str | None]]] = {
            "webhook distinct": lambda n: ("POST", "/api/webhooks/stripe", {}, next(dist)),
            "webhook with duplicates": lambda n: ("POST", "/api/webhooks/stripe", {}, next(dup)),
            "webhook invoice.paid": lambda n: ("POST", "/api/webhooks/stripe", {}, next(inv)),
            "read GET /api/subscription/<me>": lambda n: (
                "GET",
                f"/api/subscription/bench-user-{n}",
                {"Authorization": f"Bearer {token(f'bench-user-{n}')}"},
                None,
            ),
        }
        plans["read GET /api/me"] = lambda n: (
            "GET",
            "/api/me",
            {"Authorization": f"Bearer {token(f'bench-user-{n}')}"},
            None,
        )
        if name == "app":
            plans["usage POST /api/usage/generations"] = lambda n: (
                "POST",
                "/api/usage/generations",
                {"Authorization": f"Bearer {token(f'bench-user-{n}')}"},
                json.dumps({"count": 1, "idempotencyKey": f"count-{tag}-{n}"}),
            )
        out: dict[str, Any] = {}
        for label, make in plans.items():
            # two warm-up requests (pool connections, first statements), then the count
            for n in range(COUNT_REQUESTS + 2):
                if n == 1:
                    time.sleep(0.2)
                    first = proxy.snapshot()
                if n == 2:
                    time.sleep(0.2)
                    before = proxy.snapshot()
                    one_request = before.minus(first).queries
                method, path, headers, body = make(n)
                if body is not None:
                    headers = {**headers, "Content-Type": "application/json"}
                    if "webhook" in label:
                        headers["Stripe-Signature"] = sign_payload(
                            body, WEBHOOK_SECRET, int(time.time())
                        )
                reply = http.request(method, server.url + path, data=body, headers=headers)
                assert reply.status_code == 200, (label, reply.status_code, reply.text[:300])
            time.sleep(0.2)
            counted = proxy.snapshot().minus(before)
            out[label] = {
                "statements": counted.statements / COUNT_REQUESTS,
                "round_trips": counted.round_trips / COUNT_REQUESTS,
                "one_request": one_request,
            }
        return out

    def worker_classes(self) -> None:
        log("worker classes")
        results: dict[str, Any] = {}
        for worker_class in WORKER_CLASSES:
            if worker_class == "gevent" and not _has("gevent"):
                results[worker_class] = {"skipped": "gevent is not installed"}
                continue
            try:
                app, bare = self.start_pair(worker_class)
            except RuntimeError as exc:
                results[worker_class] = {"skipped": str(exc).splitlines()[0]}
                continue
            try:
                path = self.work / f"classes-{worker_class}.tsv"
                webhook_file(path, distinct_bodies(self.events, USERS), self.file_size())
                row: dict[str, Any] = {}
                for name, server in (("bare", bare), ("app", app)):
                    row[name] = wrk(server.url, path, "POST", "Stripe-Signature")
                    log(f"{worker_class} {name}: {row[name]['rps']:.0f}/s")
                row["rss_mb"] = max(app.peak_rss_mb() or [0])
                results[worker_class] = row
                path.unlink()
            finally:
                app.stop()
                bare.stop()
        self.results["worker_classes"] = results

    def growth(self) -> None:
        log("growth")
        steps: dict[str, Any] = {}
        loaded = USERS
        for size in GROWTH:
            load_seconds = 0.0
            if size > loaded:
                load_seconds = load_population(self.app_url_db, loaded, size, self.shape)
                log(f"loaded users {loaded}..{size} in {load_seconds:.1f}s")
                loaded = size
            before = table_scans(self.app_url_db)
            app = gunicorn("app-growth", "wsgi:app", self.app_env)
            try:
                hook = self.work / f"growth-{size}-webhook.tsv"
                webhook_file(hook, distinct_bodies(self.events, size), self.file_size())
                webhook = wrk(app.url, hook, "POST", "Stripe-Signature")
                reads = self.work / f"growth-{size}-read.tsv"
                read_file(reads, size, "/api/subscription/<user>", count=min(size, 5000))
                read = wrk(app.url, reads, "GET", "Authorization")
                hook.unlink()
                reads.unlink()
            finally:
                app.stop()
            time.sleep(1.0)  # backends exited, their statistics flushed
            after = table_scans(self.app_url_db)
            scans = {
                table: {
                    "seq_scan": after[table][0] - before.get(table, (0, 0))[0],
                    "idx_scan": after[table][1] - before.get(table, (0, 0))[1],
                }
                for table in ("users", "subscriptions", "webhook_events")
                if table in after
            }
            steps[str(size)] = {
                "load_seconds": load_seconds,
                "webhook": webhook,
                "read": read,
                "scans": scans,
                "plans": explain(self.app_url_db, size // 2),
            }
            log(
                f"growth {size}: webhook {webhook['rps']:.0f}/s p99 {webhook['p99_ms']:.1f} ms; "
                f"read {read['rps']:.0f}/s p99 {read['p99_ms']:.1f} ms; scans {scans}"
            )
        self.results["growth"] = steps

    def sync(self) -> None:
        log("billing sync")
        url = recreate(f"{PREFIX}_sync")
        env = self.env(url)
        migrate(env)
        out: dict[str, Any] = {}
        # what any flask command costs before it does anything (imports, app start-up)
        startup, _ = timed([PY, "-m", "flask", "--app", "wsgi", "billing", "check"], env, 60)
        for size in SYNC_SIZES:
            requests.post(f"{self.sandbox.url}/_sandbox/reset", timeout=30)
            self.prices = self.seed_catalog()
            env = self.env(url)
            first = self.real_subscription("sync-user")
            reply = requests.post(
                f"{self.sandbox.url}/_sandbox/clone",
                json={"subscription": first["id"], "count": size - 1},
                timeout=300,
            )
            reply.raise_for_status()
            with psycopg.connect(url) as conn:
                conn.execute("TRUNCATE users, subscriptions, webhook_events, sync_state CASCADE")
                conn.execute(
                    "INSERT INTO users (id, email, created_at, updated_at) SELECT"
                    " 'sync-user' || CASE WHEN i = 0 THEN '' ELSE '-' || i END,"
                    " 'sync' || i || '@example.com', now(), now()"
                    " FROM generate_series(0, %(n)s::int) i",
                    {"n": size - 1},
                )
            left = max(60.0, BUDGET - (time.time() - self.started))
            seconds, code = timed(
                [PY, "-m", "flask", "--app", "wsgi", "billing", "sync"], env, left
            )
            with psycopg.connect(url) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM subscriptions WHERE status IS NOT NULL"
                ).fetchone()
            rows = row[0] if row else 0
            out[str(size)] = {
                "seconds": seconds,
                "startup_seconds": startup,
                "exit": code,
                "stopped": code is None,
                "rows": rows,
                "per_subscription_ms": (seconds - startup) * 1000 / max(1, rows),
            }
            log(f"sync {size}: {seconds:.1f}s exit {code} rows {rows}")
        self.results["sync"] = out

    def run(self) -> None:
        self.started = started = time.time()
        try:
            self.setup()
            steps = {
                "ab": self.webhooks_and_reads,
                "sql": self.count_statements,
                "classes": self.worker_classes,
                "growth": self.growth,
                "sync": self.sync,
            }
            for name in STEPS:
                steps[name]()
        finally:
            for cleanup in reversed(self.cleanups):
                with suppress(Exception):
                    cleanup()
            shutil.rmtree(self.work, ignore_errors=True)
        self.results["machine"]["load_after"] = os.getloadavg()
        self.results["seconds"] = time.time() - started
        from bench.report import write_report

        write_report(self.results, OUT)
        log(f"done in {self.results['seconds']:.0f}s: {OUT / 'latest.md'}")


def timed(argv: list[str], env: dict[str, str], timeout: float) -> tuple[float, int | None]:
    """Seconds a command took and its exit status (None: stopped at `timeout`)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        code: int | None = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.wait()
        code = None
    return time.perf_counter() - started, code


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with psycopg.connect(PG_ADMIN) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_before": os.getloadavg(),
        "python": platform.python_version(),
        "postgres": row[0] if row else "?",
        "wrk": wrk_version.split("\n")[0].strip(),
        "commit": commit,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


if __name__ == "__main__":
    Bench().run()
