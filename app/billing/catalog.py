"""The prices a user may buy: only those listed in configuration."""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from app.billing.errors import BillingError, InvalidRequest

log = logging.getLogger(__name__)

LOOKUP_KEY_SETTINGS = {
    "STRIPE_PRICE_ID_MONTHLY": "STRIPE_PRICE_LOOKUP_KEY_MONTHLY",
    "STRIPE_PRICE_ID_YEARLY": "STRIPE_PRICE_LOOKUP_KEY_YEARLY",
}


class PriceFinder(Protocol):
    def find_price_by_lookup_key(self, lookup_key: str) -> dict[str, Any] | None: ...


def resolve_price_lookup_keys(config: MutableMapping[str, Any], stripe: PriceFinder) -> None:
    """Fill STRIPE_PRICE_ID_* from STRIPE_PRICE_LOOKUP_KEY_* when only the key is configured
    (Stripe is asked once, at start-up; a price id, when set, wins)."""
    for id_setting, key_setting in LOOKUP_KEY_SETTINGS.items():
        lookup_key = config.get(key_setting)
        if config.get(id_setting) or not lookup_key:
            continue
        try:
            price = stripe.find_price_by_lookup_key(lookup_key)
        except BillingError as exc:
            log.error("could not resolve %s=%s: %s", key_setting, lookup_key, exc.message)
            continue
        if price is None:
            log.error(
                "%s=%s: Stripe has no active price with that lookup key", key_setting, lookup_key
            )
            continue
        config[id_setting] = price["id"]


@dataclass(frozen=True)
class Catalog:
    monthly: str | None
    yearly: str | None
    others: tuple[str, ...]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Catalog:
        return cls(
            monthly=config.get("STRIPE_PRICE_ID_MONTHLY") or None,
            yearly=config.get("STRIPE_PRICE_ID_YEARLY") or None,
            others=tuple(config.get("STRIPE_PRICE_IDS") or ()),
        )

    @property
    def price_ids(self) -> frozenset[str]:
        return frozenset(p for p in (self.monthly, self.yearly, *self.others) if p)

    def resolve(self, *, price_id: str | None, plan: str | None) -> str:
        """The price to sell for a request naming a `priceId` or a `plan`."""
        by_plan = {"monthly": self.monthly, "yearly": self.yearly}
        if plan is not None:
            planned = by_plan.get(plan)
            if not planned:
                raise InvalidRequest(f"The {plan} plan is not offered.", code="unknown_plan")
            if price_id is not None and price_id != planned:
                raise InvalidRequest(
                    "priceId and plan name different prices.", code="price_mismatch"
                )
            return planned
        if price_id is None:
            raise InvalidRequest("Give a priceId or a plan.", code="price_required")
        if price_id not in self.price_ids:
            raise InvalidRequest("This price cannot be bought here.", code="unknown_price")
        return price_id
