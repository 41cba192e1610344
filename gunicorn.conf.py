"""gunicorn settings for production (bin/start runs `gunicorn -c gunicorn.conf.py`).

Worker class: app.web_worker.AsgiWorker (issue 19, ninth pass; docs/performance.md), gunicorn's
asyncio worker serving the Flask app through app/asgi.py: a webhook delivery is parsed, checked
and answered on the event loop, its event group-committed with the others in flight (one thread
hand-off per batch), and every other request runs in a pool of WEB_THREADS threads, as on
gthread. Same-run A/B against gthread (bench/peer.py, BENCH_COMPARE=GUNICORN_WORKER_CLASS=gthread):
1.25x the deliveries, workers' CPU per delivery 0.47 vs 0.70 ms; with uvloop and gunicorn's C
parser (GUNICORN_ASGI_LOOP / GUNICORN_HTTP_PARSER, `auto` picks them) another 1.10x.
GUNICORN_WORKER_CLASS=gthread serves everything in threads, as measured below.

Before it, gthread. Measured on 2 (shared, noisy) cores with PostgreSQL, `wrk -t2 -c16
-d8s` on GET /api/me, alternating runs (medians; the runs' range in brackets):

    sync     4 processes            56 req/s [51-61]    p99 0.5-1.4 s
    gthread  2 processes x 4 threads 296 req/s [217-316] p99 0.42 s [0.23-0.56]
    gthread  4 processes x 2 threads 183 req/s [126-359] p99 0.51 s [0.33-1.69]

Sync workers serve one connection at a time and close it after each request, so clients that
keep connections open (load balancers, Stripe's webhook sender, wrk) queue behind each other;
gunicorn's docs recommend them only behind a buffering proxy. gthread keeps connections alive
and overlaps the database round trips of a few requests per process, which is most of a
request's time here (the CPU per request is a few ms). One process per core with 4 threads
did best and costs half the memory of two per core. gevent would need the database driver
patched for cooperative I/O, one more moving part, for no measured need.

Processes default to one per core the container may use, and no more than its memory limit
holds at WEB_WORKER_MEMORY_MB (128) each: `container_workers` reads the cgroup's CPU quota and
memory limit, since the host's CPU count says nothing about a container's share (Render's 512 MB
plan on a many-core host would otherwise start a worker per host core and run out of memory).
WEB_CONCURRENCY overrides. Threads default to 8 (WEB_THREADS overrides; the database pool and
the Stripe-call bulkhead follow WEB_THREADS, see app/config.py). Once the webhook fast path made
a delivery ~0.5 ms of CPU, a worker's 4 threads were mostly waiting on one another's group commit
(a batch holds at most the process's threads): on a quiet machine 8 threads took 1.27x the
deliveries of 4 with a lower p99 (3 of 3 rounds won, 22 vs 28 ms), and 16 were no better than 8
(1.03x; docs/performance.md, "issue 19, fifth pass"). Every other number can be overridden from
the environment too.

Webhook ingest, same-run A/Bs (bench/peer.py with BENCH_COMPARE, 3 s x 3 rounds, medians, ours*
/ ours). Before the fast path, against 4 threads, on a busy shared machine (docs/performance.md
"serving"):

    WEB_THREADS=8                 0.88x events/s  p99 90 -> 140 ms
    WEB_CONCURRENCY=4             0.87x events/s  p99 60 -> 76 ms
    WEB_SWITCH_INTERVAL_MS=1      1.06-1.41x      p99 0.66-1.21x (3 runs; 8 of 11 rounds won)
    WEBHOOK_APPLIER_NICE=10       1.03-1.27x      sustained 1,000/s (with the 1 ms switch):
                                                  apply lag p99 4.4 -> 9.2 s
    BalancedThreadWorker          0.88-1.34x      p99 0.91-3.2x (3 runs; connections split
                                                  evenly, but the late ones wait to be accepted)

After it, quiet machine (docs/performance.md "issue 19, fifth pass"):

    WEB_THREADS=8 (against 4)     1.27x events/s  p99 28 -> 22 ms (3 of 3 rounds won)
    WEB_THREADS=16 (against 8)    1.03x           p99 23 -> 23 ms
    WEB_SWITCH_INTERVAL_MS=1      0.99x           p99 26 -> 30 ms
    WEBHOOK_APPLIER_NICE=10       1.16x           sustained 1,000/s: apply lag p99 0.66 -> 3.3 s

After the claim walked its index and late events went set-based (applying 0.22 ms of CPU per
event; "issue 19, sixth pass"):

    WEBHOOK_APPLIER_NICE=19       1.31x events/s  3 of 3 rounds won; sustained 1,000/s: apply
                                                  lag p99 90 -> 130 ms

WEB_THREADS=8 and WEBHOOK_APPLIER_NICE=19 are the defaults: the others were not clearly better,
or cost the apply lag (the niced applier did too, until applying became cheap). How the
client's kept-alive connections split between the workers also decides a run (14/2 of 16 in
some rounds; app/web_worker.py).

Logs: gunicorn's own lines use the app's format; the app writes the access line itself. Metrics:
workers share PROMETHEUS_MULTIPROC_DIR.

The webhook applier (WEBHOOK_APPLIER=process, production's default) is one process per host
that the master starts in when_ready, starts again when it dies and stops in on_exit, not a
thread in each worker: as a thread it held most of its worker's GIL under load. Same-run A/B
(bench/peer.py, 2 workers, docs/performance.md): the process took 1.9-4.3x the events/s of the
threads, p99 0.1-0.6x, and about 0.63x the CPU per event (2.56-2.90 vs 4.19-4.48 ms).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from gunicorn.glogging import Logger


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


UNLIMITED = 1 << 60  # cgroup v1 writes "no limit" as a huge number


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cgroup_cpus(root: Path) -> float | None:
    """The CPU quota in cores (cgroup v2 `cpu.max`, else v1's CFS quota), None when unlimited."""
    v2 = _read(root / "cpu.max")
    if v2:
        quota, _, period = v2.partition(" ")
        if quota != "max" and period:
            return int(quota) / int(period)
        return None
    for directory in ("cpu", "cpu,cpuacct"):
        quota_text = _read(root / directory / "cpu.cfs_quota_us")
        period_text = _read(root / directory / "cpu.cfs_period_us")
        if quota_text and period_text and int(quota_text) > 0:
            return int(quota_text) / int(period_text)
    return None


def cgroup_memory_bytes(root: Path) -> int | None:
    """The memory limit (cgroup v2 `memory.max`, else v1's), None when unlimited."""
    for path in (root / "memory.max", root / "memory" / "memory.limit_in_bytes"):
        text = _read(path)
        if text and text != "max":
            limit = int(text)
            return limit if limit < UNLIMITED else None
    return None


def container_workers(root: Path, cpu_count: int, worker_mb: int) -> int:
    """One worker per core the container may use, no more than its memory holds at
    `worker_mb` each; at least one."""
    workers = cpu_count
    cpus = cgroup_cpus(root)
    if cpus is not None:
        workers = min(workers, math.ceil(cpus))
    memory = cgroup_memory_bytes(root)
    if memory is not None:
        workers = min(workers, memory // (max(1, worker_mb) * 1024 * 1024))
    return max(1, workers)


bind = f"{os.environ.get('HOST', '0.0.0.0')}:{_int('PORT', 3001)}"


def usable_cpus() -> int:
    """The cores this process may run on (a cpuset narrows them), before any quota."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


workers = _int("WEB_CONCURRENCY", 0) or container_workers(
    Path("/sys/fs/cgroup"), usable_cpus(), _int("WEB_WORKER_MEMORY_MB", 128)
)
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "app.web_worker.AsgiWorker")
threads = _int("WEB_THREADS", 8)  # the database pool follows WEB_THREADS too (app/config.py)
# The asyncio worker's event loop (uvloop when installed) and HTTP parser (gunicorn_h1c's C
# parser when installed); "asyncio" and "python" are the pure-Python ones.
asgi_loop = os.environ.get("GUNICORN_ASGI_LOOP", "").strip() or "auto"
http_parser = os.environ.get("GUNICORN_HTTP_PARSER", "").strip() or "auto"
# Stripe calls are bounded by the SDK's timeout; a request still running after this is stuck.
timeout = _int("GUNICORN_TIMEOUT", 60)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)  # SIGTERM: finish in-flight requests
keepalive = _int("GUNICORN_KEEPALIVE", 5)
max_requests = _int("GUNICORN_MAX_REQUESTS", 0)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 0)
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
control_socket_disable = True

# Logs: the app writes one line per request itself (method, route, status, duration, user,
# request id), so gunicorn's access log is off; gunicorn's own lines use the app's formatter.
accesslog = None


class AppLogger(Logger):
    """gunicorn's logger with no access line at all. With a `logconfig_dict` gunicorn builds
    every access line (about 3% of a webhook's CPU under load) even though its logger then
    drops it."""

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        return


logger_class = AppLogger
logconfig_dict: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"app": {"()": "app.observability.logging.make_formatter"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "app",
            "stream": "ext://sys.stderr",
        }
    },
    "root": {"level": "INFO", "handlers": []},  # the app adds its own handler in each worker
    "loggers": {
        "gunicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
    },
}

# Prometheus multiprocess mode: each worker writes its values to files in this directory and
# /metrics adds them up. It must be set before the app (prometheus_client) is imported.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="billing-metrics-")


# The webhook applier process (WEBHOOK_APPLIER=process), kept by the master: see when_ready.
_applier: Any = None
_applier_mode = "thread"


def on_starting(server: Any) -> None:
    """Check the configuration once, in the master, before any worker starts: a bad one stops
    gunicorn with wsgi.py's one message and exit status 3. (Left to the workers, several failing
    at once can race gunicorn's own shutdown and end in a traceback with status 1.)"""
    import sys

    from dotenv import load_dotenv

    from app.config import ConfigError, load_config

    load_dotenv()  # as create_app does, so the master judges the settings the workers will get
    global _applier_mode
    try:
        config = load_config()
    except ConfigError as exc:
        print(f"billing-api: {exc}", file=sys.stderr)
        sys.exit(3)
    _applier_mode = config["WEBHOOK_APPLIER"]
    # A new master starts from zero: stale files of a previous run would be added in.
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, exist_ok=True)


def when_ready(server: Any) -> None:
    """WEBHOOK_APPLIER=process (production's default): the master starts one `flask billing
    apply` beside the workers and starts it again whenever it dies
    (app/billing/webhooks/applier_process.py); on_exit stops it with the server."""
    global _applier
    if _applier_mode != "process" or _applier is not None:
        return
    import sys

    from prometheus_client import multiprocess

    from app.billing.webhooks.applier_process import ApplierProcess

    _applier = ApplierProcess(
        [sys.executable, "-m", "flask", "--app", "wsgi", "billing", "apply"],
        env={**os.environ, "WEBHOOK_APPLIER_PARENT": str(os.getpid())},
        on_exit=multiprocess.mark_process_dead,
    )
    _applier.start()


def on_exit(server: Any) -> None:
    if _applier is not None:
        _applier.stop(timeout=float(graceful_timeout))


# How long a thread may hold the GIL while another waits for it (unset: CPython's 5 ms). A
# request thread back from the database, and gthread's main thread handing a kept-alive
# connection to the pool, each wait up to this long for a thread that is busy in Python. 1 ms
# was not clearly better in same-run A/Bs on a busy machine (see above), so it is not the default.
switch_interval_ms = float(os.environ.get("WEB_SWITCH_INTERVAL_MS", "").strip() or 0)


def post_fork(server: Any, worker: Any) -> None:
    if switch_interval_ms > 0:
        import sys

        sys.setswitchinterval(switch_interval_ms / 1000)


def post_worker_init(worker: Any) -> None:
    """WEBHOOK_APPLIER=thread (development's default): each worker applies recorded webhook
    events in a thread of its own (app/billing/webhooks/applier.py), from its start: events a
    crashed worker recorded are not left waiting for the next delivery. Then the loaded app is
    frozen out of the garbage collector's walks (app/gc_tuning.py)."""
    app = worker.wsgi
    if app.config.get("WEBHOOK_APPLIER") == "thread":
        app.extensions["webhook_applier"].start()
    from app.gc_tuning import freeze_loaded_objects

    freeze_loaded_objects()


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
