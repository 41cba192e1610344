"""The gateway's calls for plan changes, seats and promotion codes (a part of `StripeGateway`,
kept apart to keep each module readable; `gateway.py` is still the one Stripe caller)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import stripe

StripeDict = dict[str, Any]


def idempotency_key(purpose: str, params: dict[str, Any]) -> str:
    """A key for one intent that covers exactly the parameters sent: a retry with the same
    parameters replays the first answer; different parameters make a different key instead of
    an `IdempotencyError` that no retry could ever get past."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:24]
    return f"{purpose}-{digest}"


@dataclass(frozen=True)
class CheckoutTrial:
    """A trial to start with a checkout: its days, and whether a card is asked for at once
    (without one, the subscription is canceled or paused at the trial's end: `end_behavior`)."""

    days: int
    requires_card: bool = True
    end_behavior: str = "cancel"


class PlanCalls:
    client: stripe.StripeClient
    _call: Callable[..., StripeDict]
    list_first_page: Callable[[str, dict[str, Any]], list[StripeDict]]

    def preview_subscription_change(
        self,
        subscription_id: str,
        *,
        item_id: str,
        price_id: str,
        quantity: int,
        proration_date: int,
    ) -> StripeDict:
        """The invoice Stripe would make for a change of the subscription's one item (nothing is
        changed). `proration_date` pins the proration to one second, so the change made with the
        same date charges exactly what this preview showed."""
        params: dict[str, Any] = {
            "subscription": subscription_id,
            "subscription_details": {
                "items": [{"id": item_id, "price": price_id, "quantity": quantity}],
                "proration_behavior": "create_prorations",
                "proration_date": proration_date,
            },
        }
        return self._call(lambda: self.client.v1.invoices.create_preview(params))  # type: ignore[arg-type]

    def change_subscription_item(
        self,
        subscription_id: str,
        *,
        item_id: str,
        price_id: str,
        quantity: int,
        proration_date: int,
        starting_from: str,
    ) -> StripeDict:
        """Move the subscription's one item to `price_id` x `quantity`, prorated at
        `proration_date`. The key covers these parameters and `starting_from` (the version of
        the subscription the change was asked against): a retried or double-clicked change
        replays Stripe's first answer instead of changing twice, while the same change asked
        again after the subscription moved on (A -> B -> A -> B) is a new change."""
        params: dict[str, Any] = {
            "items": [{"id": item_id, "price": price_id, "quantity": quantity}],
            "proration_behavior": "create_prorations",
            "proration_date": proration_date,
        }
        key = idempotency_key(f"change-{subscription_id}", {**params, "from": starting_from})
        options: dict[str, Any] = {"idempotency_key": key}
        return self._call(
            lambda: self.client.v1.subscriptions.update(subscription_id, params, options)  # type: ignore[arg-type]
        )

    # -- promotion codes -----------------------------------------------------------------------

    def find_promotion_code(self, code: str) -> StripeDict | None:
        """The active promotion code a customer typed (codes are case-insensitive at Stripe)."""
        found = self.list_first_page("promotion_codes", {"code": code, "active": True, "limit": 1})
        return found[0] if found else None
