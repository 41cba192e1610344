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

The same signed events, wrk load, alternating rounds and table as bench-peer (its `rounds`,
with the CPU per request of each server and PostgreSQL's).

    BENCH_PEER_DB=bench_x .venv/bin/python bench/asgi_ceiling.py

Settings: bench/peer.py's (BENCH_SECONDS, BENCH_ROUNDS, BENCH_CONNECTIONS, BENCH_PEER_DB, ...).
"""

from __future__ import annotations

import os
import sys
from contextlib import suppress
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import peer  # noqa: E402
from bench.harness import Server  # noqa: E402

HOOK = "/api/webhooks/stripe"


def main() -> None:
    load = peer.load_module(peer.PEER_DIR.parent / "webhook_load.py")
    url = peer.recreate_database()
    servers: list[Server] = []
    try:
        sandbox, settings = peer.sandbox_and_settings(url)
        servers.append(sandbox)
        env = {**settings, "WEBHOOK_APPLIER": "off"}
        gthread = [peer.PY, "-m", "gunicorn", "-c", "gunicorn.conf.py", "bench.bare_app:app"]
        # gunicorn.conf.py's hooks expect a WSGI worker: the asyncio worker gets only its size.
        workers = str(int(env.get("WEB_CONCURRENCY") or os.cpu_count() or 1))
        asgi = [peer.PY, "-m", "gunicorn", "-c", "/dev/null", "-w", workers, "-k", "asgi"]
        started = {
            "peer": (peer.start_peer(sandbox.url), HOOK),
            "gthread": (peer.start_gunicorn("gthread", gthread, env), HOOK + "/hmac-only"),
            "asgi": (peer.start_gunicorn("asgi", [*asgi, "bench.asgi_app:native"], env), HOOK),
            "asgi+flask": (
                peer.start_gunicorn("asgi+flask", [*asgi, "bench.asgi_app:mixed"], env),
                HOOK + "/hmac-only",
            ),
            "asgi record": (
                peer.start_gunicorn("asgi record", [*asgi, "bench.asgi_app:recording"], env),
                HOOK,
            ),
        }
        servers += [server for server, _ in started.values()]
        targets = {
            name: peer.Target(path, server=server) for name, (server, path) in started.items()
        }
        summary = peer.rounds(load, targets)
        print(f"\nwrk -t2 -c{peer.CONNS}, {peer.SECONDS} s x {peer.ROUNDS} rounds, medians:\n")
        print(peer.table(summary))
    finally:
        for server in reversed(servers):
            with suppress(OSError):
                server.stop()


if __name__ == "__main__":
    main()
