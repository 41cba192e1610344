"""gunicorn settings for production (the Dockerfile runs `gunicorn -c gunicorn.conf.py`).

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
overrides; the database pool follows WEB_THREADS, see app/config.py).
"""

import multiprocessing
import os

bind = f"0.0.0.0:{os.environ.get('PORT', '3001')}"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY") or multiprocessing.cpu_count())
threads = int(os.environ.get("WEB_THREADS") or 4)
# Keep client connections open between requests (the load balancer reuses them).
keepalive = 5
accesslog = "-"


def on_starting(server: object) -> None:
    """Check the configuration once, in the master, before any worker starts: a bad one stops
    gunicorn with wsgi.py's one message and exit status 3. (Left to the workers, several failing
    at once can race gunicorn's own shutdown and end in a traceback with status 1.)"""
    import sys

    from app.config import ConfigError, load_config

    try:
        load_config()
    except ConfigError as exc:
        print(f"billing-api: {exc}", file=sys.stderr)
        sys.exit(3)
