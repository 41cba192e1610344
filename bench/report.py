"""bench/results/latest.md, latest.json and latest.png from the harness's results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.helpers import ratio

TARGETS = {
    "webhook distinct": "≥ 0.75x bare, p99 ≤ 2x bare's, ≤ 3 statements",
    "webhook with duplicates": "≥ 0.75x bare",
    "webhook invoice.paid": "≥ 0.75x bare",
    "read GET /api/subscription/<me>": "≥ 0.70x bare read",
    "read GET /api/me": "≥ 0.70x bare read",
    "usage POST /api/usage/generations": "≥ 0.50x bare read",
}


def _f(value: float | None, digits: int = 0, suffix: str = "") -> str:
    return "-" if value is None else f"{value:,.{digits}f}{suffix}"


def _ratio_cell(app: dict[str, Any], bare: dict[str, Any]) -> str:
    return _f(ratio(app["rps"], bare["rps"]), 2, "x")


def render(results: dict[str, Any]) -> str:
    s, m = results["settings"], results["machine"]
    sql = results.get("sql", {})
    lines = [
        "# Benchmark results",
        "",
        f"{m['date']}, commit `{m['commit']}`; {m['cores']} cores ({m['cpu']}), load average "
        f"before {m['load_before'][0]:.2f}, after {m.get('load_after', [0])[0]:.2f} (a shared "
        f"machine: absolute figures move with the neighbours, the side-by-side ratios much "
        f"less); PostgreSQL {m['postgres']}, Python {m['python']}, {m['wrk']}.",
        "",
        f"gunicorn `--workers {s['workers']} --threads {s['threads']}` (gthread) for the app "
        f"and the bare baseline alike; wrk `-t{s['wrk_threads']} -c{s['connections']} "
        f"-d{s['seconds']}s`; {s['rounds']} rounds, bare and app alternating (order reversed "
        f"each round), medians; {s['users']:,} users with an active subscription each; "
        f"rate-limit counters in {s.get('rate_limit_storage', 'memory')}. "
        f"Run {results['seconds']:.0f} s in total"
        + (" (BENCH_QUICK smoke run)." if s["quick"] else "."),
        "",
        "## Webhook ingest and reads",
        "",
        "Throughput in requests/s, latencies in ms as wrk saw them; SQL = statements / round "
        "trips per request counted on the wire (serial pass through a counting proxy); Stripe = "
        "calls the app made per request (the sandbox's request log).",
        "",
        "| scenario | app req/s | bare req/s | app/bare | app p50 | app p99 | bare p50 | "
        "bare p99 | p99 app/bare | SQL app | SQL bare | Stripe | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---|",
    ]
    sections = {**results.get("webhooks", {}), **results.get("reads", {})}
    notes = []
    for label, res in sections.items():
        app, bare = res["app"], res["bare"]
        app_sql = sql.get("app", {}).get(label)
        bare_key = label if not label.startswith("usage") else "read GET /api/subscription/<me>"
        bare_sql = sql.get("bare", {}).get(bare_key)
        lines.append(
            f"| {label} | {_f(app['rps'])} | {_f(bare['rps'])} | {_ratio_cell(app, bare)} | "
            f"{_f(app['p50_ms'], 1)} | {_f(app['p99_ms'], 1)} | {_f(bare['p50_ms'], 1)} | "
            f"{_f(bare['p99_ms'], 1)} | {_f(ratio(app['p99_ms'], bare['p99_ms']), 1, 'x')} | "
            f"{_sql(app_sql)} | {_sql(bare_sql)} | "
            f"{_f(app.get('stripe_calls_per_request'), 2)} | {TARGETS.get(label, '')} |"
        )
        for who, r in (("app", app), ("bare", bare)):
            if who == "bare" and label.startswith("usage"):
                continue  # the bare read's figures, reported on their own rows
            if r["non_2xx"] or r["errors"]:
                notes.append(
                    f"{label}, {who}: {r['non_2xx']} non-2xx answers, {r['errors']} errors"
                )
            if r["wrapped"] and not label.startswith("read"):  # read files cycle by design
                notes.append(f"{label}, {who}: a request file ran out and was replayed")
    lines += [
        "",
        "The usage consume is compared with the bare *read* (as the issue's targets are). "
        "Events are `customer.subscription.updated` for existing subscriptions, each newer than "
        'the last and flipping `cancel_at_period_end` (a real change); "with duplicates": '
        "every other delivery repeats the event sent 32 deliveries earlier; `invoice.paid`: "
        "renewal invoices (`billing_reason` subscription_cycle) with a new period each round.",
    ]
    applied = results.get("applied")
    if applied:
        lines += [
            "",
            "Checked after the webhook runs: subscriptions the events changed (watermark moved) "
            + ", ".join(f"{k} {v['subscriptions_changed']:,}" for k, v in applied.items())
            + "; rows renewed by `invoice.paid` (subscription or usage period moved) "
            + ", ".join(f"{k} {v['renewed_rows']:,}" for k, v in applied.items())
            + ".",
        ]
    if notes:
        lines += ["", "Notes: " + "; ".join(notes) + "."]

    if "checkout" in results:
        lines += [
            "",
            "## Checkout create",
            "",
            "Serial `POST /api/create-checkout-session` (`plan: monthly`), "
            "sandbox as Stripe on this machine.",
            "",
            "| caller | requests | p50 ms | p99 ms | Stripe calls/request |",
            "|---|---:|---:|---:|---:|",
        ]
        for label, r in results["checkout"].items():
            lines.append(
                f"| {label} | {r['requests']} | {_f(r['p50_ms'], 1)} | {_f(r['p99_ms'], 1)} | "
                f"{_f(r['stripe_calls_per_request'], 2)} |"
            )

    if "worker_classes" in results:
        lines += [
            "",
            "## gunicorn worker classes (webhook distinct, one run each)",
            "",
            "| worker class | app req/s | app p99 | bare req/s | bare p99 | app/bare | "
            "app peak RSS MB |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for cls, r in results["worker_classes"].items():
            if "skipped" in r:
                lines.append(f"| {cls} | skipped: {r['skipped']} | | | | | |")
                continue
            lines.append(
                f"| {cls} | {_f(r['app']['rps'])} | {_f(r['app']['p99_ms'], 1)} | "
                f"{_f(r['bare']['rps'])} | {_f(r['bare']['p99_ms'], 1)} | "
                f"{_ratio_cell(r['app'], r['bare'])} | {_f(r['rss_mb'], 0)} |"
            )
        lines.append("")
        lines.append(
            "`sync` = `--workers N`, one request at a time each; `gthread` = `--threads "
            f"{s['threads']}`; `gevent` = `--worker-connections 100`."
        )

    if "growth" in results:
        lines += [
            "",
            "## Growth",
            "",
            "App only, events and reads spread over every user; users and subscriptions "
            "bulk-loaded with `generate_series`. Scans = sequential / index scans the app's own "
            "queries made on each table during the step (`pg_stat_user_tables` deltas).",
            "",
            "| users | webhook req/s | webhook p99 | read req/s | read p99 | "
            "seq scans (users, subscriptions, events) | index scans | load s |",
            "|---:|---:|---:|---:|---:|---|---|---:|",
        ]
        plans_ok = True
        for size, r in results["growth"].items():
            sc = r["scans"]
            seqs = ", ".join(str(sc.get(t, {}).get("seq_scan", "-")) for t in _TABLES)
            idxs = ", ".join(str(sc.get(t, {}).get("idx_scan", "-")) for t in _TABLES)
            lines.append(
                f"| {int(size):,} | {_f(r['webhook']['rps'])} | {_f(r['webhook']['p99_ms'], 1)} | "
                f"{_f(r['read']['rps'])} | {_f(r['read']['p99_ms'], 1)} | {seqs} | {idxs} | "
                f"{_f(r['load_seconds'], 1)} |"
            )
            plans_ok = plans_ok and all("Index" in p for p in r["plans"].values())
        sizes = list(results["growth"])
        first, last = results["growth"][sizes[0]], results["growth"][sizes[-1]]
        lines += [
            "",
            f"p99 at {int(sizes[-1]):,} users vs {int(sizes[0]):,}: webhook "
            f"{_f(ratio(last['webhook']['p99_ms'], first['webhook']['p99_ms']), 2, 'x')}, read "
            f"{_f(ratio(last['read']['p99_ms'], first['read']['p99_ms']), 2, 'x')} "
            "(target ≤ 1.5x).",
            "",
            f"Plans of the hot lookups at {int(sizes[-1]):,} users "
            f"({'all use an index' if plans_ok else 'NOT ALL USE AN INDEX'}):",
            "",
        ]
        for name, plan in last["plans"].items():
            lines.append(f"- {name}: `{plan}`")

    if "sync" in results:
        lines += [
            "",
            "## `flask billing sync`",
            "",
            "Sandbox subscriptions bulk-seeded (`POST /_sandbox/clone`), their users present, "
            "no rows yet; the full pass timed end to end. Start-up = what any `flask` command "
            "costs before doing anything; ms per subscription leaves it out. A run still going "
            "when the bench's time budget (BENCH_BUDGET) is spent is stopped and shows the rows "
            "it had written (the pass lists every subscription before writing).",
            *(["", results["sync_note"]] if results.get("sync_note") else []),
            "",
            "| subscriptions | seconds | start-up s | ms per subscription | rows written | "
            "finished |",
            "|---:|---:|---:|---:|---:|---|",
        ]
        for size, r in results["sync"].items():
            finished = "stopped (budget)" if r["stopped"] else f"exit {r['exit']}"
            per = None if r["stopped"] else r["per_subscription_ms"]
            lines.append(
                f"| {int(size):,} | {_f(r['seconds'], 1)} | {_f(r['startup_seconds'], 1)} | "
                f"{_f(per, 1)} | {r['rows']:,} | {finished} |"
            )

    if "rss_mb" in results:
        rss = results["rss_mb"]
        lines += [
            "",
            "## Peak RSS per worker (VmHWM after the load above)",
            "",
            f"- app: {', '.join(_f(x, 0) for x in rss['app'])} MB (target < 120 MB)",
            f"- bare: {', '.join(_f(x, 0) for x in rss['bare'])} MB",
        ]
    if sql.get("app"):
        lines += [
            "",
            "## SQL on the wire per request (serial, one worker)",
            "",
            "| request | app statements | app round trips | bare statements | bare round trips |",
            "|---|---:|---:|---:|---:|",
        ]
        for label, r in sql["app"].items():
            b = sql.get("bare", {}).get(label) or {}
            lines.append(
                f"| {label} | {_f(r['statements'], 1)} | {_f(r['round_trips'], 1)} | "
                f"{_f(b.get('statements'), 1)} | {_f(b.get('round_trips'), 1)} |"
            )
    for who in ("app", "bare"):
        for label in ("webhook distinct", "read GET /api/subscription/<me>"):
            queries = sql.get(who, {}).get(label, {}).get("one_request")
            if queries:
                lines += ["", f"Statements the {who} sent for one `{label}`:", ""]
                lines += [f"{n}. `{_short(q)}`" for n, q in enumerate(queries, 1)]
    lines += targets(results)
    lines += [
        "",
        "Rerun: `make bench` (about 10 minutes; `BENCH_QUICK=1 make bench` for a smoke run). "
        "Chart: `latest.png`; raw figures: `latest.json`.",
        "",
    ]
    return "\n".join(lines)


_TABLES = ("users", "subscriptions", "webhook_events")


def _short(query: str, width: int = 140) -> str:
    one_line = " ".join(query.split()).replace("`", "'")
    return one_line if len(one_line) <= width else one_line[: width - 1] + "…"


def targets(results: dict[str, Any]) -> list[str]:
    """The issue's targets, each met or missed, with the measured value."""
    out = ["", "## Targets", "", "| target | measured | |", "|---|---|---|"]

    def row(name: str, value: float | None, goal: float, higher_is_better: bool, fmt: str) -> None:
        if value is None:
            return
        met = value >= goal if higher_is_better else value <= goal
        out.append(f"| {name} | {format(value, fmt)} | {'met' if met else '**missed**'} |")

    hooks, reads = results.get("webhooks", {}), results.get("reads", {})
    sql = results.get("sql", {}).get("app", {})
    if "webhook distinct" in hooks:
        app, bare = hooks["webhook distinct"]["app"], hooks["webhook distinct"]["bare"]
        row("webhook throughput ≥ 0.75x bare", ratio(app["rps"], bare["rps"]), 0.75, True, ".2f")
        row("webhook p99 ≤ 2x bare's", ratio(app["p99_ms"], bare["p99_ms"]), 2, False, ".1f")
    if "webhook distinct" in sql:
        row(
            "≤ 3 SQL statements per in-order event",
            sql["webhook distinct"]["statements"],
            3,
            False,
            ".1f",
        )
    if hooks:
        calls = max(h["app"].get("stripe_calls_per_request", 0) for h in hooks.values())
        row("0 Stripe calls for common events", calls, 0, False, ".2f")
    for label, goal in (
        ("read GET /api/subscription/<me>", 0.7),
        ("read GET /api/me", 0.7),
        ("usage POST /api/usage/generations", 0.5),
    ):
        if label in reads:
            r = reads[label]
            row(
                f"{label} ≥ {goal}x bare read",
                ratio(r["app"]["rps"], r["bare"]["rps"]),
                goal,
                True,
                ".2f",
            )
    growth = results.get("growth", {})
    if len(growth) > 1:
        sizes = list(growth)
        a, b = growth[sizes[0]], growth[sizes[-1]]
        for kind in ("webhook", "read"):
            row(
                f"{kind} p99 at {int(sizes[-1]):,} users ≤ 1.5x at {int(sizes[0]):,}",
                ratio(b[kind]["p99_ms"], a[kind]["p99_ms"]),
                1.5,
                False,
                ".2f",
            )
    sync = [r for r in results.get("sync", {}).values() if r["rows"] and not r["stopped"]]
    if len(sync) > 1:
        per = [r["per_subscription_ms"] for r in sync]
        row(
            "sync linear: ms per subscription, largest / smallest run",
            per[-1] / per[0],
            1.5,
            False,
            ".2f",
        )
    rss = results.get("rss_mb", {}).get("app")
    if rss:
        row("peak RSS per worker < 120 MB", max(rss), 120, False, ".0f")
    return out


