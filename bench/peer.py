"""`make bench-peer`: webhook ingest, ours vs the guide's Express server vs a bare Flask route.

The same signed `customer.subscription.updated` events and the same wrk load
(`webhook_load.py`, beside the peer) against three servers on this machine and one PostgreSQL:

- peer: the guide's Express server (`BENCH_PEER_DIR`, default ../shared/peers/express-guide),
  run as its README says, in its own schema of the benchmark database;
- ours: the app as production runs it (bin/start: gunicorn with gunicorn.conf.py, one process
  per core, one applier process beside the workers, WEBHOOK_APPLIER=process);
- bare: a Flask route that only checks the HMAC and parses the JSON (bench/bare_app.py), under
  the same gunicorn settings: the ceiling of any Python ingest here.

Rounds alternate the order (peer, ours, bare, then reversed), each server gets fresh events
every round, each round waits until our applier has caught up with the one before (and, where
PostgreSQL's autovacuum is off, starts after a VACUUM), and the medians are printed with their
ratios. Then ours alone at a sustained rate (default 1,000 events/s for 60 s): the apply lag
(received -> applied, from the rows), the backlog every two seconds, and the RSS of each
worker.

Settings (environment): BENCH_QUICK=1 (under two minutes), BENCH_SECONDS, BENCH_ROUNDS,
BENCH_CONNECTIONS, BENCH_RATE, BENCH_SUSTAIN_SECONDS, BENCH_SUSTAIN_CONNECTIONS (64),
BENCH_PEER_DIR, BENCH_PG_URL (an admin URL, default postgresql://postgres@127.0.0.1:5432/postgres),
BENCH_PEER_DB (the database it drops and re-creates, default bench_peer), BENCH_OURS (app
settings for ours, e.g. "WEBHOOK_APPLIER=thread"), BENCH_COMPARE (app settings, e.g.
"WEBHOOK_APPLIER=process WEBHOOK_APPLIER_NICE=10": a fourth server, "ours*", runs with them in
the same alternating rounds and its own sustained run, for an A/B of a setting in one run),
BENCH_SUSTAIN_ROUNDS (sustained runs per server, alternating; default 1).

Our servers run one at a time (started for their round, stopped once their events are
applied), so neither's appliers apply the other's events or take CPU from its round. Besides
events/s, each of our servers' CPU per event: user + system time of the master and
all its children (workers, and the applier process when it runs one) from the start of a round
until its events are all applied, over the events of that round, and the same split by process:
the master's own, the workers' (summed), the applier process's (the round's log line also says
how much of the applier's ran while the load was on, i.e. competed with ingest for the cores).
The peer's and bare's CPU per event is their process tree's over the events they answered
(the peer has applied each before answering). PostgreSQL's too, for every server: all postgres
processes' user + system time over the same span (with the backends that exited meanwhile,
through the postmaster), since a server that answers with less Python may move the work there.
It is robust to the other load on a shared machine, which wall-clock throughput is not. The
p99 range (over the rounds) is printed beside its median: p99 is the noisiest figure here.
BENCH_SUSTAIN_ROUNDS=0 skips the sustained runs (an A/B of ingest alone).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import Server, drain_inbox, pending, wait_ready  # noqa: E402
from bench.helpers import median, ratio  # noqa: E402
from bench.peer_load import sustained  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK") == "1"
SECONDS = int(os.environ.get("BENCH_SECONDS") or (3 if QUICK else 8))
ROUNDS = int(os.environ.get("BENCH_ROUNDS") or (2 if QUICK else 3))
CONNS = int(os.environ.get("BENCH_CONNECTIONS") or 16)
RATE = int(os.environ.get("BENCH_RATE") or 1000)
SUSTAIN = int(os.environ.get("BENCH_SUSTAIN_SECONDS") or (15 if QUICK else 60))
# Enough connections that the rate, not answers in flight, paces the sustained run.
SUSTAIN_CONNS = int(os.environ.get("BENCH_SUSTAIN_CONNECTIONS") or 64)
PEER_DIR = Path(os.environ.get("BENCH_PEER_DIR") or ROOT.parent / "shared/peers/express-guide")
PG_ADMIN = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DB = os.environ.get("BENCH_PEER_DB", "bench_peer")
SECRET = "whsec_bench_peer_0123456789abcdef"
STRIPE_KEY = "sk_test_bench_peer"
PY = sys.executable
# "KEY=VALUE KEY=VALUE": the app's settings for a second copy of ours in the same rounds.
COMPARE = dict(
    item.split("=", 1) for item in os.environ.get("BENCH_COMPARE", "").split() if "=" in item
)
OURS = dict(item.split("=", 1) for item in os.environ.get("BENCH_OURS", "").split() if "=" in item)
SUSTAIN_ROUNDS = int(os.environ.get("BENCH_SUSTAIN_ROUNDS") or 1)
TICK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[bench-peer {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def db_url(name: str, schema: str | None = None) -> str:
    url = f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
    return f"{url}?options=-csearch_path%3D{schema}" if schema else url


def _stat_ticks(pid: int) -> tuple[int, int]:
    """A process's own user + system ticks, and those of its children that exited and were
    waited for (0, 0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0, 0
    # utime, stime, cutime, cstime: fields 14-17 of stat (0-based 11-14 after the name)
    return int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def is_applier(pid: int) -> bool:
    """The applier process gunicorn's master starts (`flask ... billing apply`)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"billing" in argv and b"apply" in argv


def cpu_seconds(server: Server) -> dict[str, float]:
    """User + system CPU so far of the server's master (its own), its workers (the sum, plus
    what exited children used: a worker replaced mid-round) and its applier process (0 when
    it runs none), and their total."""
    master, exited = _stat_ticks(server.proc.pid)
    workers = applier = 0
    for pid in server.workers():
        own, reaped = _stat_ticks(pid)
        if is_applier(pid):
            applier += own + reaped
        else:
            workers += own + reaped
    split = {"master": master, "workers": workers + exited, "applier": applier}
    split["total"] = sum(split.values())
    return {name: ticks / TICK for name, ticks in split.items()} | {"postgres": postgres_seconds()}


CPU_PARTS = ("total", "master", "workers", "applier", "postgres")


def postgres_seconds() -> float:
    """User + system CPU so far of PostgreSQL on this machine: every postgres process's own,
    plus what the postmaster's children used before they exited (a backend whose connection
    closed). The benchmark's servers are its only clients while a round runs."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with suppress(OSError):
            if (entry / "comm").read_text().strip() == "postgres":
                own, reaped = _stat_ticks(int(entry.name))
                ticks += own + reaped
    return ticks / TICK


