"""The webhook applier process under the peer benchmark's real traffic: its CPU per event.

Starts ours as production runs it (bin/start: gunicorn, one applier process beside the
workers), drives it at a sustained rate with the peer's signed events
(`../shared/peers/webhook_load.py`, paced wrk as `make bench-peer`'s sustained run), waits until
every event is applied, and prints, per run: the applier process's CPU (user + system, read
from /proc before and after) per applied event, the whole server's, the apply lag p50/p99 and
the batches the applier took. Several checkouts alternate, run after run, for an A/B:

    .venv/bin/python bench/applier_load.py --root /work/main --root . [--runs 3]
        [--rate 1000] [--seconds 20] [--database bench_applier]

Each checkout runs with its own .venv's python, from its own directory. The database is dropped
and re-created before each run (refused for `test`).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import Server, recreate  # noqa: E402
from bench.peer import free_port, is_applier, pending  # noqa: E402
from bench.peer_load import sustained  # noqa: E402

SECRET = "whsec_bench_applier_0123456789abcdef"
TICK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[applier-load {time.strftime('%H:%M:%S')}] {message}", flush=True)


def cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / TICK


def batches(url: str) -> int:
    """Distinct apply transactions (processed_at is the claiming transaction's clock)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(DISTINCT processed_at) FROM webhook_events WHERE processed"
        ).fetchone()
    assert row is not None
    return int(row[0])


def one_run(root: Path, args: argparse.Namespace, load: Any) -> dict[str, Any]:
    python = str(root / ".venv/bin/python")
    url = recreate(args.database)
    sandbox = Server(
        "sandbox", [python, "-m", "stripe_sandbox", "--port", "0"], {**os.environ},
        r"listening on (http://\S+)", cwd=root,
    )  # fmt: skip
    env = {
        **os.environ,
        "APP_ENV": "production",
        "PYTHON": python,
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
        "DATABASE_URL": url,
        "STRIPE_SECRET_KEY": "sk_test_bench_applier",
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "STRIPE_API_BASE": sandbox.url,
        "STRIPE_PRICE_ID_MONTHLY": "price_monthly",
        "STRIPE_PRICE_ID_YEARLY": "price_yearly",
        "STRIPE_CHECK_AT_START": "0",
        "AUTH_JWT_SECRET": "bench-applier-jwt-secret-0123456789-abcdefghij",
        "PUBLIC_URL": "http://127.0.0.1:3001",
        "FRONTEND_URL": "http://localhost:5173",
        "LOG_LEVEL": args.log_level,
        "METRICS_TOKEN": "bench-applier-metrics-token-0123456789",
        "REDIS_URL": "",
        "PYTHONUNBUFFERED": "1",
        "WEBHOOK_APPLIER": "off" if args.profile else "process",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    subprocess.run(
        [python, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=root, env=env, check=True, capture_output=True,
    )  # fmt: skip
    server = Server("ours", ["sh", "bin/start"], env, r"Listening at: (http://\S+)", cwd=root)
    profiled = None
    if args.profile:  # the applier under cProfile, beside a server that runs none
        argv = [python, str(Path(__file__).with_name("cpu_profile.py")), "flask", "--app", "wsgi"]
        env_profiled = {**env, "PROFILE_OUT": args.profile}
        profiled = subprocess.Popen([*argv, "billing", "apply"], cwd=root, env=env_profiled)
    try:
        time.sleep(6)  # workers and the applier loaded
        appliers = [pid for pid in server.workers() if is_applier(pid)]
        if profiled is not None:
            appliers = [profiled.pid]
        if len(appliers) != 1:
            raise RuntimeError(f"expected one applier process among {server.workers()}")
        applier = appliers[0]
        everyone = sorted({server.proc.pid, *server.workers(), *appliers})
        before_applier = cpu(applier)
        before_all = sum(cpu(p) for p in everyone)
        report = sustained(
            load, server.url, url, SECRET, args.rate, args.seconds, args.connections, pending
        )
        applier_cpu = cpu(applier) - before_applier
        all_cpu = sum(cpu(p) for p in everyone if Path(f"/proc/{p}").exists()) - before_all
        _pending, parked, applied = pending(url)
        taken = batches(url)
    finally:
        if profiled is not None:
            profiled.terminate()
            profiled.wait(20)
        server.stop()
        sandbox.stop()
    lag = next(line for line in report if line.startswith("apply lag"))
    p50, p99 = (float(x) for x in re.findall(r"p(?:50|99) (\d+) ms", lag))
    return {
        "applier_ms": applier_cpu * 1000 / applied,
        "server_ms": all_cpu * 1000 / applied,
        "p50": p50,
        "p99": p99,
        "applied": applied,
        "parked": parked,
        "per_batch": applied / max(taken, 1),
        "report": report,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", action="append", default=[])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--database", default="bench_applier")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--profile", default="", help="cProfile the applier into this file")
    parser.add_argument("--peer-dir", default=str(ROOT.parent / "shared/peers"))
    args = parser.parse_args()
    roots = [Path(r).resolve() for r in (args.root or [str(ROOT)])]
    spec = importlib.util.spec_from_file_location(
        "webhook_load", Path(args.peer_dir) / "webhook_load.py"
    )
    assert spec is not None and spec.loader is not None
    load = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(load)
    results: dict[Path, list[dict[str, Any]]] = {root: [] for root in roots}
    for n in range(args.runs):
        for root in roots if n % 2 == 0 else list(reversed(roots)):
            result = one_run(root, args, load)
            results[root].append(result)
            log(
                f"run {n + 1} {root}: applier {result['applier_ms']:.3f} ms/event, server"
                f" {result['server_ms']:.3f} ms/event, lag p50 {result['p50']:.0f} ms p99"
                f" {result['p99']:.0f} ms, {result['per_batch']:.0f} events/batch,"
                f" applied {result['applied']}, parked {result['parked']}"
            )
            for line in result["report"]:
                log("    " + line)
    print(f"\nmedians over {args.runs} runs at {args.rate} events/s for {args.seconds} s:")
    for root, rs in results.items():
        med = {k: statistics.median(r[k] for r in rs) for k in ("applier_ms", "server_ms", "p99")}
        print(
            f"  {root}: applier {med['applier_ms']:.3f} ms/event, server"
            f" {med['server_ms']:.3f} ms/event, apply lag p99 {med['p99']:.0f} ms"
        )
    if len(roots) == 2:
        a, b = (statistics.median(r["applier_ms"] for r in results[x]) for x in roots)
        print(f"  applier CPU per event {roots[1]} / {roots[0]} = {b / a:.2f}x")


if __name__ == "__main__":
    main()
