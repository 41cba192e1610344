"""stripe-mock (Stripe's own OpenAPI-driven mock server) for the `stripe_mock` marker tests.

Where it comes from, first match wins:
- STRIPE_MOCK_URL: one already running (`docker run -p 12111:12111 stripe/stripe-mock`);
- the binary STRIPE_MOCK_BIN, else `stripe-mock` in STRIPE_MOCK_DIR (default
  `../shared/tools/stripe-mock` beside the project), started on a free port with the spec and
  fixtures found next to it, and stopped at the end of the session.
Neither there: the tests skip with the reason, or fail when STRIPE_MOCK_REQUIRED=1 (CI), so a
CI run can never pass by silently skipping them.
"""

from __future__ import annotations

import os
import socket
import subprocess  # nosec B404: starts the stripe-mock binary, a fixed path, no shell
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = "../shared/tools/stripe-mock"
STARTUP_TIMEOUT = 30.0


class StripeMockUnavailable(RuntimeError):
    """Neither STRIPE_MOCK_URL nor the stripe-mock binary is there."""


def mock_dir() -> Path:
    configured = Path(os.environ.get("STRIPE_MOCK_DIR") or DEFAULT_DIR)
    return configured if configured.is_absolute() else PROJECT_ROOT / configured


def mock_binary() -> Path:
    configured = os.environ.get("STRIPE_MOCK_BIN")
    if configured:
        path = Path(configured)
        return path if path.is_absolute() else PROJECT_ROOT / path
    return mock_dir() / "stripe-mock"


def required() -> bool:
    return os.environ.get("STRIPE_MOCK_REQUIRED", "") not in ("", "0", "false", "no")


def unavailable_reason() -> str | None:
    """Why stripe-mock can't be had here, or None when it can."""
    if os.environ.get("STRIPE_MOCK_URL"):
        return None
    binary = mock_binary()
    if binary.is_file() and os.access(binary, os.X_OK):
        return None
    return (
        f"stripe-mock is not available: STRIPE_MOCK_URL is not set and no executable at {binary} "
        "(set STRIPE_MOCK_BIN or STRIPE_MOCK_DIR, or run `docker run -p 12111:12111 "
        "stripe/stripe-mock` and set STRIPE_MOCK_URL=http://127.0.0.1:12111)"
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def answers(url: str) -> bool:
    try:
        requests.get(f"{url}/v1/customers", auth=("sk_test_123", ""), timeout=1)
    except requests.RequestException:
        return False
    return True


@contextmanager
def running_stripe_mock() -> Iterator[str]:
    """The base URL of a stripe-mock that answers, for as long as the block runs."""
    url = os.environ.get("STRIPE_MOCK_URL", "").rstrip("/")
    if url:
        yield url
        return
    reason = unavailable_reason()
    if reason:
        raise StripeMockUnavailable(reason)
    binary, folder = mock_binary(), mock_dir()
    command = [str(binary)]
    for flag, name in (("-spec", "spec3.json"), ("-fixtures", "fixtures3.json")):
        if (folder / name).is_file():  # else the spec built into the binary
            command += [flag, str(folder / name)]
    # Bind-then-release can race another process for the port: try a few.
    for _ in range(3):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with tempfile.TemporaryFile() as output:
            process = subprocess.Popen(  # nosec B603: our own binary, no shell
                # It also serves HTTPS, on 12112 unless told: an empty port lets the system
                # pick a free one, so two runs (or another stripe-mock) can't collide there.
                [*command, "-http-addr", f"127.0.0.1:{port}", "-https-addr", "127.0.0.1:"],
                stdout=output,
                stderr=output,
            )
            try:
                deadline = time.monotonic() + STARTUP_TIMEOUT
                while process.poll() is None and time.monotonic() < deadline:
                    if answers(url):
                        break
                    time.sleep(0.05)
                if process.poll() is None and answers(url):
                    yield url
                    return
                output.seek(0)
                log = output.read().decode(errors="replace")[-2000:]
            finally:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    raise StripeMockUnavailable(f"stripe-mock ({binary}) did not start: {log}")
