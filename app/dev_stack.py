"""Development only: where the app's Stripe settings come from when none are configured.

The app never starts or imports a Stripe stand-in. `make run` runs bin/dev-stack, which starts
the sandbox package (sandboxes/), seeds it with this app's own setup code, and passes
STRIPE_SECRET_KEY, STRIPE_API_BASE, the price ids and the webhook secret to the server's
environment. It also writes them to `SANDBOX_INFO_FILE` (default instance/stripe-sandbox.json)
with its process id, so a one-off command in another terminal (`flask billing sync`) talks to
the same sandbox. Serving in development with neither a key nor a running dev stack stops at
start-up with one line naming `make run` (docs/sandbox.md).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from app.config import ConfigError

# What bin/dev-stack publishes; configured prices win over the published ones.
PUBLISHED_SETTINGS = (
    "STRIPE_SECRET_KEY",
    "STRIPE_API_BASE",
    "STRIPE_PRICE_ID_MONTHLY",
    "STRIPE_PRICE_ID_YEARLY",
    "STRIPE_WEBHOOK_SECRET",
)
NO_STRIPE = (
    "STRIPE_SECRET_KEY is not set and no dev stack is running: start the API with `make run` "
    "(it starts the Stripe sandbox and points the app at it), or set STRIPE_SECRET_KEY=sk_test_... "
    "in .env (docs/sandbox.md)"
)


def sandbox_info_path(config: dict[str, Any]) -> str:
    if config.get("SANDBOX_INFO_FILE"):
        return str(config["SANDBOX_INFO_FILE"])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(root, "instance", "stripe-sandbox.json")


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_dev_stack_settings(config: dict[str, Any]) -> dict[str, Any] | None:
    """The running dev stack's Stripe settings; None when there is none (or it has died)."""
    try:
        with open(sandbox_info_path(config)) as handle:
            info = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not _pid_alive(info.get("pid")):
        return None
    if not all(isinstance(info.get(name), str) for name in PUBLISHED_SETTINGS):
        return None
    return info


def configure_development_stripe(config: dict[str, Any]) -> None:
    """In development without a Stripe key: use the running dev stack's sandbox; serving
    without one refuses to start (one-off commands such as `flask db upgrade` or
    `flask auth token` need no Stripe and go on)."""
    if config["STRIPE_SECRET_KEY"] or config["APP_ENV"] != "development":
        return
    info = read_dev_stack_settings(config)
    if info is not None:
        for name in PUBLISHED_SETTINGS:
            if not name.startswith("STRIPE_PRICE_ID_") or not config.get(name):
                config[name] = info[name]
        return
    if not _is_flask_command_other_than_run():
        raise ConfigError([NO_STRIPE])


def _is_flask_command_other_than_run() -> bool:
    program = os.path.basename(sys.argv[0]) if sys.argv else ""
    is_flask_cli = program == "flask" or (program == "__main__.py" and "flask" in sys.argv[0])
    return is_flask_cli and "run" not in sys.argv[1:]
