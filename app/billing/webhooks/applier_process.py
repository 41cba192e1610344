"""The webhook applier as one process per host, kept running by gunicorn's master
(WEBHOOK_APPLIER=process, production's default; gunicorn.conf.py's `when_ready` and `on_exit`).

Why a process and not a thread per worker: the applier is CPU-bound Python, and as a thread it
held most of its worker's GIL under load, so that worker's request threads waited (ingest 0.35x
the Express peer, apply lag p99 12 s at 1,000 events/s; docs/performance.md has the A/B). As its
own process it has a GIL of its own, and the kernel shares the cores.

The supervisor is a daemon thread of the master that starts `flask billing apply` and waits on
it; when it exits (a crash, SIGKILL, an OOM kill) it is started again after a pause that doubles
while it keeps dying young (1 s up to 30 s), so a broken one costs nothing but log lines. gunicorn
may reap the child before this thread does (its SIGCHLD handler waits on any child and, since
gunicorn 21, quietly ignores those that are not workers): the wait still returns, only without
the exit status. Several hosts each running one is safe: batches are claimed with
`FOR UPDATE SKIP LOCKED` (applier.py).

Standard library only: it runs in gunicorn's master, which never loads the app itself.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable, Sequence

log = logging.getLogger("gunicorn.error")

FIRST_PAUSE = 1.0
LONGEST_PAUSE = 30.0
# A run at least this long was a working applier: the pause starts again from FIRST_PAUSE.
HEALTHY_RUN = 60.0


class ApplierProcess:
    """Keeps one `argv` child running until `stop()`."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        on_exit: Callable[[int], None] | None = None,
        first_pause: float = FIRST_PAUSE,
    ) -> None:
        self.argv = list(argv)
        self.env = env
        self.cwd = cwd
        self.on_exit = on_exit  # called with the dead child's pid (e.g. its metrics files)
        self.first_pause = first_pause
        self.starts = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._supervise, name="applier-supervisor")
        self._thread.daemon = True
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (the applier finishes its batch and exits), SIGKILL after `timeout`."""
        self._stop.set()
        with self._lock:
            process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._thread is not None:
            self._thread.join(timeout)

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        with self._lock:
            if self._stop.is_set():
                return None
            try:
                self._process = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd)
            except OSError as exc:
                log.error("webhook applier could not start: %s", exc)
                return None
            self.starts += 1
            return self._process

    def _supervise(self) -> None:
        pause = self.first_pause
        while not self._stop.is_set():
            started = time.monotonic()
            process = self._spawn()
            if process is not None:
                log.info("webhook applier started (pid %s)", process.pid)
                code = process.wait()
                if self.on_exit is not None:
                    self.on_exit(process.pid)
                if self._stop.is_set():
                    return
                if time.monotonic() - started >= HEALTHY_RUN:
                    pause = self.first_pause
                log.error(
                    "webhook applier (pid %s) exited (status %s); starting another in %.0f s",
                    process.pid,
                    code,
                    pause,
                )
            self._stop.wait(pause)
            pause = min(pause * 2, LONGEST_PAUSE)
