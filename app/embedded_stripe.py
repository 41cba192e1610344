"""The offline default: with no STRIPE_SECRET_KEY outside production, run the project's Stripe
sandbox in-process, seed the Pro product and its prices and register our webhook endpoint there.

Under several workers (gunicorn in development) exactly one process owns the sandbox: it takes
an exclusive lock on `<info file>.lock`, starts the sandbox and writes its URL, key, prices and
webhook secret to the info file (`SANDBOX_INFO_FILE`, default `instance/stripe-sandbox.json`);
the others wait for that file and use the same sandbox. Commands such as `flask billing sync`
read the file too, so the CLI talks to the sandbox `make run` started.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sys
import time
from typing import IO, Any

from app.billing.webhooks.handlers import HANDLED_EVENT_TYPES
from app.stripe.gateway import StripeGateway
from app.stripe.setup import setup_products

log = logging.getLogger(__name__)

# The in-process sandbox's own key: it unlocks nothing anywhere else.
SANDBOX_SECRET_KEY = "sk_test_embedded_sandbox"  # nosec B105


def wants_embedded_sandbox(config: dict[str, Any]) -> bool:
    """Serving without a Stripe key outside production; not for one-off commands such as
    `flask db upgrade` or `flask auth token`, which must not grab the sandbox's port."""
    if config["STRIPE_SECRET_KEY"] or config["APP_ENV"] != "development":
        return False
    return not _is_flask_command_other_than_run()


def _is_flask_command_other_than_run() -> bool:
    program = os.path.basename(sys.argv[0]) if sys.argv else ""
    is_flask_cli = program == "flask" or (program == "__main__.py" and "flask" in sys.argv[0])
    return is_flask_cli and "run" not in sys.argv[1:]


INFO_SETTINGS = (
    "STRIPE_SECRET_KEY",
    "STRIPE_API_BASE",
    "STRIPE_PRICE_ID_MONTHLY",
    "STRIPE_PRICE_ID_YEARLY",
    "STRIPE_WEBHOOK_SECRET",
)
JOIN_TIMEOUT_SECONDS = 30.0
_owner_lock: IO[str] | None = None  # held for the life of the process that owns the sandbox


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


def read_sandbox_info(config: dict[str, Any]) -> dict[str, Any] | None:
    """The running embedded sandbox's settings, if its owner process is still alive."""
    try:
        with open(sandbox_info_path(config)) as handle:
            info = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not _pid_alive(info.get("pid")):
        return None
    return info


def use_running_sandbox(config: dict[str, Any]) -> bool:
    """For commands in development without a Stripe key: use the sandbox `make run` started."""
    if config["STRIPE_SECRET_KEY"] or config["APP_ENV"] == "production":
        return False
    info = read_sandbox_info(config)
    if info is None:
        return False
    _apply_info(config, info)
    return True


def _apply_info(config: dict[str, Any], info: dict[str, Any]) -> None:
    # As in the owner: the sandbox's key, URL and webhook secret; configured prices win.
    for name in INFO_SETTINGS:
        if not name.startswith("STRIPE_PRICE_ID_") or not config.get(name):
            config[name] = info[name]


def start_or_join_embedded_sandbox(config: dict[str, Any]) -> Any:
    """Start the sandbox in this process, or, when another worker owns it, use that one."""
    global _owner_lock
    if _owner_lock is not None:
        # This process owns the shared sandbox already; another app in it (tests) gets its own.
        return start_embedded_sandbox(config)
    path = sandbox_info_path(config)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    lock = open(path + ".lock", "a+")  # noqa: SIM115 (held open while the process lives)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        _join_running_sandbox(config)
        return None
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
    sandbox = start_embedded_sandbox(config)
    info = {"pid": os.getpid(), **{name: config[name] for name in INFO_SETTINGS}}
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as handle:
        json.dump(info, handle)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)
    _owner_lock = lock
    return sandbox


def _join_running_sandbox(config: dict[str, Any]) -> None:
    deadline = time.monotonic() + JOIN_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        info = read_sandbox_info(config)
        if info is not None and info.get("pid") != os.getpid():
            _apply_info(config, info)
            log.info("using the embedded Stripe sandbox of process %s", info["pid"])
            return
        time.sleep(0.1)
    raise RuntimeError(
        f"another process holds {sandbox_info_path(config)}.lock but never wrote the "
        "sandbox's settings; stop the other server or delete the lock file"
    )


def start_embedded_sandbox(config: dict[str, Any]) -> Any:
    from stripe_sandbox import Sandbox

    sandbox = Sandbox(state_path=config["SANDBOX_STATE_FILE"] or None)
    url = sandbox.start(host="127.0.0.1", port=config["SANDBOX_PORT"])
    config["STRIPE_SECRET_KEY"] = SANDBOX_SECRET_KEY
    config["STRIPE_API_BASE"] = url
    gateway = StripeGateway(
        SANDBOX_SECRET_KEY, api_version=config["STRIPE_API_VERSION"], api_base=url
    )
    prices = seed_catalog(gateway)
    config["STRIPE_PRICE_ID_MONTHLY"] = config["STRIPE_PRICE_ID_MONTHLY"] or prices["pro_monthly"]
    config["STRIPE_PRICE_ID_YEARLY"] = config["STRIPE_PRICE_ID_YEARLY"] or prices["pro_yearly"]
    endpoint = gateway.create_webhook_endpoint(
        url=config["PUBLIC_URL"].rstrip("/") + "/api/webhooks/stripe",
        enabled_events=HANDLED_EVENT_TYPES,
        api_version=config["STRIPE_API_VERSION"],
    )
    config["STRIPE_WEBHOOK_SECRET"] = endpoint["secret"]
    log.info("embedded Stripe sandbox at %s", url)
    return sandbox


def seed_catalog(gateway: StripeGateway) -> dict[str, str]:
    """The Pro product and its prices (the same as `flask billing setup-products`), found by
    lookup key so a persisted sandbox is reused."""
    return setup_products(gateway).price_ids
