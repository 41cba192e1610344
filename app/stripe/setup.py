"""Stripe account setup: the Pro product, its prices and the one-time credit pack price
(idempotent by lookup key), and a check that the key, the prices and the webhook endpoint are
what this code expects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.billing.errors import BillingError
from app.stripe.gateway import StripeDict, StripeGateway

PRODUCT_ID = "prod_ai_creator_studio_pro"
PRODUCT_NAME = "AI Creator Studio Pro"
PRODUCT_DESCRIPTION = "Unlimited generations and premium features"
CURRENCY = "usd"


@dataclass(frozen=True)
class PriceSpec:
    lookup_key: str
    unit_amount: int
    interval: str | None  # None: a one-time price
    setting: str  # the env variable that names it


# The Pro plan's prices: $19/month and $180/year.
PRICES = (
    PriceSpec("pro_monthly", 1900, "month", "STRIPE_PRICE_ID_MONTHLY"),
    PriceSpec("pro_yearly", 18000, "year", "STRIPE_PRICE_ID_YEARLY"),
    # The credit pack (POST /api/create-credit-pack-session): $5 once for
    # CREDIT_PACK_GENERATIONS generations. Sold under the same product, so the product lookup
    # below stays one product per account.
    PriceSpec("credit_pack", 500, None, "STRIPE_CREDIT_PACK_PRICE_ID"),
)


@dataclass
class SetupResult:
    product_id: str
    price_ids: dict[str, str] = field(default_factory=dict)  # lookup key -> price id
    actions: list[str] = field(default_factory=list)

    def env_lines(self) -> list[str]:
        return [f"{spec.setting}={self.price_ids[spec.lookup_key]}" for spec in PRICES]


def _matches(price: StripeDict, spec: PriceSpec) -> bool:
    recurring = price.get("recurring") or {}
    if spec.interval is None and price.get("recurring"):
        return False
    return (
        price.get("active") is True
        and price.get("unit_amount") == spec.unit_amount
        and price.get("currency") == CURRENCY
        and recurring.get("interval") == spec.interval
        and (recurring.get("interval_count") or 1) == 1
    )


def setup_products(gateway: StripeGateway) -> SetupResult:
    """Create what is missing, replace a price whose amount or interval differs (a new price
    takes over the lookup key: Stripe prices are immutable), leave the rest alone."""
    found = {
        price["lookup_key"]: price
        for price in gateway.list_first_page(
            "prices",
            {"lookup_keys": [spec.lookup_key for spec in PRICES], "active": True, "limit": 100},
        )
    }
    product = _ensure_product(gateway, found)
    result = SetupResult(product_id=product["id"])
    if product.get("_created"):
        result.actions.append(f"created product {product['id']}")
    for spec in PRICES:
        price = found.get(spec.lookup_key)
        if price is not None and _matches(price, spec):
            result.price_ids[spec.lookup_key] = price["id"]
            result.actions.append(f"kept price {price['id']} ({spec.lookup_key})")
            continue
        if spec.interval is None:
            created = gateway.create_one_time_price(
                product_id=product["id"], unit_amount=spec.unit_amount, lookup_key=spec.lookup_key
            )
        else:
            created = gateway.create_recurring_price(
                product_id=product["id"],
                unit_amount=spec.unit_amount,
                interval=spec.interval,
                lookup_key=spec.lookup_key,
            )
        result.price_ids[spec.lookup_key] = created["id"]
        verb = "replaced" if price is not None else "created"
        result.actions.append(f"{verb} price {created['id']} ({spec.lookup_key})")
    return result


def _ensure_product(gateway: StripeGateway, found: Mapping[str, StripeDict]) -> dict[str, Any]:
    """The product the prices hang on (the existing prices' product, else ours by id); created
    when there is none."""
    product_id = PRODUCT_ID
    for price in found.values():
        product = price.get("product")
        linked = product.get("id") if isinstance(product, dict) else product
        if isinstance(linked, str):
            product_id = linked
            break
    listed = gateway.list_first_page("products", {"ids": [product_id], "limit": 1})
    existing = listed[0] if listed else None
    if existing is None:
        product = gateway.create_product(
            name=PRODUCT_NAME, description=PRODUCT_DESCRIPTION, product_id=product_id
        )
        return {**product, "_created": True}
    return existing


def webhook_url(config: Mapping[str, Any]) -> str:
    return str(config.get("PUBLIC_URL") or "").rstrip("/") + "/api/webhooks/stripe"


def setup_webhook_endpoint(
    gateway: StripeGateway, config: Mapping[str, Any], events: list[str], *, replace: bool
) -> StripeDict | None:
    """Create our endpoint (PUBLIC_URL, the handled events, the pinned api_version) and return
    it with its secret; None when one exists and `replace` is off (its secret can't be read
    back: Stripe shows it only on create)."""
    url = webhook_url(config)
    existing = [
        e
        for e in gateway.list_first_page("webhook_endpoints", {"limit": 100})
        if e.get("url") == url
    ]
    if existing and not replace:
        return None
    for endpoint in existing:
        gateway.delete_webhook_endpoint(endpoint["id"])
    return gateway.create_webhook_endpoint(
        url=url, enabled_events=events, api_version=config.get("STRIPE_API_VERSION")
    )


def check_stripe_setup(
    gateway: StripeGateway, config: Mapping[str, Any], handled_events: list[str]
) -> list[str]:
    """Problems with the key, the configured prices and our webhook endpoint (empty: all good)."""
    problems: list[str] = []
    try:
        endpoints = gateway.list_first_page("webhook_endpoints", {"limit": 100})
    except BillingError as exc:
        return [f"the Stripe key does not work here: {exc.message} ({exc.code})"]
    for setting in ("STRIPE_PRICE_ID_MONTHLY", "STRIPE_PRICE_ID_YEARLY"):
        price_id = config.get(setting)
        if not price_id:
            if setting.endswith("MONTHLY"):
                problems.append(f"{setting} is not set (nor found by lookup key)")
            continue
        try:
            price = gateway.retrieve_price(price_id)
        except BillingError as exc:
            problems.append(f"{setting}={price_id}: {exc.message} ({exc.code})")
            continue
        if not price.get("active"):
            problems.append(f"{setting}={price_id} is archived (inactive)")
        if not price.get("recurring"):
            problems.append(f"{setting}={price_id} is not a recurring price")
    url = webhook_url(config)
    mine = [endpoint for endpoint in endpoints if endpoint.get("url") == url]
    if not mine:
        return [*problems, f"no webhook endpoint for {url} (PUBLIC_URL)"]
    endpoint = mine[0]
    if endpoint.get("status") != "enabled":
        problems.append(f"webhook endpoint {endpoint['id']} is {endpoint.get('status')}")
    enabled = set(endpoint.get("enabled_events") or [])
    missing = [name for name in handled_events if "*" not in enabled and name not in enabled]
    if missing:
        problems.append(f"webhook endpoint {endpoint['id']} lacks events: {', '.join(missing)}")
    pinned = config.get("STRIPE_API_VERSION")
    if endpoint.get("api_version") != pinned:
        problems.append(
            f"webhook endpoint {endpoint['id']} renders api_version "
            f"{endpoint.get('api_version')!r}, this code pins {pinned!r}: payloads may not "
            "parse as expected; create the endpoint with the pinned version"
        )
    return problems
