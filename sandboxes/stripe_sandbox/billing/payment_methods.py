"""Payment methods: cards from Stripe's test numbers, magic ids (``pm_card_visa``) and tokens
(``tok_visa``), attaching and detaching, and the method a charge would use."""

from __future__ import annotations

import hashlib
from typing import Any

from .. import cards
from ..context import Ctx
from ..errors import StripeError, bad_state
from ..ids import new_id
from ..timeutil import wall_now

ADDRESS_KEYS = ("city", "country", "line1", "line2", "postal_code", "state")


def _card_details(card: cards.TestCard) -> dict[str, Any]:
    return {
        "brand": card.brand,
        "checks": {
            "address_line1_check": None,
            "address_postal_code_check": None,
            "cvc_check": "pass",
        },
        "country": "US",
        "display_brand": card.brand,
        "exp_month": 12,
        "exp_year": 2034,
        "fingerprint": hashlib.sha256(card.number.encode()).hexdigest()[:16],
        "funding": "credit",
        "generated_from": None,
        "last4": card.last4,
        "networks": {"available": [card.brand], "preferred": None},
        "regulated_status": "unregulated",
        "three_d_secure_usage": {"supported": True},
        "wallet": None,
    }


def new_payment_method(
    ctx: Ctx,
    card: cards.TestCard,
    *,
    email: str | None = None,
    name: str | None = None,
    created: int | None = None,
    prefix: str = "pm",
) -> dict[str, Any]:
    pm = {
        "id": new_id(prefix),
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": dict.fromkeys(ADDRESS_KEYS),
            "email": email,
            "name": name,
            "phone": None,
            "tax_id": None,
        },
        "card": _card_details(card),
        "created": created if created is not None else wall_now(),
        "customer": None,
        "customer_account": None,
        "livemode": False,
        "metadata": {},
        "type": "card",
        "_behavior": card.behavior,
    }
    ctx.store.insert(pm)
    return pm


def resolve_payment_method(ctx: Ctx, pm_id: str, param: str) -> dict[str, Any]:
    """A stored payment method, or a fresh one for a magic id or token (``pm_card_visa``,
    ``tok_visa``); the same magic id names the same new method within one request."""
    card = cards.magic_card(pm_id)
    if card is None:
        return ctx.store.require("payment_method", pm_id, param)
    made = ctx.magic.get(pm_id)
    if made is not None:
        return ctx.store.require("payment_method", made, param)
    pm = new_payment_method(ctx, card)
    ctx.magic[pm_id] = pm["id"]
    return pm


def declined(behavior: str = "decline", **extra: Any) -> StripeError:
    """The 402 of a declined card."""
    return StripeError(
        402,
        cards.DECLINED,
        type="card_error",
        code="card_declined",
        decline_code=cards.decline_code(behavior),
        **extra,
    )


def attach_payment_method(
    ctx: Ctx, pm_id: str, customer: dict[str, Any], param: str = "payment_method"
) -> dict[str, Any]:
    pm = resolve_payment_method(ctx, pm_id, param)
    if pm.get("customer") and pm["customer"] != customer["id"]:
        raise bad_state(
            "The payment method you provided has already been attached to a customer.", param
        )
    if pm.get("customer") == customer["id"]:
        return pm
    if pm["_behavior"] == "decline":
        raise declined(param="")
    pm["customer"] = customer["id"]
    ctx.emit("payment_method.attached", pm)
    return pm


def attached_payment_method(ctx: Ctx, pm_id: str, customer_id: str, param: str) -> dict[str, Any]:
    """``pm_id`` as a method of this customer: a magic id is attached first."""
    if cards.magic_card(pm_id) is not None:
        customer = ctx.store.require("customer", customer_id, "customer")
        return attach_payment_method(ctx, pm_id, customer, param)
    pm = ctx.store.require("payment_method", pm_id, param)
    if pm.get("customer") != customer_id:
        raise bad_state("The payment method must be attached to the customer.", param)
    return pm


def add_source(ctx: Ctx, customer: dict[str, Any], token: str) -> dict[str, Any]:
    """``source=tok_visa`` on a customer: a saved card that becomes its default source."""
    card = cards.magic_card(token)
    if card is None:
        raise StripeError(400, f"No such token: '{token}'", code="resource_missing", param="source")
    pm = new_payment_method(ctx, card, created=ctx.time_of(customer), prefix="card")
    attach_payment_method(ctx, pm["id"], customer, "source")
    customer["default_source"] = pm["id"]
    return pm


def detach_payment_method(ctx: Ctx, pm: dict[str, Any]) -> None:
    if not pm.get("customer"):
        raise bad_state(
            "The payment method you provided is not attached to a customer so "
            "detachment is impossible."
        )
    customer = ctx.store.get("customer", pm["customer"])
    if customer and customer["invoice_settings"].get("default_payment_method") == pm["id"]:
        customer["invoice_settings"]["default_payment_method"] = None
    if customer and customer.get("default_source") == pm["id"]:
        customer["default_source"] = None
    previous = pm["customer"]
    pm["customer"] = None
    ctx.emit("payment_method.detached", pm, {"customer": previous})


def payment_method_for(
    ctx: Ctx, customer_id: str, preferred: str | None = None
) -> dict[str, Any] | None:
    """The payment method a charge for this customer would use."""
    if preferred:
        pm = ctx.store.get("payment_method", preferred)
        if pm is not None:
            return pm
    customer = ctx.store.get("customer", customer_id)
    if customer is None:
        return None
    default = customer["invoice_settings"].get("default_payment_method")
    default = default or customer.get("default_source")
    if default:
        return ctx.store.get("payment_method", default)
    return None


def card_from_params(card_params: dict[str, Any]) -> cards.TestCard:
    """The test card named by ``card[number]`` or ``card[token]`` of a create call."""
    number = card_params.get("number") or cards.TEST_TOKENS.get(card_params.get("token") or "")
    if not number:
        raise StripeError(
            400,
            "Missing required param: card[number].",
            code="parameter_missing",
            param="card[number]",
        )
    card = cards.lookup(number)
    if card is None:
        raise StripeError(
            402,
            cards.INVALID_NUMBER,
            type="card_error",
            code="incorrect_number",
            param="card[number]",
        )
    return card