def _sql(counts: dict[str, float] | None) -> str:
    if not counts:
        return "-"
    return f"{counts['statements']:.1f} / {counts['round_trips']:.1f}"


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sections = {**results.get("webhooks", {}), **results.get("reads", {})}
    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    labels = [label.replace(" POST", "\nPOST").replace(" GET", "\nGET") for label in sections]
    xs = range(len(sections))
    app = [r["app"]["rps"] for r in sections.values()]
    bare = [r["bare"]["rps"] for r in sections.values()]
    ax = axes[0]
    ax.bar([x - 0.2 for x in xs], bare, 0.4, label="bare baseline", color="#999999")
    ax.bar([x + 0.2 for x in xs], app, 0.4, label="app", color="#2b6cb0")
    ax.set_xticks(list(xs), labels, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("requests/s (median)")
    ax.set_title("Throughput, app vs bare")
    ax.legend()
    ax = axes[1]
    ax.bar(
        [x - 0.2 for x in xs],
        [r["bare"]["p99_ms"] for r in sections.values()],
        0.4,
        label="bare p99",
        color="#999999",
    )
    ax.bar(
        [x + 0.2 for x in xs],
        [r["app"]["p99_ms"] for r in sections.values()],
        0.4,
        label="app p99",
        color="#c05621",
    )
    ax.set_xticks(list(xs), labels, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("ms")
    ax.set_title("p99 latency")
    ax.legend()
    ax = axes[2]
    growth = results.get("growth", {})
    if growth:
        sizes = [int(k) for k in growth]
        ax.plot(sizes, [g["webhook"]["p99_ms"] for g in growth.values()], "o-", label="webhook p99")
        ax.plot(sizes, [g["read"]["p99_ms"] for g in growth.values()], "s-", label="read p99")
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("users and subscriptions")
        ax.set_ylabel("ms")
        ax.set_title("Growth")
        ax.legend()
    fig.suptitle(
        f"billing API benchmark, {results['machine']['date']}, "
        f"commit {results['machine']['commit']}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


README_START = "<!-- bench:summary:start (python -m bench.report --readme docs/performance.md) -->"
README_END = "<!-- bench:summary:end -->"


def summary(results: dict[str, Any]) -> str:
    """The short version for docs/performance.md."""
    s, m = results["settings"], results["machine"]
    load = f"{m['load_before'][0]:.1f} before, {m.get('load_after', [0])[0]:.1f} after"
    lines = [
        f"{m['date']}, commit `{m['commit']}`: {m['cores']} cores ({m['cpu']}), PostgreSQL "
        f"{m['postgres'].split()[0]} on the same host, Python {m['python']}; a shared machine "
        f"(load average {load}), so absolute figures move between runs, the side-by-side "
        f"ratios much less. gunicorn `-w {s['workers']} --threads {s['threads']}`, wrk "
        f"`-t{s['wrk_threads']} -c{s['connections']}`, {s['users']:,} users, {s['rounds']} "
        f"rounds of {s['seconds']} s, medians. All tables: `bench/results/latest.md`.",
        "",
        "| scenario | app req/s | bare req/s | app/bare | app p50 / p99 ms | bare p50 / p99 ms "
        "| SQL statements (round trips) app / bare | Stripe calls |",
        "|---|---:|---:|---:|---|---|---|---:|",
    ]
    sql = results.get("sql", {})
    for label, res in {**results.get("webhooks", {}), **results.get("reads", {})}.items():
        app, bare = res["app"], res["bare"]
        bare_key = label if not label.startswith("usage") else "read GET /api/subscription/<me>"
        a, b = sql.get("app", {}).get(label), sql.get("bare", {}).get(bare_key)
        counts = (
            f"{_f(a and a['statements'], 1)} ({_f(a and a['round_trips'], 1)}) / "
            f"{_f(b and b['statements'], 1)} ({_f(b and b['round_trips'], 1)})"
        )
        lines.append(
            f"| {label}{' (vs bare read)' if label.startswith('usage') else ''} | "
            f"{_f(app['rps'])} | {_f(bare['rps'])} | {_ratio_cell(app, bare)} | "
            f"{_f(app['p50_ms'])} / {_f(app['p99_ms'])} | {_f(bare['p50_ms'])} / "
            f"{_f(bare['p99_ms'])} | {counts} | {_f(app.get('stripe_calls_per_request'), 2)} |"
        )
    lines += ["", "![benchmark chart](../bench/results/latest.png)", ""]
    for label, r in results.get("checkout", {}).items():
        lines.append(
            f"- Checkout create, {label}: p50 {_f(r['p50_ms'])} ms, p99 {_f(r['p99_ms'])} ms, "
            f"{_f(r['stripe_calls_per_request'], 1)} Stripe calls per request."
        )
    growth = results.get("growth", {})
    if growth:
        cells = "; ".join(
            f"{int(k):,}: webhook {_f(g['webhook']['p99_ms'])} ms, "
            f"read {_f(g['read']['p99_ms'])} ms"
            for k, g in growth.items()
        )
        seq = sum(t["seq_scan"] for g in growth.values() for t in g["scans"].values())
        indexed = all("Index" in p for g in growth.values() for p in g["plans"].values())
        lines.append(
            f"- Growth, p99 by users and subscriptions: {cells}. Hot lookups "
            f"{'all' if indexed else 'NOT all'} index scans; sequential scans by the app's "
            f"queries during the growth runs: {seq}."
        )
    sync = results.get("sync", {})
    if sync:
        cells = "; ".join(
            f"{int(k):,}: {_f(r['seconds'], 1)} s"
            + (" (stopped by the budget)" if r["stopped"] else "")
            for k, r in sync.items()
        )
        lines.append(
            f"- `flask billing sync`: {cells}."
            + (f" {results['sync_note']}" if results.get("sync_note") else "")
        )
    rss = results.get("rss_mb")
    if rss:
        lines.append(
            f"- Peak RSS per worker: app {_f(max(rss['app'] or [0]))} MB, "
            f"bare {_f(max(rss['bare'] or [0]))} MB."
        )
    classes = results.get("worker_classes", {})
    if classes:
        cells = ", ".join(
            f"{cls} {_ratio_cell(r['app'], r['bare'])}" for cls, r in classes.items() if "app" in r
        )
        lines.append(f"- Worker classes, webhook app/bare (one run each): {cells}.")
    missed = [row.split(" | ")[0].lstrip("| ") for row in targets(results) if "missed" in row]
    met = [row.split(" | ")[0].lstrip("| ") for row in targets(results) if "| met |" in row]
    lines.append(
        f"- Targets met: {'; '.join(met) or 'none'}. Missed: {'; '.join(missed) or 'none'}."
    )
    return "\n".join(lines)


def update_readme(results: dict[str, Any], readme: Path) -> None:
    text = readme.read_text()
    start, end = text.index(README_START) + len(README_START), text.index(README_END)
    readme.write_text(text[:start] + "\n" + summary(results) + "\n" + text[end:])


def write_report(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=1, default=str))
    (out / "latest.md").write_text(render(results))
    chart(results, out / "latest.png")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Re-render the results from latest.json.")
    parser.add_argument("directory", nargs="?", default="bench/results")
    parser.add_argument(
        "--readme", help="also rewrite the summary block in this file (docs/performance.md)"
    )
    args = parser.parse_args()
    directory = Path(args.directory)
    data = json.loads((directory / "latest.json").read_text())
    write_report(data, directory)
    if args.readme:
        update_readme(data, Path(args.readme))
