"""gunicorn settings for production (bin/start runs `gunicorn -c gunicorn.conf.py`).

Worker class: gthread. Measured on 2 (shared, noisy) cores with PostgreSQL, `wrk -t2 -c16
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

Processes default to one per core (WEB_CONCURRENCY overrides), threads to 4 (WEB_THREADS
overrides; the database pool follows WEB_THREADS, see app/config.py). Every other number can be
overridden from the environment too. Logs: gunicorn's own lines use the app's format; the app
writes the access line itself. Metrics: workers share PROMETHEUS_MULTIPROC_DIR.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from typing import Any

from gunicorn.glogging import Logger


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


bind = f"{os.environ.get('HOST', '0.0.0.0')}:{_int('PORT', 3001)}"
workers = _int("WEB_CONCURRENCY", multiprocessing.cpu_count())
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
threads = _int("WEB_THREADS", 4)  # the database pool follows WEB_THREADS too (app/config.py)
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


def on_starting(server: Any) -> None:
    """Check the configuration once, in the master, before any worker starts: a bad one stops
    gunicorn with wsgi.py's one message and exit status 3. (Left to the workers, several failing
    at once can race gunicorn's own shutdown and end in a traceback with status 1.)"""
    import sys

    from dotenv import load_dotenv

    from app.config import ConfigError, load_config

    load_dotenv()  # as create_app does, so the master judges the settings the workers will get
    try:
        load_config()
    except ConfigError as exc:
        print(f"billing-api: {exc}", file=sys.stderr)
        sys.exit(3)
    # A new master starts from zero: stale files of a previous run would be added in.
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, exist_ok=True)


def post_worker_init(worker: Any) -> None:
    """Each worker applies recorded webhook events in a thread of its own (app/billing/webhooks/
    applier.py), from its start: events a crashed worker recorded are not left waiting for the
    next delivery. WEBHOOK_APPLIER=off leaves that to `flask billing apply`."""
    app = worker.wsgi
    if app.config.get("WEBHOOK_APPLIER") == "thread":
        app.extensions["webhook_applier"].start()


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
