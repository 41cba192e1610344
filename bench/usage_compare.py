"""A consume (POST /api/usage/generations) of this checkout and of another one, against the
bare read, served side by side and loaded in turn: before/after ratios from one run.

    BENCH_DB_PREFIX=h4 .venv/bin/python bench/usage_compare.py OTHER_CHECKOUT [ROUNDS]

OTHER_CHECKOUT is e.g. a worktree of main (`git worktree add --detach /tmp/base main`); it is
served with this checkout's Python and packages, from a database of its own
(`<prefix>_base`). Everything else is `make bench`'s (bench/harness.py: the sandbox, the
databases and their users, gunicorn, wrk, the settings): each round runs the bare read, the
other checkout's consume and this one's, in a rotating order, on fresh idempotency keys.
Prints the medians and the ratios, and this/other round by round.
"""

from __future__ import annotations

import os
import secrets
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench.harness as h


def served_from(checkout: Path, name: str, env: dict[str, str]) -> h.Server:
    """gunicorn serving `checkout`'s app (the harness starts its servers in its own ROOT)."""
    root = h.ROOT
    h.ROOT = checkout
    try:
        return h.gunicorn(name, "wsgi:app", env)
    finally:
        h.ROOT = root


def cpu_seconds(server: h.Server) -> float:
    """utime + stime of the server's workers so far (robust to the machine's other load)."""
    ticks = 0
    for pid in server.workers():
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def main() -> None:
    other = Path(sys.argv[1]).resolve()
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    bench = h.Bench()
    try:
        bench.setup()
        other_db = h.recreate(f"{h.PREFIX}_base")
        other_env = bench.env(other_db)
        h.migrate(other_env)
        h.load_population(other_db, 0, h.USERS, bench.shape)
        servers = {
            "bare read": h.gunicorn("bare", "bench.bare_app:app", bench.bare_env),
            "other consume": served_from(other, "other", other_env),
            "this consume": h.gunicorn("app", "wsgi:app", bench.app_env),
        }
        bench.cleanups += [server.stop for server in servers.values()]
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
        names = list(servers)
        warm = bench.work / "warm.tsv"  # the workers' first requests (pool, prepared statements)
        h.usage_file(warm, h.USERS, bench.file_size(), f"warm-{secrets.token_hex(4)}")
        for name in names[1:]:
            h.wrk(servers[name].url, warm, "POST", "Authorization", seconds=3)
        for rnd in range(rounds):
            tag = secrets.token_hex(4)
            order = names[rnd % 3 :] + names[: rnd % 3]
            for name in reversed(order) if rnd % 2 else order:
                path = bench.work / f"{rnd}-{name.replace(' ', '-')}.tsv"
                cpu_before = cpu_seconds(servers[name])
                if name == "bare read":
                    h.read_file(path, h.USERS, "/api/me")
                    result = h.wrk(servers[name].url, path, "GET", "Authorization")
                else:
                    h.usage_file(path, h.USERS, bench.file_size(), f"{tag}-{name[:5]}")
                    result = h.wrk(servers[name].url, path, "POST", "Authorization")
                used = cpu_seconds(servers[name]) - cpu_before
                result["cpu_ms"] = 1000 * used / max(1, result["requests"])
                runs[name].append(result)
                h.log(
                    f"round {rnd + 1} {name}: {result['rps']:.0f}/s p50 {result['p50_ms']:.1f}"
                    f" ms p99 {result['p99_ms']:.1f} ms non-2xx {result['non_2xx']}"
                    f" worker CPU {result['cpu_ms']:.2f} ms/request"
                )
        report(runs)
    finally:
        for cleanup in reversed(bench.cleanups):
            try:
                cleanup()
            except Exception as exc:  # the others must still stop
                h.log(f"cleanup failed: {exc}")


def report(runs: dict[str, list[dict[str, Any]]]) -> None:
    rps = {name: statistics.median(r["rps"] for r in rs) for name, rs in runs.items()}
    bare = rps["bare read"]
    for name, rs in runs.items():
        p50 = statistics.median(r["p50_ms"] for r in rs)
        p99 = statistics.median(r["p99_ms"] for r in rs)
        non_2xx = sum(r["non_2xx"] for r in rs)
        cpu = statistics.median(r["cpu_ms"] for r in rs)
        print(
            f"{name:14} {rps[name]:7.0f}/s  {rps[name] / bare:.2f}x bare read  "
            f"p50 {p50:.1f} ms  p99 {p99:.1f} ms  non-2xx {non_2xx}  "
            f"worker CPU {cpu:.2f} ms/request"
        )
    cpu_ratios = [
        this["cpu_ms"] / other["cpu_ms"]
        for this, other in zip(runs["this consume"], runs["other consume"], strict=True)
    ]
    cpu_ratio = statistics.median(cpu_ratios)
    print(f"worker CPU per request this/other, median of rounds: {cpu_ratio:.2f}")
    pairs = zip(runs["this consume"], runs["other consume"], strict=True)
    per_round = [this["rps"] / other["rps"] for this, other in pairs]
    print(
        f"this/other: {rps['this consume'] / rps['other consume']:.2f}x "
        f"(rounds: {', '.join(f'{r:.2f}' for r in per_round)}; median "
        f"{statistics.median(per_round):.2f})"
    )


if __name__ == "__main__":
    os.chdir(h.ROOT)
    main()
