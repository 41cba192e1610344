"""gunicorn workers of our own: `AsgiWorker` (production's, at the end: the Flask app behind
gunicorn's asyncio worker, app/asgi.py), and `BalancedThreadWorker`, opt-in:

gunicorn's gthread worker that takes a new connection only while one of its threads is free.

All workers accept from one listening socket, and gthread accepts whenever it holds fewer than
`worker_connections` (1,000) connections, busy or not. A client that keeps its connections open
(a load balancer, Stripe's sender, wrk) opens them in a burst, and whichever worker wakes first
takes most of them: 14 and 2 of 16 in one bench-peer round, 10/6, 13/3, 11/5 in others. Each
connection stays with its worker, so one worker queues requests behind its few threads on one
core (one GIL) while the other idles (docs/performance.md, "serving"). Here a worker with all
threads taken stops accepting, and the connection waits in the kernel's queue for a worker
with a free thread, as sync workers balance. Connections a worker holds already are served as
before (their requests wait for its threads).

Opt-in (GUNICORN_WORKER_CLASS=app.web_worker.BalancedThreadWorker), not the default: in three
same-run A/Bs it spread the connections evenly (8/8, 9/7, 8/7) and took 0.88-1.34x the events/s,
but p99 was 0.91-3.2x (docs/performance.md, "serving"): connections left in the kernel's queue
wait until a worker has a free thread at its loop's pass, which under load is seldom.
"""

from __future__ import annotations

from typing import Any

from gunicorn.workers.gasgi import ASGIWorker
from gunicorn.workers.gthread import ThreadWorker


class BalancedThreadWorker(ThreadWorker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Requests handed to the thread pool and not finished yet (running or queued). Only the
        # worker's main thread changes it: accept, poller callbacks and finish_request run there.
        self.in_flight = 0

    def has_free_thread(self) -> bool:
        return bool(self.in_flight < self.cfg.threads)

    def set_accept_enabled(self, enabled: bool) -> None:
        """gthread's loop asks this on every pass while it may accept: say yes only with a
        free thread (the loop asks again on its next pass, after a request finished)."""
        super().set_accept_enabled(enabled and self.has_free_thread())

    def accept(self, listener: Any) -> None:
        # The listener may be reported readable in the same poll as a kept-alive connection
        # whose request took the last free thread: leave the new connection to another worker.
        if self.has_free_thread():
            super().accept(listener)

    def enqueue_req(self, conn: Any) -> None:
        self.in_flight += 1
        super().enqueue_req(conn)
        if not self.has_free_thread():
            super().set_accept_enabled(False)

    def finish_request(self, conn: Any, fs: Any) -> None:
        self.in_flight -= 1
        super().finish_request(conn, fs)


class AsgiWorker(ASGIWorker):
    """gunicorn's asyncio worker serving the Flask app through app/asgi.py (production's
    default): webhook deliveries on the event loop, every other request in a pool of
    WEB_THREADS threads. gunicorn.conf.py's hooks see the Flask app as `worker.wsgi`, as on
    gthread."""

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        # The asyncio worker warns that it ignores `threads`: here they size the Flask pool.
        return

    def load_wsgi(self) -> None:
        super().load_wsgi()
        from app.asgi import AsgiServer

        # The Flask app the entry point names (gunicorn leaves the attribute untyped).
        flask_app: Any = getattr(self, "asgi")  # noqa: B009
        self.wsgi = flask_app
        self.asgi = AsgiServer(flask_app, threads=self.cfg.threads)
