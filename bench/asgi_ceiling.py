"""What a Python ingest could reach under gunicorn's asyncio worker, against the guide's peer.

`make bench-peer` puts the ceiling of a Python ingest at bench/bare_app.py's HMAC-only Flask
route under gthread, and that ceiling sits near the peer's rate (0.93-1.41x). This measures the
same work without Flask and WSGI, as an ASGI app under gunicorn's own `-k asgi` worker, and a
Flask route behind it through a2wsgi (what the app's other routes would pay if it were served
that way), with the peer beside them:

- peer: the guide's Express server (bench/peer.py's `start_peer`), its full ingest;
- gthread: bench/bare_app.py's HMAC-only route, gunicorn.conf.py's settings (gthread);
  the asyncio worker runs as many processes (gunicorn.conf.py's hooks are the WSGI worker's);
- asgi: bench/asgi_app.py `native`, the HMAC-only check as an ASGI app, `-k asgi`;
- asgi+flask: bench/asgi_app.py `mixed`, the Flask HMAC-only route through a2wsgi, `-k asgi`;
- asgi record: bench/asgi_app.py `recording`, the check and then a durable write of the event
  (group commit on asyncio) into the app's webhook_events before the 200, as the app answers
  (its applier does not run: the peer's figure includes applying, this one does not).

The same signed events and wrk load as bench-peer, rounds alternating, medians and ratios.

    BENCH_PEER_DB=bench_x .venv/bin/python bench/asgi_ceiling.py

Settings: BENCH_SECONDS (6), BENCH_ROUNDS (3), BENCH_CONNECTIONS (16), and bench/peer.py's.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from contextlib import suppress
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import peer  # noqa: E402
from bench.harness import Server  # noqa: E402

SECONDS = int(os.environ.get("BENCH_SECONDS") or 6)
ROUNDS = int(os.environ.get("BENCH_ROUNDS") or 3)
CONNS = int(os.environ.get("BENCH_CONNECTIONS") or 16)
HOOK = "/api/webhooks/stripe"


def main() -> None:
    load = peer.load_module(peer.PEER_DIR.parent / "webhook_load.py")
    url = peer.recreate_database()
    servers: list[Server] = []
    try:
        sandbox = Server(
            "sandbox", [peer.PY, "-m", "stripe_sandbox", "--port", "0"], {**os.environ},
            r"listening on (http://\S+)",
        )  # fmt: skip
        servers.append(sandbox)
        env = {**peer.app_env(url, sandbox.url), "WEBHOOK_APPLIER": "off"}
        subprocess.run(
            [peer.PY, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
            cwd=ROOT, env=env, check=True, capture_output=True,
        )  # fmt: skip
        gunicorn = [peer.PY, "-m", "gunicorn", "-c", "gunicorn.conf.py"]
        # gunicorn.conf.py's hooks expect a WSGI worker: the asyncio worker gets only its size.
        workers = str(int(env.get("WEB_CONCURRENCY") or os.cpu_count() or 1))
        asgi = [peer.PY, "-m", "gunicorn", "-c", "/dev/null", "-w", workers, "-k", "asgi"]
        targets = {
            "peer": (peer.start_peer(sandbox.url), HOOK),
            "gthread": (peer.start_gunicorn("gthread", [*gunicorn, "bench.bare_app:app"], env),
                        HOOK + "/hmac-only"),
            "asgi": (peer.start_gunicorn("asgi", [*asgi, "bench.asgi_app:native"], env), HOOK),
            "asgi+flask": (peer.start_gunicorn("asgi+flask", [*asgi, "bench.asgi_app:mixed"], env),
                           HOOK + "/hmac-only"),
            "asgi record": (peer.start_gunicorn("asgi record", [*asgi,
                                                               "bench.asgi_app:recording"], env),
                            HOOK),
        }  # fmt: skip
        servers += [server for server, _ in targets.values()]
        rates: dict[str, list[float]] = {name: [] for name in targets}
        p99s: dict[str, list[float]] = {name: [] for name in targets}
        for n in range(ROUNDS):
            for name in list(targets) if n % 2 == 0 else reversed(list(targets)):
                server, path = targets[name]
                result = load.run(
                    server.url + path, peer.SECRET, 6000 * SECONDS, 1000, SECONDS, CONNS
                )
                rates[name].append(result["rps"])
                p99s[name].append(peer.ms(result["p99"]))
                peer.log(
                    f"round {n + 1} {name:10}: {result['rps']:8.0f}/s p50 {result['p50']}"
                    f" p99 {result['p99']} non-2xx {result['non2xx']}"
                )
        base = statistics.median(rates["peer"])
        print(f"\nwrk -t2 -c{CONNS}, {SECONDS} s x {ROUNDS} rounds, medians:\n")
        print("| server | requests/s | vs peer | p99 ms |\n| --- | ---: | ---: | ---: |")
        for name in targets:
            rate, p99 = statistics.median(rates[name]), statistics.median(p99s[name])
            print(f"| {name} | {rate:.0f} | {rate / base:.2f}x | {p99:.1f} |")
    finally:
        for server in reversed(servers):
            with suppress(OSError):
                server.stop()


if __name__ == "__main__":
    main()
