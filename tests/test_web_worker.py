"""Serving findings (issue 19, docs/performance.md "serving").

gunicorn's gthread workers all accept from one socket whether their threads are free or not, so
a burst of kept-alive connections piled up on one worker (14 and 2 of 16 in a bench-peer round)
while the other idled. app/web_worker.py's worker accepts only with a free thread.

The GIL switch interval of the workers is a setting (WEB_SWITCH_INTERVAL_MS) applied after fork.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.processes import ROOT, base_env, free_port
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
