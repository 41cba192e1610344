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

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence

log = logging.getLogger("gunicorn.error")

FIRST_PAUSE = 1.0
LONGEST_PAUSE = 30.0
# A run at least this long was a working applier: the pause starts again from FIRST_PAUSE.
HEALTHY_RUN = 60.0


class ApplierProcess:
    """Keeps one `argv` child running until `stop()`. `argv[0]` is an absolute path; the child
    runs in the master's directory.

    It is started with posix_spawn, not subprocess.Popen: Popen's fork reports exec failures
    through a pipe and waits for it to close, and a worker the master forks at that moment
    inherits the pipe's write end and keeps it open, so Popen (and the supervisor) hung until
    that worker died (seen: the applier was never restarted after a kill)."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        on_exit: Callable[[int], None] | None = None,
        first_pause: float = FIRST_PAUSE,
    ) -> None:
        self.argv = list(argv)
        self.env = env
        self.on_exit = on_exit  # called with the dead child's pid (e.g. its metrics files)
        self.first_pause = first_pause
        self.starts = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._thread: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        """The running child's pid (None between a death and the next start)."""
        return self._pid

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._supervise, name="applier-supervisor")
        self._thread.daemon = True
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (the applier finishes its batch and exits), SIGKILL after `timeout`."""
        with self._lock:
            self._stop.set()
            pid = self._pid
        if pid is not None:
            _signal(pid, signal.SIGTERM)
        if self._thread is None:
            return
        self._thread.join(timeout)
        if self._thread.is_alive() and pid is not None:
            _signal(pid, signal.SIGKILL)
            self._thread.join(timeout)

    def _spawn(self) -> int | None:
        with self._lock:
            if self._stop.is_set():
                return None
            try:
                self._pid = os.posix_spawn(self.argv[0], self.argv, self.env or dict(os.environ))
            except OSError as exc:
                log.error("webhook applier could not start: %s", exc)
                return None
            self.starts += 1
            return self._pid

    def _supervise(self) -> None:
        pause = self.first_pause
        while not self._stop.is_set():
            started = time.monotonic()
            pid = self._spawn()
            if pid is not None:
                log.info("webhook applier started (pid %s)", pid)
                code = _wait(pid)
                with self._lock:
                    self._pid = None
                if self.on_exit is not None:
                    try:
                        self.on_exit(pid)
                    except Exception:
                        log.exception("webhook applier: cleaning up after pid %s", pid)
                if self._stop.is_set():
                    return
                if time.monotonic() - started >= HEALTHY_RUN:
                    pause = self.first_pause
                log.error(
                    "webhook applier (pid %s) exited (status %s); starting another in %.0f s",
                    pid,
                    "unknown" if code is None else code,
                    pause,
                )
            self._stop.wait(pause)
            pause = min(pause * 2, LONGEST_PAUSE)


def _wait(pid: int) -> int | None:
    """The child's exit code (negative: the signal that ended it); None when gunicorn's master
    reaped it first."""
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
