"""The prices a user may buy: only those listed in configuration."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.billing.errors import InvalidRequest


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
