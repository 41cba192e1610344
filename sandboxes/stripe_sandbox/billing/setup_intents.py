"""Setup intents: saving a card for later (off-session) payments."""

from __future__ import annotations

from typing import Any

from .. import cards
from ..context import Ctx
from ..errors import bad_state
from ..ids import new_id, random_token
from ..params import apply_metadata
from .payment_methods import attach_payment_method, declined

OPEN = ("requires_payment_method", "requires_confirmation", "requires_action")


def new_setup_intent(ctx: Ctx, p: dict[str, Any], pm: dict[str, Any] | None) -> dict[str, Any]:
    seti_id = new_id("seti")
    customer = p.get("customer")
    seti = {
        "id": seti_id,
        "object": "setup_intent",
        "application": None,
        "automatic_payment_methods": {"enabled": None},
        "cancellation_reason": None,
        "client_secret": f"{seti_id}_secret_{random_token(32)}",
        "created": ctx.now_for(customer),
        "customer": customer,
        "customer_account": None,
        "description": p.get("description"),
        "excluded_payment_method_types": None,
        "flow_directions": None,
        "last_setup_error": None,
        "latest_attempt": None,
        "livemode": False,
        "mandate": None,
        "metadata": apply_metadata({}, p.get("metadata")),
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": pm["id"] if pm else None,
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": p.get("payment_method_types") or ["card"],
        "single_use_mandate": None,
        "status": "requires_confirmation" if pm else "requires_payment_method",
        "usage": p.get("usage") or "off_session",
    }
    ctx.store.insert(seti)
    ctx.emit("setup_intent.created", seti)
    return seti


def confirm_setup_intent(ctx: Ctx, seti: dict[str, Any], pm: dict[str, Any] | None) -> None:
    """Check the card: saved (and attached to the customer), waiting for 3-D Secure, or a 402."""
    if seti["status"] not in OPEN:
        raise bad_state(
            f"This SetupIntent's status is {seti['status']}, so it cannot be confirmed."
        )
    if pm is None:
        raise bad_state(
            "You cannot confirm this SetupIntent because it's missing a payment method.",
            "payment_method",
        )
    seti["payment_method"] = pm["id"]
    if pm["_behavior"] in ("authenticate", "authenticate_always") and pm["id"] not in (
        ctx.authenticated
    ):
        seti["status"] = "requires_action"
        seti["next_action"] = {"type": "use_stripe_sdk", "use_stripe_sdk": {}}
        ctx.emit("setup_intent.requires_action", seti)
        return
    if pm["_behavior"] == "decline":
        seti["status"] = "requires_payment_method"
        seti["last_setup_error"] = {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "generic_decline",
            "message": cards.DECLINED,
            "payment_method": ctx.render(pm),
        }
        ctx.emit("setup_intent.setup_failed", seti)
        raise declined(setup_intent=ctx.render(seti))
    if seti["customer"]:
        customer = ctx.store.require("customer", seti["customer"], "customer")
        attach_payment_method(ctx, pm["id"], customer)
    seti["status"] = "succeeded"
    seti["next_action"] = None
    seti["last_setup_error"] = None
    ctx.emit("setup_intent.succeeded", seti)


def cancel_setup_intent(ctx: Ctx, seti: dict[str, Any], reason: str | None) -> None:
    if seti["status"] not in OPEN:
        raise bad_state(
            f"You cannot cancel this SetupIntent because it has a status of {seti['status']}."
        )
    seti["status"] = "canceled"
    seti["cancellation_reason"] = reason
    seti["next_action"] = None
    ctx.emit("setup_intent.canceled", seti)
