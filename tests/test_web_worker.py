"""Serving findings (issue 19, docs/performance.md "serving").

gunicorn's gthread workers all accept from one socket whether their threads are free or not, so
a burst of kept-alive connections piled up on one worker (14 and 2 of 16 in a bench-peer round)
while the other idled. app/web_worker.py's worker accepts only with a free thread.

The GIL switch interval of the workers is a setting (WEB_SWITCH_INTERVAL_MS) applied after fork.

Production's worker (gunicorn.conf.py's default) must refuse a request head that never ends, or
one client grows a worker's memory without end: gunicorn's parsers do (limit_request_line,
limit_request_fields, limit_request_field_size), uvicorn's httptools parser, tried as a faster
server, does not (docs/performance.md, tenth pass). Checked on the real server.
"""

from __future__ import annotations

import contextlib
import gc
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
from flask import Flask

from tests.processes import ROOT, base_env, free_port, gunicorn
from tests.test_gunicorn_sizing import gunicorn_conf

SLOW_APP = """
import os, time

def app(environ, start_response):
    time.sleep(0.5)
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
"""


def request(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
    return sock


def answer(sock: socket.socket) -> str:
    data = b""
    while b"\r\n\r\n" not in data or not data.split(b"\r\n\r\n", 1)[1]:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    sock.close()
    return data.split(b"\r\n\r\n", 1)[1].decode()


def started(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("gunicorn did not start")


def test_a_connection_goes_to_a_worker_with_a_free_thread(tmp_path: Path) -> None:
    (tmp_path / "slow_app.py").write_text(SLOW_APP)
    port = free_port()
    env = base_env()
    env["PYTHONPATH"] = f"{tmp_path}:{ROOT}"
    argv = [sys.executable, "-m", "gunicorn", "--workers", "2", "--threads", "1"]
    argv += ["--worker-class", "app.web_worker.BalancedThreadWorker"]
    argv += ["--bind", f"127.0.0.1:{port}", "slow_app:app"]
    # Run from tmp_path: gunicorn would read the repository's gunicorn.conf.py from its directory.
    server = subprocess.Popen(argv, cwd=tmp_path, env=env, stderr=subprocess.DEVNULL)
    try:
        started(port)
        time.sleep(1)  # both workers booted and polling
        # A client opening its kept-alive connections in a burst, as wrk or a load balancer.
        burst = [request(port) for _ in range(8)]
        served = Counter(answer(sock) for sock in burst)
        assert len(served) == 2 and min(served.values()) >= 3, f"connections per worker: {served}"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize(("setting", "expected"), [("", 5.0), ("1", 1.0), ("0.5", 0.5)])
def test_the_gil_switch_interval_of_the_workers_follows_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, setting: str, expected: float
) -> None:
    monkeypatch.setenv("WEB_SWITCH_INTERVAL_MS", setting)
    conf = gunicorn_conf(monkeypatch, tmp_path)
    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)  # CPython's default
        conf.post_fork(None, None)
        assert sys.getswitchinterval() == pytest.approx(expected / 1000)
    finally:
        sys.setswitchinterval(before)


def test_a_worker_leaves_the_loaded_app_out_of_every_later_garbage_collection(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, app: Flask
) -> None:
    """A full collection walked all ~140,000 objects of the loaded app (about 80 ms with the GIL
    held: every request in the worker waited); frozen, it walks what requests leave behind."""
    conf = gunicorn_conf(monkeypatch, tmp_path)
    worker = type("Worker", (), {"wsgi": app})()
    gc.unfreeze()
    try:
        conf.post_worker_init(worker)
        # What a collection still walks (gc.get_objects: every generation but the frozen one).
        assert gc.get_freeze_count() > 10_000
        assert len(gc.get_objects()) < gc.get_freeze_count() / 10
    finally:
        gc.unfreeze()


def production_env(app: Flask) -> dict[str, str]:
    return base_env(
        APP_ENV="testing",
        WEB_CONCURRENCY="1",
        WEB_THREADS="2",
        WEBHOOK_APPLIER="thread",
        DATABASE_URL=app.config["DATABASE_URL"],
        STRIPE_SECRET_KEY=app.config["STRIPE_SECRET_KEY"],
        STRIPE_API_BASE=app.config["STRIPE_API_BASE"],
        STRIPE_WEBHOOK_SECRET="whsec_worker_test",
        AUTH_JWT_SECRET=app.config["AUTH_JWT_SECRET"],
        FRONTEND_URL="http://localhost:5173",
    )


def raw_exchange(port: int, head: bytes, pad: bytes, limit: int) -> tuple[int, bytes]:
    """Send `head`, then `pad` over and over, up to `limit` bytes or until the server stops
    reading; how much was sent, and what the server answered meanwhile (read as it comes: once
    the server closes on unread bytes, its kernel resets the connection)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    answer: list[bytes] = []

    def read() -> None:
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    sent = 0
    try:
        sock.sendall(head)
        while sent < limit:
            sock.sendall(pad)
            sent += len(pad)
    except OSError:  # the server closed the connection
        pass
    reader.join(timeout=10)
    sock.close()
    return sent, b"".join(answer)


@pytest.mark.slow
def test_a_request_head_without_end_is_cut_off_and_the_worker_serves_on(
    app: Flask, tmp_path: Path
) -> None:
    with gunicorn(tmp_path, production_env(app)) as server:
        port = int(server.url.rsplit(":", 1)[1])
        head = b"GET /healthz HTTP/1.1\r\nHost: test\r\n"
        # Endless header lines, then one endless header value: 64 MB offered, each.
        for start, pad in (
            (head, b"X-Pad: " + b"a" * 1000 + b"\r\n"),
            (head + b"X-Long: ", b"a" * 4096),
        ):
            sent, answer = raw_exchange(port, start, pad, 64 * 1024 * 1024)
            assert sent < 16 * 1024 * 1024, "the server read on"
            if answer:  # a 4xx (400 or 431), when it came before the reset
                assert answer.startswith(b"HTTP/1.1 4"), answer[:200]

        # A large but sane head (an 8 KB cookie) is served, and so is everyone after the refusals.
        big = requests.get(
            f"{server.url}/healthz", headers={"Cookie": "c=" + "x" * 8000}, timeout=10
        )
        assert big.status_code == 200
        healthy = requests.get(f"{server.url}/healthz", timeout=10)
        assert healthy.status_code == 200
        # HTTP/1.1 asks an origin server for a Date.
        assert "date" in healthy.headers
