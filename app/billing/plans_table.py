"""The public plans table (GET /api/plans): the plans joined with their Stripe prices, read from
Stripe at most once per `PLANS_CACHE_SECONDS` (and again after a `price.*`/`product.*` webhook),
never per request. It is cached in the database (`billing/store.py`), so every worker and
instance shares one copy and one invalidation: a cached table is served while it is younger than
the TTL and began after the last change, so a read that overlaps a change is not trusted. If
Stripe is unreachable when a refresh is due, the last table is served (logged) rather than
failing the pricing page. A table without its prices is never cached."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from flask import current_app

from app.billing.errors import ProviderRejected, ProviderUnavailable
from app.billing.plans import (
    PRICE_ALIASES,
    Plans,
    current_plans,
    ensure_prices,
    resolve_prices,
)
from app.billing.store import read_states, write_state
from app.billing.time import now_ms
from app.db import unit_of_work
from app.stripe.gateway import current_gateway

log = logging.getLogger(__name__)


class PriceSource(Protocol):
    """Where the table's prices are read (the Stripe gateway)."""

    def retrieve_price(self, price_id: str) -> dict[str, Any]: ...


CACHE_KEY = "plans_catalog"
CHANGED_KEY = "plans_catalog_changed_at"


def mark_catalog_changed(now: int) -> None:
    """Called in a price/product webhook's transaction: the next request re-reads Stripe."""
    write_state(CHANGED_KEY, str(now))


def _cached(now: int, ttl_ms: int) -> tuple[dict[str, Any] | None, bool]:
    """The stored table (if any) and whether it is still fresh."""
    with unit_of_work():  # ended before the refresh below calls Stripe
        values = read_states(CACHE_KEY, CHANGED_KEY)
    table = json.loads(values[CACHE_KEY]) if CACHE_KEY in values else None
    if table is None:
        return None, False
    changed_at = int(values.get(CHANGED_KEY) or 0)
    fetched_at = int(table.get("fetchedAt") or 0)
    return table, fetched_at > changed_at and now - fetched_at < ttl_ms


def plans_table() -> dict[str, Any]:
    """The public plans table now (GET /api/plans), from the cache when it is fresh."""
    config = current_app.config
    try:
        ensure_prices()
        prices_known = True
    except ProviderUnavailable:
        prices_known = False
    return priced_plans(
        current_gateway(),
        current_plans(),
        config,
        now=now_ms(),
        ttl_seconds=config["PLANS_CACHE_SECONDS"],
        prices_known=prices_known,
    )


def priced_plans(
    gateway: PriceSource,
    plans: Plans,
    config: Mapping[str, Any],
    *,
    now: int,
    ttl_seconds: int,
    prices_known: bool = True,
) -> dict[str, Any]:
    """`prices_known` False: a price given by lookup key is not resolved yet. A table read now
    would lack it and, cached, outlive Stripe's return; the last full table is served instead
    (503 if there is none), and the first request after the lookup heals reads Stripe."""
    table, fresh = _cached(now, ttl_seconds * 1000)
    if not prices_known:
        if table is None:
            raise ProviderUnavailable("Prices can't be read right now. Try again shortly.")
        return table
    if table is not None and fresh:
        return table
    try:
        new_table = read_plans_table(gateway, plans, config, fetched_at=now)
    except ProviderUnavailable:
        if table is None:
            raise
        log.warning("Stripe unreachable; serving the plans table read at %s", table["fetchedAt"])
        return table
    with unit_of_work():
        write_state(CACHE_KEY, json.dumps(new_table))
    return new_table


def read_plans_table(
    gateway: PriceSource, plans: Plans, config: Mapping[str, Any], *, fetched_at: int
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
                "trialDays": plan.trial_days,
                "minSeats": plan.min_seats,
                "maxSeats": plan.max_seats,
                "prices": prices,
            }
        )
    return {"plans": out, "fetchedAt": fetched_at, "creditPack": credit_pack(gateway, config)}


def credit_pack(gateway: PriceSource, config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The credit pack on sale (a front end shows "Buy credits" when there is one)."""
    price_id = config.get("STRIPE_CREDIT_PACK_PRICE_ID") or ""
    if not price_id:
        return None
    try:
        price = gateway.retrieve_price(price_id)
    except ProviderRejected as exc:
        if not exc.missing:
            raise
        log.warning(
            "STRIPE_CREDIT_PACK_PRICE_ID %s does not exist in Stripe; not offered", price_id
        )
        return None
    return {
        "priceId": price["id"],
        "generations": int(config.get("CREDIT_PACK_GENERATIONS") or 0),
        "amount": price.get("unit_amount"),
        "currency": price.get("currency") or "usd",
    }


def price_out(price: dict[str, Any], alias: str | None) -> dict[str, Any]:
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
