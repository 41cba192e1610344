"""The whole stack as separate processes, as in production: the Stripe sandbox
(`python -m stripe_sandbox`), the GitHub sign-in stand-in (`python -m github_sandbox`) and the
app under gunicorn (2 workers) in development mode, on ephemeral ports, with a migrated SQLite
database, the Pro prices seeded and the webhook endpoint registered. Used by the browser
tests and the TypeScript client's node test:

    python tests/live_stack.py -- npm --prefix clients/typescript test

runs the command with BILLING_API_URL, BILLING_SANDBOX_URL and BILLING_GITHUB_URL set, then
stops everything.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.billing.webhooks.handlers import HANDLED_EVENT_TYPES  # noqa: E402
from app.stripe.gateway import StripeGateway  # noqa: E402
from app.stripe.setup import setup_products  # noqa: E402
from github_sandbox import DEV_CLIENT_ID, DEV_CLIENT_SECRET  # noqa: E402

STRIPE_KEY = "sk_test_live_stack"
JWT_SECRET = "live-stack-jwt-secret-0123456789abcdef"
API_VERSION = "2026-10-28.endive"
BIN = Path(sys.executable).parent


@dataclass
class Stack:
    app_url: str
    sandbox_url: str
    database_url: str
    gateway: StripeGateway
    monthly: str
    yearly: str
    github_url: str

    def flush_webhooks(self, timeout: float = 20.0) -> None:
        reply = requests.post(
            f"{self.sandbox_url}/_sandbox/flush", json={"timeout": timeout}, timeout=timeout + 5
        )
        assert reply.json().get("idle"), "sandbox webhooks still pending"


def _start_sandbox(log: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m <args> --port 0`; the URL it prints as `listening on URL`."""
    process = subprocess.Popen(
        [sys.executable, "-m", *args, "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log.open("wb"),
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    match = re.search(r"listening on (http://\S+)", line)
    if not match:
        process.kill()
        raise RuntimeError(f"{args[0]} did not start: {line!r} (see {log})")
    return process, match.group(1)


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {log.read_text()[-2000:]}")
        try:
            if requests.get(f"{url}/api/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"app not healthy after 30 s: {log.read_text()[-2000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def live_stack(
    work_dir: Path, plans_file: str = "", settings: Mapping[str, str] | None = None
) -> Iterator[Stack]:
    """The stack under the default plans, or those of `plans_file` (docs/entitlements.md);
    `settings` are added to the app's environment (e.g. Stripe Tax on)."""
    sandbox, sandbox_url = _start_sandbox(
        work_dir / "sandbox.log", "stripe_sandbox", "--retry-time-scale", "0.001"
    )
    github, github_url = _start_sandbox(work_dir / "github.log", "github_sandbox")
    listener = socket.socket()
    app: subprocess.Popen[bytes] | None = None
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        app_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        gateway = StripeGateway(STRIPE_KEY, api_version=API_VERSION, api_base=sandbox_url)
        prices = setup_products(gateway).price_ids
        endpoint = gateway.create_webhook_endpoint(
            url=f"{app_url}/api/webhooks/stripe", enabled_events=HANDLED_EVENT_TYPES
        )
        database_url = f"sqlite:///{work_dir}/live-stack.db"
        env = {
            **os.environ,
            "APP_ENV": "development",
            "PUBLIC_URL": app_url,
            "DATABASE_URL": database_url,
            "STRIPE_SECRET_KEY": STRIPE_KEY,
            "STRIPE_API_BASE": sandbox_url,
            "STRIPE_WEBHOOK_SECRET": endpoint["secret"],
            "STRIPE_PRICE_ID_MONTHLY": prices["pro_monthly"],
            "STRIPE_PRICE_ID_YEARLY": prices["pro_yearly"],
            "STRIPE_CREDIT_PACK_PRICE_ID": prices["credit_pack"],
            "STRIPE_MAX_NETWORK_RETRIES": "0",
            "AUTH_JWT_SECRET": JWT_SECRET,
            "GITHUB_CLIENT_ID": DEV_CLIENT_ID,
            "GITHUB_CLIENT_SECRET": DEV_CLIENT_SECRET,
            "GITHUB_BASE_URL": github_url,
            "GITHUB_API_URL": github_url,
            "FRONTEND_URL": "http://localhost:5173",
            "PLANS_FILE": plans_file,
            "LOG_LEVEL": "WARNING",
            # As every suite app (tests/conftest.py): limits are tested in test_rate_limits.py.
            "RATE_LIMIT_ENABLED": "false",
            **(settings or {}),
        }
        subprocess.run(
            [str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        app_log = work_dir / "gunicorn.log"
        fd = listener.fileno()
        app = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "--bind",
                f"fd://{fd}",
                "--workers",
                "2",
                "--threads",
                "4",
                "--graceful-timeout",
                "5",
                "wsgi:app",
            ],
            cwd=ROOT,
            env=env,
            pass_fds=(fd,),
            stdout=app_log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        _wait_healthy(app_url, app, app_log)
        yield Stack(
            app_url,
            sandbox_url,
            database_url,
            gateway,
            prices["pro_monthly"],
            prices["pro_yearly"],
            github_url,
        )
    finally:
        if app is not None:
            _stop(app)
        listener.close()
        _stop(sandbox)
        _stop(github)


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    command = argv[argv.index("--") + 1 :]
    with tempfile.TemporaryDirectory(prefix="live-stack-") as tmp, live_stack(Path(tmp)) as stack:
        env = {
            **os.environ,
            "BILLING_API_URL": stack.app_url,
            "BILLING_SANDBOX_URL": stack.sandbox_url,
            "BILLING_GITHUB_URL": stack.github_url,
        }
        print(f"live stack: app {stack.app_url}, sandbox {stack.sandbox_url}", flush=True)
        return subprocess.run(command, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
