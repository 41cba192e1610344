"""The offline default: with no STRIPE_SECRET_KEY outside production, run the project's Stripe
sandbox in-process, seed the guide's product and register our webhook endpoint there."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from app.billing.webhooks import HANDLED_EVENT_TYPES
from app.stripe_gateway import StripeGateway

log = logging.getLogger(__name__)

# The in-process sandbox's own key: it unlocks nothing anywhere else.
SANDBOX_SECRET_KEY = "sk_test_embedded_sandbox"  # nosec B105
PRODUCT_NAME = "AI Creator Studio Pro"
PRODUCT_DESCRIPTION = "Unlimited generations and premium features"
# The guide's prices: $19/month and $180/year.
SEEDED_PRICES = (("pro_monthly", 1900, "month"), ("pro_yearly", 18000, "year"))


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
    )
    config["STRIPE_WEBHOOK_SECRET"] = endpoint["secret"]
    log.info("embedded Stripe sandbox at %s", url)
    return sandbox


def seed_catalog(gateway: StripeGateway) -> dict[str, str]:
    """The guide's product and prices, found by lookup key so a persisted sandbox is reused."""
    found = {key: gateway.find_price_by_lookup_key(key) for key, _, _ in SEEDED_PRICES}
    if all(found.values()):
        return {key: price["id"] for key, price in found.items() if price}
    product = gateway.create_product(name=PRODUCT_NAME, description=PRODUCT_DESCRIPTION)
    return {
        key: gateway.create_recurring_price(
            product_id=product["id"], unit_amount=amount, interval=interval, lookup_key=key
        )["id"]
        for key, amount, interval in SEEDED_PRICES
    }
