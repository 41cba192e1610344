"""The public plans table: the configured plans with their Stripe prices, cached.

Prices are read from Stripe at most once per `PLANS_CACHE_SECONDS` (and again after a
`price.*`/`product.*` webhook), never per request. The cache lives in the database
(`sync_state`), so every worker and instance shares one copy and one invalidation:

- `plans_catalog`: the last table read from Stripe, with `fetchedAt` = when that read began;
- `plans_catalog_changed_at`: when the last price/product webhook arrived.

A cached table is served while it is younger than the TTL and began after the last change, so
a read that overlaps a change is not trusted. If Stripe is unreachable when a refresh is due,
the last table is served (logged) rather than failing the pricing page.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update

from app.billing.errors import ProviderRejected, ProviderUnavailable
from app.billing.plans import PRICE_ALIASES, Plans, resolve_prices
from app.db import commit, insert_or_ignore, outside_transaction
from app.extensions import db
from app.models import SyncState
from app.stripe.gateway import StripeDict, StripeGateway

log = logging.getLogger(__name__)

CACHE_KEY = "plans_catalog"
CHANGED_KEY = "plans_catalog_changed_at"


def _store(key: str, value: str) -> None:
    insert_or_ignore(SyncState, {"key": key, "value": value})
    db.session.execute(update(SyncState).where(SyncState.key == key).values(value=value))


def mark_catalog_changed(now: int) -> None:
    """Called in a price/product webhook's transaction: the next request re-reads Stripe."""
    _store(CHANGED_KEY, str(now))


def _cached(now: int, ttl_ms: int) -> tuple[dict[str, Any] | None, bool]:
    """The stored table (if any) and whether it is still fresh."""
    rows = db.session.execute(
        select(SyncState.key, SyncState.value).where(SyncState.key.in_((CACHE_KEY, CHANGED_KEY)))
    ).all()
    values = {key: value for key, value in rows}
    outside_transaction()  # the refresh below may call Stripe
    table = json.loads(values[CACHE_KEY]) if CACHE_KEY in values else None
    if table is None:
        return None, False
    changed_at = int(values.get(CHANGED_KEY) or 0)
    fetched_at = int(table.get("fetchedAt") or 0)
    return table, fetched_at > changed_at and now - fetched_at < ttl_ms


def priced_plans(
    gateway: StripeGateway, plans: Plans, config: Mapping[str, Any], *, now: int, ttl_seconds: int
) -> dict[str, Any]:
    table, fresh = _cached(now, ttl_seconds * 1000)
    if table is not None and fresh:
        return table
    try:
        new_table = read_plans_table(gateway, plans, config, fetched_at=now)
    except ProviderUnavailable:
        if table is None:
            raise
        log.warning("Stripe unreachable; serving the plans table read at %s", table["fetchedAt"])
        return table
    _store(CACHE_KEY, json.dumps(new_table))
    commit()
    return new_table


def read_plans_table(
    gateway: StripeGateway, plans: Plans, config: Mapping[str, Any], *, fetched_at: int
) -> dict[str, Any]:
    """One Stripe read per configured price (no transaction is open during them)."""
    aliases = {config.get(setting): alias for alias, setting in PRICE_ALIASES.items()}
    out = []
    for plan in (plans.free, *plans.paid):
        prices = []
        for price_id in sorted(resolve_prices(plan, config)):
            try:
                price = gateway.retrieve_price(price_id)
            except ProviderRejected as exc:
                if not exc.missing:
                    raise
                log.warning("configured price %s does not exist in Stripe; not listed", price_id)
                continue
            prices.append(price_out(price, aliases.get(price_id)))
        prices.sort(key=lambda p: (p["interval"] != "month", p["amount"] or 0))
        out.append(
            {
                "id": plan.id,
                "generationsPerPeriod": plan.generations,
                "features": list(plan.features),
                "prices": prices,
            }
        )
    return {"plans": out, "fetchedAt": fetched_at}


def price_out(price: StripeDict, alias: str | None) -> dict[str, Any]:
    recurring = price.get("recurring") or {}
    product = price.get("product")
    return {
        "id": price["id"],
        "plan": alias,
        "lookupKey": price.get("lookup_key"),
        "amount": price.get("unit_amount"),
        "currency": price.get("currency") or "usd",
        "interval": recurring.get("interval"),
        "intervalCount": recurring.get("interval_count"),
        "productName": product.get("name") if isinstance(product, dict) else None,
        "active": bool(price.get("active", True)),
    }
