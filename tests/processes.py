"""Run the app the way production does (gunicorn with gunicorn.conf.py, bin/start, the CLI) as
real subprocesses, with their JSON logs in a file the test reads."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
# Settings a test must not inherit from the developer's shell or .env.
SCRUBBED = (
    "APP_ENV",
    "DATABASE_URL",
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_API_BASE",
    "STRIPE_PRICE_ID_MONTHLY",
    "STRIPE_PRICE_ID_YEARLY",
    "PROMETHEUS_MULTIPROC_DIR",
    "SENTRY_DSN",
    "WEB_CONCURRENCY",
    "PORT",
)


def base_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", PYTHON=sys.executable)
    env.update(settings)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def flask_cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Server:
    process: subprocess.Popen
    log_path: Path
    url: str = ""

    def lines(self) -> list[str]:
        return self.log_path.read_text().splitlines()

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines() if line.strip()]

    def wait_for_line(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines():
                found = re.search(pattern, line)
                if found:
                    return found
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no log line matched {pattern!r}:\n" + "\n".join(self.lines()))

    def wait_until_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError("server never became healthy:\n" + "\n".join(self.lines()))


@contextmanager
def gunicorn(
    tmp_path: Path, env: dict[str, str], *, port: int = 0, launcher: Sequence[str] = ()
) -> Iterator[Server]:
    """gunicorn -c gunicorn.conf.py wsgi:app on 127.0.0.1 (an ephemeral port by default),
    started through `launcher` when given (e.g. bin/dev-stack --)."""
    log_path = tmp_path / f"gunicorn-{time.monotonic_ns()}.log"
    env = {**env, "HOST": "127.0.0.1", "PORT": str(port)}
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [*launcher, sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, log_path)
    try:
        found = server.wait_for_line(r"Listening at: (http://127\.0\.0\.1:\d+)")
        server.url = found.group(1)
        server.wait_until_ready()
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
