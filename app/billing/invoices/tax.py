"""Checkout's tax parameters, by configuration (STRIPE_AUTOMATIC_TAX, STRIPE_TAX_ID_COLLECTION,
STRIPE_COLLECT_BILLING_ADDRESS)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def checkout_tax_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """Stripe Tax needs the buyer's address: with automatic tax on, the address is required
    and saved on the customer (`customer_update`), so renewals are taxed the same way."""
    params: dict[str, Any] = {}
    automatic = bool(config.get("STRIPE_AUTOMATIC_TAX"))
    tax_ids = bool(config.get("STRIPE_TAX_ID_COLLECTION"))
    if automatic:
        params["automatic_tax"] = {"enabled": True}
    if tax_ids:
        params["tax_id_collection"] = {"enabled": True}
    if automatic or tax_ids or config.get("STRIPE_COLLECT_BILLING_ADDRESS"):
        params["billing_address_collection"] = "required"
        # A tax id is saved with the customer's name; the address keeps renewals taxed.
        params["customer_update"] = {"address": "auto", "name": "auto"}
    return params