def connections_per_worker(server: Server) -> list[int]:
    """The client connections each worker holds now, most first. A kept-alive connection stays
    with the worker that accepted it, so an uneven split (say 11 and 5 of 16) queues the
    requests of the busier worker behind its few threads while the other idles."""
    port = int(server.url.rsplit(":", 1)[1])
    established = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()  # local address, remote address, state, ..., inode
                if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    established.add(f"socket:[{fields[9]}]")
    counts = []
    for pid in server.workers():
        if is_applier(pid):
            continue
        with suppress(OSError):
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
            counts.append(sum(1 for fd in fds if _link(fd) in established))
    return sorted(counts, reverse=True)


def watch_split(server: Server, split: list[int], stop: threading.Event) -> None:
    """Fill `split` with the connections per worker once the load has opened them all (or
    with the fullest sample seen before `stop`)."""
    while not stop.wait(0.25):
        now = connections_per_worker(server)
        if sum(now) > sum(split):
            split[:] = now
        if sum(split) >= CONNS:
            return


def _link(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def recreate_database() -> str:
    if not DB.replace("_", "").isalnum() or DB == "test":
        raise SystemExit(f"refusing to re-create database {DB!r}")
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    with psycopg.connect(db_url(DB), autocommit=True) as conn:
        conn.execute("CREATE SCHEMA peer")
        conn.execute("SET search_path = peer")
        conn.execute((PEER_DIR / "schema.sql").read_text())
    return db_url(DB)


def vacuum_if_nothing_else_does(database_url: str) -> None:
    """VACUUM ANALYZE the benchmark database (ours and the peer's tables) before a server's turn
    when autovacuum is off, as on this machine's PostgreSQL: both servers update rows, and every
    dead row left from the rounds before makes the next server's turn slower (ours went from
    3,469 to 2,681 events/s over 5 rounds with 93,000 dead rows in webhook_events). A production
    database's autovacuum keeps up with this; each server starts its turn as it would there."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SHOW autovacuum").fetchone()
        if row and row[0] == "off":
            conn.execute("VACUUM (ANALYZE)")


def load_module(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("webhook_load", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def start_peer(sandbox_url: str) -> Server:
    """The peer as its README runs it: a copy of its directory, npm install, node server.js."""
    work = Path(tempfile.mkdtemp(prefix="bench-peer-"))
    shutil.copytree(PEER_DIR, work, dirs_exist_ok=True)
    for path in [work, *work.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    log(f"npm install in {work}")
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=work, check=True)
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": db_url(DB, "peer"),
        "STRIPE_SECRET_KEY": "sk_test_x",
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "STRIPE_API_BASE": sandbox_url,
        "PORT": str(port),
    }
    # Its console.log per event goes to a file, as a server's log would.
    argv = ["sh", "-c", f"cd {work} && exec node server.js"]
    server = Server("peer", argv, env, r"Server running on port (\d+)")
    server.url = f"http://127.0.0.1:{port}"
    return server


def app_env(database_url: str, sandbox_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "APP_ENV": "production",
        "PYTHON": PY,
        "HOST": "127.0.0.1",
        "DATABASE_URL": database_url,
        "STRIPE_SECRET_KEY": STRIPE_KEY,
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "STRIPE_API_BASE": sandbox_url,
        "STRIPE_PRICE_ID_MONTHLY": "price_monthly",
        "STRIPE_PRICE_ID_YEARLY": "price_yearly",
        "STRIPE_CHECK_AT_START": "0",
        "AUTH_JWT_SECRET": "bench-peer-jwt-secret-0123456789-abcdefghij",
        "PUBLIC_URL": "http://127.0.0.1:3001",
        "FRONTEND_URL": "http://localhost:5173",
        "LOG_LEVEL": "WARNING",
        "METRICS_TOKEN": "bench-peer-metrics-token-0123456789",
        "REDIS_URL": "",
        "PYTHONUNBUFFERED": "1",
    }


def sandbox_and_settings(database_url: str) -> tuple[Server, dict[str, str]]:
    """The Stripe sandbox the servers talk to, and the app's settings, its database migrated."""
    sandbox = Server(
        "sandbox", [PY, "-m", "stripe_sandbox", "--port", "0"], {**os.environ},
        r"listening on (http://\S+)",
    )  # fmt: skip
    env = app_env(database_url, sandbox.url)
    try:
        subprocess.run(
            [PY, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
            cwd=ROOT, env=env, check=True, capture_output=True,
        )  # fmt: skip
    except BaseException:
        sandbox.stop()
        raise
    return sandbox, env


def start_gunicorn(name: str, argv: list[str], env: dict[str, str]) -> Server:
    port = free_port()
    server = Server(name, argv, {**env, "PORT": str(port)}, r"Listening at: (http://\S+)")
    wait_ready(server, int(env.get("WEB_CONCURRENCY") or os.cpu_count() or 1))
    return server


def ms(text: str | None) -> float:
    """wrk's latency text (e.g. 812.00us, 5.21ms, 1.02s) in ms."""
    if not text:
        return float("nan")
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60_000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


def settle(database_url: str, limit: float = 90) -> None:
    """Wait until our applier has caught up, so no round shares the machine with the backlog
    of the one before (ours applies after acknowledging; the peer applies before). It reads the
    rows, so it works wherever the applier runs (a thread in each worker, or its own process).
    Gives up quietly after `limit` seconds: the round's figures then show what was not applied."""
    with suppress(RuntimeError):
        drain_inbox(database_url, limit)


class Target:
    """One server under load: a running one (peer, bare), or one of ours, started for its turn
    by `start` and stopped after it (`path` is the webhook route on the URL it listens at)."""

    def __init__(
        self, path: str, server: Server | None = None, start: Any = None, database_url: str = ""
    ) -> None:
        self.path = path
        self.server = server
        self.start = start
        self.database_url = database_url


def rounds(load: Any, targets: dict[str, Target]) -> dict[str, dict[str, Any]]:
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
    order = list(targets)
    events = max(50_000, 6000 * SECONDS)
    for n in range(ROUNDS):
        for name in order if n % 2 == 0 else reversed(order):
            target = targets[name]
            vacuum_if_nothing_else_does(db_url(DB))
            server = target.server or target.start()
            before = cpu_seconds(server)
            applied = pending(target.database_url)[2] if target.start else 0
            split: list[int] = []
            done_probing = threading.Event()
            if target.start:  # how the connections spread over the workers, once all are open
                probe = threading.Thread(
                    target=watch_split, args=(server, split, done_probing), daemon=True
                )
                probe.start()
            result = load.run(server.url + target.path, SECRET, events, 1000, SECONDS, CONNS)
            done_probing.set()
            result["p50_ms"], result["p99_ms"] = ms(result["p50"]), ms(result["p99"])
            if target.start:
                # The ingest alone (until the load stops), then the whole: until all applied.
                ingest = cpu_seconds(server)
                settle(target.database_url)
                done = pending(target.database_url)[2] - applied
            else:  # the peer applies before answering; bare has nothing to apply
                done = result["rps"] * SECONDS
            after = cpu_seconds(server)
            for part in CPU_PARTS:
                cpu = after[part] - before[part]
                result[f"cpu_{part}_ms"] = cpu * 1000 / done if done else float("nan")
            if target.start:
                cpu = ingest["applier"] - before["applier"]
                result["cpu_applier_during_ms"] = cpu * 1000 / done if done else float("nan")
                server.stop()
            runs[name].append(result)
            line = (
                f"round {n + 1} {name:5}: {result['rps']:8.0f} events/s  p50 {result['p50']}"
                f"  p99 {result['p99']}  non-2xx {result['non2xx']}"
                f"  cpu/event ms: postgres {result['cpu_postgres_ms']:.2f}"
            )
            if not target.start:
                line += f", server {result['cpu_total_ms']:.2f}"
            else:
                line += (
                    f", server total {result['cpu_total_ms']:.2f}"
                    f" = master {result['cpu_master_ms']:.2f}"
                    f" + workers {result['cpu_workers_ms']:.2f}"
                    f" + applier {result['cpu_applier_ms']:.2f}"
                    f" ({result['cpu_applier_during_ms']:.2f} of it during the load)"
                    f"  connections per worker {'/'.join(map(str, split)) or '?'}"
                )
            log(line)
    return {
        name: {
            "rps": median(r["rps"] for r in rs),
            "p50_ms": median(r["p50_ms"] for r in rs),
            "p99_ms": median(r["p99_ms"] for r in rs),
            **{f"cpu_{p}_ms": median(r[f"cpu_{p}_ms"] for r in rs) for p in CPU_PARTS},
            "p99_range": (min(r["p99_ms"] for r in rs), max(r["p99_ms"] for r in rs)),
            "non2xx": sum(r["non2xx"] for r in rs),
            "range": (min(r["rps"] for r in rs), max(r["rps"] for r in rs)),
        }
        for name, rs in runs.items()
    }


def table(summary: dict[str, dict[str, Any]]) -> str:
    peer = summary["peer"]
    lines = [
        "| server | events/s (median) | range | p50 ms | p99 ms | p99 range | non-2xx"
        " | events/s vs peer | p99 vs peer | CPU ms/event | master | workers | applier"
        " | postgres |",
        "| --- | ---: | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        " ---: |",
    ]
    for name, s in summary.items():
        speed = ratio(s["rps"], peer["rps"])
        p99 = ratio(s["p99_ms"], peer["p99_ms"])
        cpu = " | ".join(f"{s[f'cpu_{part}_ms']:.2f}" for part in CPU_PARTS)
        lines.append(
            f"| {name} | {s['rps']:.0f} | {s['range'][0]:.0f}-{s['range'][1]:.0f}"
            f" | {s['p50_ms']:.2f} | {s['p99_ms']:.2f}"
            f" | {s['p99_range'][0]:.1f}-{s['p99_range'][1]:.1f} | {s['non2xx']}"
            f" | {speed or 0:.2f}x | {p99 or 0:.2f}x | {cpu} |"
        )
    return "\n".join(lines)


def main() -> None:
    if not (PEER_DIR / "server.js").exists():
        raise SystemExit(f"no peer at {PEER_DIR} (BENCH_PEER_DIR)")
    load = load_module(PEER_DIR.parent / "webhook_load.py")
    log(f"database {DB}, peer {PEER_DIR}, {ROUNDS} rounds of {SECONDS} s, {CONNS} connections")
    url = recreate_database()
    servers: list[Server] = []
    try:
        sandbox, env = sandbox_and_settings(url)
        servers.append(sandbox)
        servers.append(peer := start_peer(sandbox.url))
        bare_argv = [PY, "-m", "gunicorn", "-c", "gunicorn.conf.py", "bench.bare_app:app"]
        # The bare app shares gunicorn.conf.py (no applier process of ours beside it), on
        # gunicorn's threaded worker, as a plain Flask app is served.
        bare_env = {**env, "WEBHOOK_APPLIER": "off", "GUNICORN_WORKER_CLASS": "gthread"}
        servers.append(bare := start_gunicorn("bare", bare_argv, bare_env))

        def starter(name: str, settings: dict[str, str]) -> Any:
            def start() -> Server:
                server = start_gunicorn(name, ["sh", "bin/start"], {**env, **settings})
                servers.append(server)
                return server

            return start

        if OURS:
            log(f"ours runs with {' '.join(f'{k}={v}' for k, v in OURS.items())}")
        hook = "/api/webhooks/stripe"
        targets = {
            "peer": Target(hook, server=peer),
            "ours": Target(hook, start=starter("ours", OURS), database_url=url),
            "bare": Target(hook + "/hmac-only", server=bare),
        }
        if COMPARE:
            log(f"ours* runs with {' '.join(f'{k}={v}' for k, v in COMPARE.items())}")
            start = starter("ours*", {**OURS, **COMPARE})
            targets["ours*"] = Target(hook, start=start, database_url=url)
        summary = rounds(load, targets)
        print(
            f"\nWebhook ingest, same signed events, wrk -t2 -c{CONNS}, {SECONDS} s x {ROUNDS}"
            " rounds, medians:\n"
        )
        print(table(summary))
        print(
            f"\nours / peer = {summary['ours']['rps'] / summary['peer']['rps']:.2f}x events/s;"
            f" ours / bare = {summary['ours']['rps'] / summary['bare']['rps']:.2f}x;"
            f" peer / bare = {summary['peer']['rps'] / summary['bare']['rps']:.2f}x"
        )
        if "ours*" in summary:
            print(
                f"ours* / peer = {summary['ours*']['rps'] / summary['peer']['rps']:.2f}x;"
                f" ours / ours* = {summary['ours']['rps'] / summary['ours*']['rps']:.2f}x"
            )
        for done in (peer, bare):
            done.stop()
            servers.remove(done)
        ours = [name for name in targets if name.startswith("ours")]
        for n in range(SUSTAIN_ROUNDS):
            for name in ours if n % 2 == 0 else reversed(ours):
                server = targets[name].start()
                report = sustained(
                    load, server.url, url, SECRET, RATE, SUSTAIN, SUSTAIN_CONNS, pending
                )
                print(
                    f"\n{name} at a sustained {RATE} events/s for {SUSTAIN} s"
                    f" ({SUSTAIN_CONNS} connections):"
                )
                for line in report:
                    print("  " + line)
                now = ", ".join(f"{mb:.0f}" for mb in sorted(server.rss_mb()))
                peak = ", ".join(f"{mb:.0f}" for mb in server.peak_rss_mb())
                print(f"  RSS per process (workers and applier): {now} MB now; peak {peak} MB")
                server.stop()
    finally:
        for server in reversed(servers):
            with suppress(OSError):  # stopped already (ours, after its turn)
                server.stop()


if __name__ == "__main__":
    threading.current_thread().name = "bench-peer"
    main()
