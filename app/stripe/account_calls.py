"""The gateway's calls for the Stripe account's setup: the catalog (the plans table, seeding a
sandbox) and webhook endpoints (a part of `StripeGateway`, kept apart to keep each module
readable; `gateway.py` is still the one Stripe caller)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import stripe

StripeDict = dict[str, Any]


class AccountCalls:
    client: stripe.StripeClient
    _call: Callable[..., StripeDict]

    # -- catalog (the plans table; seeding the sandbox) and endpoints -------------------------

    def retrieve_price(self, price_id: str) -> StripeDict:
        """A price with its product expanded (name), for the public plans table."""
        params: dict[str, Any] = {"expand": ["product"]}
        return self._call(lambda: self.client.v1.prices.retrieve(price_id, params))  # type: ignore[arg-type]

    def find_price_by_lookup_key(self, lookup_key: str) -> StripeDict | None:
        found = self.list_first_page("prices", {"lookup_keys": [lookup_key], "limit": 1})
        return found[0] if found else None

    def list_first_page(self, resource: str, params: dict[str, Any]) -> list[StripeDict]:
        return list(self._call(lambda: getattr(self.client.v1, resource).list(params))["data"])

    def create_product(self, *, name: str, description: str, product_id: str = "") -> StripeDict:
        params: dict[str, Any] = {"name": name, "description": description}
        params.update({"id": product_id} if product_id else {})
        return self._call(lambda: self.client.v1.products.create(params))  # type: ignore[arg-type]

    def create_recurring_price(
        self, *, product_id: str, unit_amount: int, interval: str, lookup_key: str
    ) -> StripeDict:
        params: dict[str, Any] = {
            "product": product_id,
            "currency": "usd",
            "unit_amount": unit_amount,
            "recurring": {"interval": interval},
            "lookup_key": lookup_key,
            "transfer_lookup_key": True,
        }
        return self._call(lambda: self.client.v1.prices.create(params))  # type: ignore[arg-type]

    def create_one_time_price(
        self, *, product_id: str, unit_amount: int, lookup_key: str
    ) -> StripeDict:
        """A price without `recurring` (Checkout mode=payment), e.g. the credit pack's."""
        params: dict[str, Any] = {
            "product": product_id,
            "currency": "usd",
            "unit_amount": unit_amount,
            "lookup_key": lookup_key,
            "transfer_lookup_key": True,
        }
        return self._call(lambda: self.client.v1.prices.create(params))  # type: ignore[arg-type]

    def create_webhook_endpoint(
        self, *, url: str, enabled_events: list[str], api_version: str | None = None
    ) -> StripeDict:
        params: dict[str, Any] = {"url": url, "enabled_events": enabled_events}
        if api_version:
            params["api_version"] = api_version
        return self._call(lambda: self.client.v1.webhook_endpoints.create(params))  # type: ignore[arg-type]

    def delete_webhook_endpoint(self, endpoint_id: str) -> StripeDict:
        return self._call(lambda: self.client.v1.webhook_endpoints.delete(endpoint_id))
